"""``medsegai batch``: one bad study does not stop the rest, reruns skip what is done, kill -9 then
rerun finishes every study once with no partial files, CSV manifests and parts, Ray equals local workers."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from server_support import CLI, env, run_cli, same_files


@pytest.fixture()
def studies(tmp_path, ts_ref) -> Path:
    folder = tmp_path / "studies"
    folder.mkdir()
    shutil.copy(ts_ref / "example_ct_sm.nii.gz", folder / "ct_a.nii.gz")
    shutil.copy(ts_ref / "example_mr_sm.nii.gz", folder / "mr_b.nii.gz")
    (folder / "broken_c.nii.gz").write_bytes(b"this is not an image")
    (folder / "notes.txt").write_text("not a study")
    return folder


def _same_result(a: Path, b: Path):
    """The study files are identical; the markers differ (study id, input path, times)."""
    return [n for n in same_files(a, b) if n != ".medsegai_study.json"]


def _log(out: Path):
    from medsegai.batch.manifest import read_log

    return list(read_log(out))


def _no_partial_files(out: Path):
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert not hidden, hidden
    for d in (p for p in out.iterdir() if p.is_dir()):
        marker = json.loads((d / ".medsegai_study.json").read_text())
        for name in marker["files"]:
            assert (d / name).exists(), (d, name)


def test_batch_runs_every_study_reports_the_bad_one_and_a_rerun_skips_the_done(studies, tmp_path, ts_ref):
    out = tmp_path / "out"
    p = run_cli("batch", "-i", studies, "-o", out, "-nt", "1", "--jsonl")
    assert p.returncode == 1, p.stderr  # one study failed
    events = [json.loads(line) for line in p.stdout.splitlines()]
    by_study = {e["study"]: e for e in events if e["event"] == "study"}
    assert {k: v["status"] for k, v in by_study.items()} == {"ct_a": "done", "mr_b": "done", "broken_c": "failed"}
    assert "Cannot read" in by_study["broken_c"]["error"]
    assert "failed    1" in p.stderr and "done      2" in p.stderr
    assert sorted(x.name for x in out.iterdir() if x.is_dir()) == ["ct_a", "mr_b"]
    _no_partial_files(out)
    # the same files as medsegai segment of that study
    local = tmp_path / "local"
    assert run_cli("segment", "-i", ts_ref / "example_ct_sm.nii.gz", "-o", local, "-d", "cpu", "-nt", "1",
                   "-q").returncode == 0
    assert same_files(local, out / "ct_a") == [".medsegai_study.json"]
    manifest = json.loads((out / "medsegai_batch.json").read_text())
    assert manifest["studies"]["broken_c"]["status"] == "failed" and manifest["studies"]["ct_a"]["status"] == "done"

    before = {d.name: d.stat().st_mtime_ns for d in out.iterdir() if d.is_dir()}
    p = run_cli("batch", "-i", studies, "-o", out, "-nt", "1")
    assert p.returncode == 1 and "skipped   2" in p.stdout and "done      0" in p.stdout, p.stdout
    assert {d.name: d.stat().st_mtime_ns for d in out.iterdir() if d.is_dir()} == before

    # a changed input is redone, the others are not
    shutil.copy(ts_ref / "example_ct_sm.nii.gz", studies / "mr_b.nii.gz")
    (studies / "broken_c.nii.gz").unlink()
    p = run_cli("batch", "-i", studies, "-o", out, "-nt", "1")
    assert p.returncode == 0 and "done      1" in p.stdout and "skipped   1" in p.stdout, p.stdout
    assert _same_result(out / "ct_a", out / "mr_b") == []


def test_kill_9_mid_batch_then_rerun_does_every_study_once_with_no_partial_files(tmp_path, ts_ref):
    folder = tmp_path / "studies"
    folder.mkdir()
    for n in range(4):
        shutil.copy(ts_ref / "example_ct_sm.nii.gz", folder / f"case_{n}.nii.gz")
    out = tmp_path / "out"
    proc = subprocess.Popen(CLI + ["batch", "-i", str(folder), "-o", str(out), "-nt", "1", "-q"], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 180
    while not (out / "case_0" / ".medsegai_study.json").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.05)
    # mid-study: the next one is being written (its staging folder may exist)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    finished_before = {d.name for d in out.iterdir() if d.is_dir() and not d.name.startswith(".")}
    assert "case_0" in finished_before and len(finished_before) < 4
    p = run_cli("batch", "-i", folder, "-o", out, "-nt", "1")
    assert p.returncode == 0, p.stderr
    assert f"skipped   {len(finished_before)}" in p.stdout
    _no_partial_files(out)
    assert sorted(d.name for d in out.iterdir() if d.is_dir()) == [f"case_{n}" for n in range(4)]
    done = [e["study"] for e in _log(out) if e.get("event") == "study" and e.get("status") == "done"]
    assert sorted(done) == [f"case_{n}" for n in range(4)]  # each study done exactly once over both runs
    for n in range(1, 4):
        assert _same_result(out / "case_0", out / f"case_{n}") == []


def test_csv_manifest_and_parts(tmp_path, ts_ref):
    from medsegai.batch.studies import discover, select_part

    (tmp_path / "imgs").mkdir()
    shutil.copy(ts_ref / "example_ct_sm.nii.gz", tmp_path / "imgs" / "x.nii.gz")
    manifest = tmp_path / "studies.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path"])
        w.writerows([["p1", "imgs/x.nii.gz"], ["p2", "imgs/x.nii.gz"], ["p3", "imgs/missing.nii.gz"]])
    studies = discover(manifest)
    assert [s.id for s in studies] == ["p1", "p2", "p3"]
    assert [s.id for s in select_part(studies, 2, 0)] == ["p1", "p3"]
    assert [s.id for s in select_part(studies, 2, 1)] == ["p2"]
    out = tmp_path / "out"
    p = run_cli("batch", "-i", manifest, "-o", out, "--num-parts", "2", "--part-id", "1", "-nt", "1", "--ml")
    assert p.returncode == 0, p.stderr
    assert sorted(d.name for d in out.iterdir() if d.is_dir()) == ["p2"]
    assert not (out / "p2" / "masks").exists()
    p = run_cli("batch", "-i", manifest, "-o", out, "--num-parts", "2", "--part-id", "2")
    assert p.returncode == 1 and "--part-id must lie in 0..1" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("batch", "-i", tmp_path / "nothing_here", "-o", out)
    assert p.returncode == 1 and "does not exist" in p.stderr


def test_ray_batch_equals_local_workers(tmp_path, ts_ref):
    ray = pytest.importorskip("ray", reason="the batch extra is not installed: pip install 'medsegai[batch]'")
    from medsegai import RunRequest
    from medsegai.batch import BatchOptions, run_batch

    folder = tmp_path / "studies"
    folder.mkdir()
    shutil.copy(ts_ref / "example_ct_sm.nii.gz", folder / "ct.nii.gz")
    shutil.copy(ts_ref / "example_mr_sm.nii.gz", folder / "mr.nii.gz")
    (folder / "bad.nii.gz").write_bytes(b"junk")
    request = RunRequest(device="cpu", threads=1)
    local = run_batch(folder, tmp_path / "local", request, BatchOptions(workers=2), progress=None)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster of this test
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_batch(folder, tmp_path / "ray", request, BatchOptions(workers=2, ray=True), progress=None)
        assert ray.is_initialized()  # a cluster the caller started is the caller's to stop
    finally:
        ray.shutdown()
    for summary in (local, remote):
        assert sorted(summary["done"]) == ["ct", "mr"] and summary["failed"] == ["bad"]
    workers = {e.get("worker") for e in _log(tmp_path / "ray") if e.get("event") == "study"} - {None}
    assert workers and all(w.startswith("ray-actor-") for w in workers)
    for study in ("ct", "mr"):
        diff = same_files(tmp_path / "local" / study, tmp_path / "ray" / study)
        assert diff == [".medsegai_study.json"], diff  # the markers differ only in times
