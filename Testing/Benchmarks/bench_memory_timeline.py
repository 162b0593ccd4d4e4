"""Where a run's memory goes: the process tree's RSS against the runner's progress lines, for this
checkout and (``--baseline-rev``) an older commit side by side on the same input, plus whether their
labels are identical.

    Testing/Benchmarks/work/venv/bin/python Testing/Benchmarks/bench_memory_timeline.py \
        --baseline-rev a0c7762 [--ct Testing/Benchmarks/work/inputs/pancreas-ct-cb001-dicom.nii.gz]

Runs ``medsegai segment --task total --fast --ml --mode totalseg`` with the random-weight 297 folder
of make_random_model.py (the model of bench_runner.py). RSS is polled every 50 ms with psutil (the
benchmark venv has it); each progress line is stamped with the largest RSS seen so far and the RSS at
that moment.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench_common import RANDOM_297, cpu_flags, tree_rss

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORK = HERE / "work"


def timeline(cmd, env) -> dict:
    import psutil

    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
    samples, lines = [], []

    def read():
        for line in p.stdout:
            lines.append((time.monotonic() - t0, line.rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ps = psutil.Process(p.pid)
    while p.poll() is None:
        try:
            samples.append((time.monotonic() - t0, tree_rss(ps) / 1e9))
        except psutil.Error:
            pass
        time.sleep(0.05)
    reader.join(timeout=5)
    stamped = []
    for t, line in lines:
        seen = [r for s, r in samples if s <= t]
        stamped.append((t, max(seen) if seen else 0.0, seen[-1] if seen else 0.0, line))
    peak_t, peak = max(samples, key=lambda s: s[1]) if samples else (0.0, 0.0)
    return {"rc": p.returncode, "wall": time.monotonic() - t0, "peak": peak, "peak_t": peak_t, "lines": stamped}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ct", type=Path, default=WORK / "inputs" / "pancreas-ct-cb001-dicom.nii.gz")
    ap.add_argument("--weights", type=Path, default=RANDOM_297.parents[1])
    ap.add_argument("--baseline-rev", help="an older commit to run beside this checkout")
    ap.add_argument("--out", type=Path, default=WORK / "memory_timeline")
    a = ap.parse_args()
    if not a.ct.exists() or not a.weights.exists():
        sys.exit(f"missing {a.ct} or {a.weights}: run bench_runner.py once (it converts the CT) and make_random_model.py")
    a.out.mkdir(parents=True, exist_ok=True)
    trees = {"current": ROOT}
    if a.baseline_rev:
        wt = a.out / f"rev-{a.baseline_rev}"
        if not wt.exists():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(wt), a.baseline_rev], check=True)
        trees[a.baseline_rev] = wt
    python = ROOT / ".venv" / "bin" / "python"
    results = {}
    for name, tree in trees.items():
        env = dict(os.environ, PYTHONPATH=str(tree / "MedSegAIInference"))
        out = a.out / f"{name}.nii.gz"
        cmd = [str(python), "-m", "medsegai.cli", "segment", "-i", str(a.ct), "-o", str(out), "--task", "total", "--fast",
               "--ml", "--model", str(a.weights), "--mode", "totalseg", "-d", "cpu"]
        results[name] = dict(timeline(cmd, env), out=out)
    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, flags {cpu_flags()}")
    print(f"command: {' '.join(sys.argv)}")
    for name, r in results.items():
        print(f"\n### {name}: rc {r['rc']}, wall {r['wall']:.1f} s, process-tree peak RSS {r['peak']:.2f} GB at {r['peak_t']:.1f} s")
        print("| t s | peak so far GB | RSS now GB | progress line |\n|---|---|---|---|")
        for t, mx, now, line in r["lines"]:
            if "%" in line or "error" in line.lower():
                print(f"| {t:.1f} | {mx:.2f} | {now:.2f} | {line.strip()[:90]} |")
    if len(results) == 2:
        import nibabel as nib
        import numpy as np

        x, y = (np.asarray(nib.load(str(r["out"])).dataobj) for r in results.values())
        print(f"\nlabels identical: {np.array_equal(x, y)} ({len(np.unique(x))} labels present)")
    return 0 if all(r["rc"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
