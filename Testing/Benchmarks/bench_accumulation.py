"""The score bookkeeping around the network, per 297 tile and per case: ways that give the same bits.

    .venv/bin/python Testing/Benchmarks/bench_accumulation.py [--threads 2]

Shapes of TotalSegmentator's --fast model on the full-size pancreas CT: fp16 sums of 118 classes on
the 134 x 183 x 183 grid, one 128 x 112 x 112 tile of fp32 scores. Times are the best of 5; every
variant is checked bit for bit against the plain form (what exact mode used before 2026-12-04).
"""
from __future__ import annotations

import argparse
import time

import torch

from bench_common import cpu_flags
from medsegai.inference.export import first_argmax

K, GRID, TILE = 118, (134, 183, 183), (128, 112, 112)


def best_of(fn, setup, repeats=5):
    best, out = float("inf"), None
    for _ in range(repeats):
        state = setup()
        t = time.perf_counter()
        out = fn(state)
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    sums = (torch.randn((K, *GRID), generator=g) * 3).half()
    scores = torch.randn((K, *TILE), generator=g)
    sl = (slice(6, 134), slice(71, 183), slice(0, 112))

    def whole(acc):
        acc[(slice(None), *sl)] += scores
        return acc

    def chunks(n):
        def add(acc):
            for c in range(0, K, n):
                acc[(slice(c, c + n), *sl)] += scores[c:c + n]
            return acc
        return add

    rows = []
    t_ref, ref = best_of(whole, sums.clone)
    rows.append(("tile add: all classes at once", t_ref, True))
    for n in (16, 1):
        t, out = best_of(chunks(n), sums.clone)
        rows.append((f"tile add: {n} class(es) at a time", t, torch.equal(out.view(torch.int16), ref.view(torch.int16))))
    t_ref, ref = best_of(lambda s: s.argmax(0), lambda: sums)
    rows.append(("first argmax: torch.argmax(0) on fp16", t_ref, True))
    t, out = best_of(lambda s: first_argmax(s), lambda: sums)
    rows.append(("first argmax: one class at a time", t, torch.equal(out.long(), ref)))
    t_ref, ref = best_of(lambda s: bool(torch.isinf(s).any()), lambda: sums)
    rows.append(("overflow check: isinf(all).any()", t_ref, True))
    t, out = best_of(lambda s: not all(bool(torch.isfinite(s[c]).all()) for c in range(K)), lambda: sums)
    rows.append(("overflow check: isfinite per class", t, out == ref))
    print(f"CPU flags: {cpu_flags()}; {a.threads} threads; sums {K} x {GRID} fp16, tile scores {TILE} fp32\n")
    print("| step | s | same result |\n|---|---|---|")
    for name, t, same in rows:
        print(f"| {name} | {t:.3f} | {same} |")


if __name__ == "__main__":
    main()
