"""Remote vs local overhead on the full-size CT, and batch throughput with 1 and 2 workers (and Ray).

Prints a Markdown section for RESULTS.md. From the repo root:
    .venv/bin/python Testing/Benchmarks/bench_server_batch.py [--threads 1] [--studies 4] [--ray]
Remote: a real ``medsegai serve`` on 127.0.0.1 (no TLS), the bundled demo model, the full-size
Pancreas-CT-CB_001 series (512 x 512 x 134), read once and sent as the client sends it.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "Python"))
from server_support import TOKEN, Server, run_cli  # noqa: E402


def remote_vs_local(data: Path, tmp: Path, threads: int) -> list:
    from medsegai import RunRequest
    from medsegai.io.read import read_image
    from medsegai.remote.client import RemoteClient
    from medsegai.remote.payload import pack_image

    series = data / "ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom"
    image = read_image(series)
    nifti = tmp / "full.nii.gz"
    from medsegai.io.write import write_image

    write_image(image, nifti)
    lines = [f"- Input: {series.relative_to(data)} {image.shape} {image.array.dtype}, "
             f"raw {image.array.nbytes / 1e6:.1f} MB, as NIfTI.gz {nifti.stat().st_size / 1e6:.1f} MB"]
    t = time.perf_counter()
    size = pack_image(image, tmp / "pkg.zip", {"request": {}, "outputs": {}})
    lines.append(f"- Upload package: {size / 1e6:.1f} MB (deflate level 3), packed in {time.perf_counter() - t:.2f} s")

    t = time.perf_counter()
    p = run_cli("segment", "-i", nifti, "-o", tmp / "local", "-d", "cpu", "-nt", threads, "-q", "--ml", timeout=3600)
    local_s = time.perf_counter() - t
    assert p.returncode == 0, p.stderr

    server = Server(tmp, "-nt", str(threads)).wait_ready()
    try:
        walls = []
        for n in range(2):
            t = time.perf_counter()
            p = run_cli("segment", "-i", nifti, "-o", tmp / f"remote{n}", "--server", server.url, "--token", TOKEN,
                        "-q", "--ml", timeout=3600)
            walls.append(time.perf_counter() - t)
            assert p.returncode == 0, p.stderr
        client = RemoteClient(server.url, TOKEN)
        request = RunRequest(model="medsegai_ct_demo")
        t0 = time.perf_counter()
        job = client.submit(image, request)
        t1 = time.perf_counter()
        for _kind, _data in client.events(job):
            pass
        t2 = time.perf_counter()
        st = client.status(job)
        client.download(job, tmp / "remote_api")
        t3 = time.perf_counter()
    finally:
        server.stop()
    same = all((tmp / "local" / f).read_bytes() == (tmp / "remote0" / f).read_bytes()
               for f in ("segmentation.nii.gz", "segmentation.seg.nrrd", "segmentation_labels.csv"))
    lines += [
        f"- Local CLI (`medsegai segment -i full.nii.gz --ml -nt {threads}`, cold process): {local_s:.1f} s",
        f"- Remote CLI, first job (server's predictor cold): {walls[0]:.1f} s; second job (predictor kept): "
        f"{walls[1]:.1f} s; outputs byte-identical to the local run: {same}",
        f"- Remote from Python, warm: pack + upload {t1 - t0:.2f} s, server job {st['ended'] - st['started']:.1f} s "
        f"(queue + events to the end {t2 - t1:.1f} s), download + verify + write {t3 - t2:.2f} s",
    ]
    return lines


def batch_throughput(data: Path, tmp: Path, n_studies: int, threads: int, with_ray: bool) -> list:
    src = data / "ct/totalsegmentator-examples/tests/reference_files/example_ct_sm.nii.gz"
    folder = tmp / "studies"
    folder.mkdir()
    for n in range(n_studies):
        shutil.copy(src, folder / f"case_{n:03d}.nii.gz")
    lines = [f"- Batch: {n_studies} copies of example_ct_sm.nii.gz (30 x 101 x 122), demo model, "
             f"{threads} thread(s) per worker; wall time of the whole command (start-up and model loads included)"]
    runs = [("--workers 1", ["--workers", "1"]), ("--workers 2", ["--workers", "2"])]
    if with_ray:
        runs.append(("--workers 2 --ray (local cluster)", ["--workers", "2", "--ray"]))
    for label, extra in runs:
        out = tmp / f"out{len(lines)}"
        t = time.perf_counter()
        p = run_cli("batch", "-i", folder, "-o", out, "-nt", threads, "-q", *extra, timeout=3600)
        wall = time.perf_counter() - t
        assert p.returncode == 0, p.stderr[-2000:]
        lines.append(f"  - `{label}`: {wall:.1f} s, {n_studies / wall * 60:.1f} studies/min")
        if label == "--workers 1":
            t = time.perf_counter()
            p = run_cli("batch", "-i", folder, "-o", out, "-nt", threads, "-q", *extra, timeout=3600)
            assert p.returncode == 0, p.stderr[-2000:]
            lines.append(f"    rerun (every study skipped): {time.perf_counter() - t:.1f} s")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", HERE.parents[2] / "shared" / "data")))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--studies", type=int, default=4)
    ap.add_argument("--ray", action="store_true")
    ap.add_argument("--skip-remote", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        tmp = Path(tmp)
        lines = [f"## Server and batch: remote overhead and throughput ({time.strftime('%Y-%m-%d %H:%M')} UTC)", "",
                 f"- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}",
                 f"- Command: `.venv/bin/python Testing/Benchmarks/bench_server_batch.py {' '.join(sys.argv[1:])}`"]
        if not a.skip_remote:
            (tmp / "r").mkdir()
            lines += remote_vs_local(a.data.resolve(), tmp / "r", a.threads)
        (tmp / "b").mkdir()
        lines += batch_throughput(a.data.resolve(), tmp / "b", a.studies, a.threads, a.ray)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
