"""The server under load: N clients x M segmentation requests at once on 127.0.0.1.

Prints a Markdown section for RESULTS.md. From the repo root:
    .venv/bin/python Testing/Benchmarks/bench_server_load.py [--clients 8] [--requests 3] [--max-queue 4]

A real ``medsegai serve`` (token, one CPU job at a time, a queue shorter than the number of clients,
so 429 + Retry-After is part of the load), the bundled demo model, TotalSegmentator's small example
CT (30 x 101 x 122). Every client thread uses ``RemoteClient.run`` as the CLI's ``--server`` does
(submit, follow the event stream, download). Each result is compared with the labels of a local
``medsegai.segment`` of the same image: a request counts as served only with an identical result.
Beside the jobs a probe thread asks ``GET /v1/info`` every 0.25 s to show how quickly the server
answers light requests while it is busy. The run is bounded: every client has ``--deadline`` seconds.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "Python"))
from server_support import TOKEN, Server  # noqa: E402

from bench_common import cpu_flags  # noqa: E402


def percentiles(values, qs=(50, 90, 99)) -> str:
    if not values:
        return "-"
    v = np.asarray(values, dtype=float)
    return " / ".join(f"{np.percentile(v, q):.2f}" for q in qs) + f" / {v.max():.2f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=3, help="requests per client, one after the other")
    ap.add_argument("--max-queue", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server's job")
    ap.add_argument("--deadline", type=float, default=1800.0, help="seconds each client may take in all")
    a = ap.parse_args()

    import medsegai
    from medsegai import RunRequest
    from medsegai.io.read import read_image
    from medsegai.remote.client import RemoteClient

    data = Path(os.environ.get("MEDSEGAI_DATA_DIR", HERE.parents[2] / "shared" / "data"))
    ct = read_image(data / "ct/totalsegmentator-examples/tests/reference_files/example_ct_sm.nii.gz")
    expected = medsegai.segment(ct, model="medsegai_ct_demo", device="cpu", threads=a.threads).labels.array

    with tempfile.TemporaryDirectory(prefix="medsegai-load-") as tmp_name:
        tmp = Path(tmp_name)
        server = Server(tmp, "--max-queue", str(a.max_queue), "-nt", str(a.threads)).wait_ready()
        lock = threading.Lock()
        latencies, wrong, failed = [], [], []
        probes, probe_errors = [], []
        stop = threading.Event()

        def client(n: int) -> None:
            remote = RemoteClient(server.url, TOKEN, busy_wait_s=a.deadline)
            end = time.monotonic() + a.deadline
            for m in range(a.requests):
                if time.monotonic() > end:
                    with lock:
                        failed.append(f"client {n} request {m}: past the deadline")
                    return
                out = tmp / f"c{n}-r{m}"
                t = time.perf_counter()
                try:
                    written, _final = remote.run(ct, RunRequest(model="medsegai_ct_demo"), out)
                    got = read_image(out / "segmentation.nii.gz")
                except Exception as exc:  # noqa: BLE001 - counted and printed below
                    with lock:
                        failed.append(f"client {n} request {m}: {exc}")
                    continue
                dt = time.perf_counter() - t
                ok = got.same_grid(ct) and np.array_equal(got.array, expected)
                with lock:
                    latencies.append(dt)
                    if not ok:
                        wrong.append(f"client {n} request {m}")

        def probe() -> None:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    r = requests.get(server.url + "/v1/info", headers=server.auth, timeout=30)
                    r.raise_for_status()
                    probes.append(time.perf_counter() - t)
                except requests.RequestException as exc:
                    probe_errors.append(repr(exc))
                stop.wait(0.25)

        try:
            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
            workers = [threading.Thread(target=client, args=(n,)) for n in range(a.clients)]
            t0 = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join(a.deadline + 120)
            wall = time.perf_counter() - t0
            stop.set()
            prober.join(30)
            info = requests.get(server.url + "/v1/info", headers=server.auth, timeout=30).json()
            alive = server.proc.poll() is None
        finally:
            server.stop()

    total = a.clients * a.requests
    served = len(latencies) - len(wrong)
    print(f"## Server under load ({time.strftime('%Y-%m-%d')})\n")
    print(f"`.venv/bin/python Testing/Benchmarks/bench_server_load.py --clients {a.clients} --requests "
          f"{a.requests} --max-queue {a.max_queue} --threads {a.threads}`\n")
    print(f"- CPU: {os.cpu_count()} cores, flags {cpu_flags()}; one job at a time on the CPU, "
          f"{a.threads} torch thread(s); queue {a.max_queue} (clients beyond it wait out 429 + Retry-After)")
    print(f"- Requests: {a.clients} clients x {a.requests} = {total}; served with the local result: {served}; "
          f"wrong: {len(wrong)}; failed: {len(failed)}; server alive after: {alive}; "
          f"jobs accepted by the server: {info['queue']['accepted']}")
    print(f"- Wall {wall:.1f} s; throughput {served / wall * 60:.1f} jobs/min")
    print(f"- Latency per request (submit to downloaded), s, p50 / p90 / p99 / max: {percentiles(latencies)}")
    print(f"- `GET /v1/info` while loaded ({len(probes)} probes, {len(probe_errors)} errors), s, "
          f"p50 / p90 / p99 / max: {percentiles(probes)}")
    for line in (wrong + failed + probe_errors)[:10]:
        print(f"  - {line}")
    return 0 if served == total and alive and not probe_errors else 1


if __name__ == "__main__":
    sys.exit(main())
