"""speed fast's segmentation head: a matrix product against oneDNN's 1x1x1 convolution, per 297 tile.

    .venv/bin/python Testing/Benchmarks/bench_fast_head.py [--repeats 6] [--threads 2]

Two copies of the random-weight 297 network (make_random_model.py), both with the full-resolution
layers in fp32 under bf16 autocast as --speed fast runs them; one keeps the head as oneDNN's
convolution, the other runs it as the product (inference/mixed_precision.py). They alternate on the
same 128 x 112 x 112 tile; the figures are medians, the RSS growth during a forward pass is polled
every 2 ms, and the labels (argmax) of the two are compared voxel by voxel. CPUs with bf16 units only.
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time

import torch

from bench_common import RANDOM_297, cpu_flags
from medsegai.inference import mixed_precision
from medsegai.inference.device import autocast, cpu_has_bf16_units
from medsegai.nnunet.model_folder import load_model_folder

def rss_gb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if not cpu_has_bf16_units():
        raise SystemExit("this CPU has no bf16 units: speed fast runs exact mode here")
    torch.set_num_threads(a.threads)
    model = load_model_folder(RANDOM_297)
    product, conv = model.make_network(0), model.make_network(0)
    mixed_precision.keep_full_resolution_in_fp32(product)
    pointwise = mixed_precision._is_pointwise
    mixed_precision._is_pointwise = lambda module: False  # the same fp32 layers, the head left a convolution
    try:
        mixed_precision.keep_full_resolution_in_fp32(conv)
    finally:
        mixed_precision._is_pointwise = pointwise

    peak = [0.0]

    def poll():
        while True:
            peak[0] = max(peak[0], rss_gb())
            time.sleep(0.002)

    threading.Thread(target=poll, daemon=True).start()
    x = torch.randn(1, 1, *model.config.patch_size, generator=torch.Generator().manual_seed(0))
    nets = {"matrix product": product, "oneDNN convolution": conv}
    times = {k: [] for k in nets}
    growth = {k: 0.0 for k in nets}
    agree = []
    cpu = torch.device("cpu")
    with torch.inference_mode():
        for net in nets.values():
            with autocast(cpu, "bf16"):
                net(x)  # warm-up: oneDNN builds its kernels
        for _ in range(a.repeats):
            out = {}
            for name, net in nets.items():
                time.sleep(0.2)
                before = peak[0] = rss_gb()
                t = time.perf_counter()
                with autocast(cpu, "bf16"):
                    out[name] = net(x).argmax(1)
                times[name].append(time.perf_counter() - t)
                growth[name] = max(growth[name], peak[0] - before)
            agree.append((out["matrix product"] == out["oneDNN convolution"]).float().mean().item())
    print(f"CPU flags: {cpu_flags()}; {a.threads} threads; tile {tuple(model.config.patch_size)}; "
          f"{a.repeats} alternating repeats\n")
    print("| head | s per tile, median | RSS growth in a forward pass GB |\n|---|---|---|")
    for name in nets:
        print(f"| {name} | {statistics.median(times[name]):.2f} | {growth[name]:.2f} |")
    ratio = statistics.median(times["oneDNN convolution"]) / statistics.median(times["matrix product"])
    print(f"\nconvolution / product: {ratio:.2f}x; labels agree on {min(agree):.6f} of the tile's voxels (worst repeat)")


if __name__ == "__main__":
    main()
