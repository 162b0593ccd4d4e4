"""Time per case of the head-and-neck model: fp32 and bf16, labels only and with uncertainty, side by side.

    .venv/bin/python Testing/Benchmarks/bench_head_neck_speed.py [--cases 5] [--threads 2]

Held-out OpenKBP patients (Resources/Splits/openkbp_validation.json), one Predictor per setting
loaded once (as the worker that stays keeps it), settings interleaved case by case so a noisy
machine hurts all alike; the first case is a warm-up and not counted. Also prints how far bf16's
labels are from fp32's (Dice per organ between the two runs), the agreement issue 16 asks about.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from medsegai import Predictor
from medsegai.datasets import openkbp
from medsegai.inference.device import cpu_has_bf16_units

SETTINGS = (("fp32, labels only", "fp32", None), ("bf16, labels only", "bf16", None),
            ("fp32, entropy uncertainty", "fp32", "entropy"), ("bf16, entropy uncertainty", "bf16", "entropy"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", "../shared/data")))
    ap.add_argument("--cases", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    settings = [s for s in SETTINGS if s[1] == "fp32" or cpu_has_bf16_units()]
    predictors = {p: Predictor(task="head_neck_oar", device="cpu", precision=p, threads=a.threads)
                  for p in dict.fromkeys(s[1] for s in settings)}
    cases = openkbp.validation_cases()[: a.cases + 1]
    times = {s[0]: [] for s in settings}
    agreement = {}
    for n, case in enumerate(cases):
        image = openkbp.read_case(a.data, case).image
        labels = {}
        for title, precision, uncertainty in settings:
            t = time.perf_counter()
            res = predictors[precision].predict(image, uncertainty=uncertainty)
            if n:
                times[title].append(time.perf_counter() - t)
            labels[precision] = res.labels.array, {s.name: s.value for s in res.segments}
        if n and "bf16" in labels:
            (a32, names), (a16, _) = labels["fp32"], labels["bf16"]
            for name, v in names.items():
                p, q = a32 == v, a16 == v
                if p.any() or q.any():
                    agreement.setdefault(name, []).append(2 * int((p & q).sum()) / (int(p.sum()) + int(q.sum())))
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in Path("/proc/cpuinfo").read_text()]
    print(f"CPU flags: {' '.join(flags)}; {a.threads} threads; {a.cases} held-out cases "
          f"({', '.join(cases[1:])}) after the warm-up case {cases[0]}")
    print("| setting | s per case, median | max |\n|---|---|---|")
    for title, v in times.items():
        print(f"| {title} | {statistics.median(v):.2f} | {max(v):.2f} |")
    if agreement:
        print("\nbf16 against fp32 labels, Dice per organ (median over the cases): "
              + ", ".join(f"{k} {np.median(v):.3f}" for k, v in agreement.items()))


if __name__ == "__main__":
    main()
