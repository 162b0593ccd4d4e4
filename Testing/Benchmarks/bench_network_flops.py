"""The 297 network's achieved GFLOP/s per tile against this machine's measured matmul peaks.

    .venv/bin/python Testing/Benchmarks/bench_network_flops.py [--threads 2] [--repeats 3]

The network is TotalSegmentator's `total --fast` architecture (random weights, Testing/Benchmarks/
make_random_model.py; speed depends only on the architecture), one 128 x 112 x 112 tile as the
sliding window feeds it. FLOPs are counted by torch.utils.flop_counter on one forward pass (2 per
multiply-add). The peaks are large square matmuls (torch.mm, 4096^2) in fp32, and in bf16 where the
CPU has bf16 units; "speed fast" is bf16 with the full-resolution layers in fp32, as --speed fast
runs it there. Times are medians of --repeats after a warm-up.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench_common import median_time
from medsegai.inference.device import autocast, cpu_has_bf16_units
from medsegai.inference.mixed_precision import keep_full_resolution_in_fp32
from medsegai.nnunet.model_folder import load_model_folder

HERE = Path(__file__).resolve().parent


def matmul_peak(dtype, repeats: int, n: int = 4096) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return 2 * n ** 3 / median_time(lambda: torch.mm(a, b), repeats)[0] / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    flags = next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "").split()
    with tempfile.TemporaryDirectory(prefix="medsegai-flops-") as tmp:
        subprocess.run([sys.executable, str(HERE / "make_random_model.py"), "--out", tmp], check=True,
                       stdout=subprocess.DEVNULL)
        folder = next(Path(tmp).glob("Dataset297_*/*__3d_fullres"))
        model = load_model_folder(folder)
        net = model.network(0, torch.device("cpu"))
        patch = tuple(model.config.patch_size)
        x = torch.randn(1, 1, *patch)
        from torch.utils.flop_counter import FlopCounterMode

        with torch.inference_mode():
            counter = FlopCounterMode(display=False)
            with counter:
                net(x)
            gflop = counter.get_total_flops() / 1e9
            rows = []
            precisions = ["fp32"] + (["bf16", "speed fast"] if cpu_has_bf16_units() else [])
            mixed = model.make_network(0) if "speed fast" in precisions else None
            if mixed is not None:
                keep_full_resolution_in_fp32(mixed)
            for precision in precisions:
                def tile(p=precision):
                    with autocast(torch.device("cpu"), "fp32" if p == "fp32" else "bf16"):
                        (mixed if p == "speed fast" else net)(x)
                secs = median_time(tile, a.repeats)[0]
                # speed fast runs about half its FLOPs in fp32, so its share is read against the bf16 peak
                peak = matmul_peak(torch.float32 if precision == "fp32" else torch.bfloat16, a.repeats)
                rows.append((precision, secs, gflop / secs, peak))
    print(f"## The 297 network against the matmul peak ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print(f"`.venv/bin/python Testing/Benchmarks/bench_network_flops.py --threads {a.threads} --repeats {a.repeats}`\n")
    print(f"CPU flags: {' '.join(f for f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16') if f in flags)}; "
          f"{a.threads} threads; torch {torch.__version__}; tile {patch}, {gflop:.0f} GFLOP per forward\n")
    print("| precision | s per tile | achieved GFLOP/s | matmul peak GFLOP/s | share of peak |")
    print("|---|---|---|---|---|")
    for precision, secs, achieved, peak in rows:
        print(f"| {precision} | {secs:.2f} | {achieved:.0f} | {peak:.0f} | {achieved / peak:.0%} |")
    if not cpu_has_bf16_units():
        print("\nbf16: not run (no AVX-512 BF16 or AMX on this CPU; bf16 is refused here).")


if __name__ == "__main__":
    main()
