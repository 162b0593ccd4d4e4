"""One training step of the head-and-neck network in fp32 and with bf16 autocast, side by side.

    .venv/bin/python Testing/Benchmarks/bench_training_step.py [--threads 2] [--steps 6]

The network of Resources/Models/medsegai_head_neck_oar (PlainConvUNet 16..256), a batch of 2 patches
48 x 80 x 80, the trainer's loss (medsegai.training.loop.Loss with deep supervision) and AdamW:
forward, loss, backward and step, as ``medsegai train`` does them. fp32 and bf16 alternate so a
noisy machine hurts both alike; medians over the steps after the first (warm-up) are printed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from medsegai.inference.device import autocast, cpu_has_bf16_units
from medsegai.nnunet.network import build_network
from medsegai.nnunet.plans import parse_model_config
from medsegai.training.loop import DS_WEIGHTS, Loss, _deep_supervision_targets

MODEL = Path(__file__).resolve().parents[2] / "Resources/Models/medsegai_head_neck_oar/MedSegAITrainer__nnUNetPlans__3d_fullres"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    plans, dataset = (json.loads((MODEL / f).read_text()) for f in ("plans.json", "dataset.json"))
    config = parse_model_config(plans, dataset, "3d_fullres")
    net = build_network(config.network, 1, len(dataset["labels"]), deep_supervision=True)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2, 1) + tuple(config.patch_size), generator=g)
    y = torch.randint(0, len(dataset["labels"]), (2,) + tuple(config.patch_size), generator=g)
    loss_fn, w = Loss(), np.array(DS_WEIGHTS) / sum(DS_WEIGHTS)
    precisions = ["fp32"] + (["bf16"] if cpu_has_bf16_units() else [])
    times = {p: [] for p in precisions}
    for _ in range(a.steps):
        for p in precisions:
            t = time.perf_counter()
            with autocast(torch.device("cpu"), p):
                outs = net(x)
            loss = sum(wi * loss_fn(o.float(), tt) for wi, o, tt in zip(w, outs, _deep_supervision_targets(y, 3)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times[p].append(time.perf_counter() - t)
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in Path("/proc/cpuinfo").read_text()]
    print(f"CPU flags: {' '.join(flags)}; {a.threads} threads; patch {tuple(config.patch_size)}, batch 2")
    med = {p: statistics.median(v[1:]) for p, v in times.items()}
    for p in precisions:
        print(f"{p}: {med[p]:.2f} s per step (median of {len(times[p]) - 1})")
    if "bf16" in med:
        print(f"bf16 / fp32 speed-up: {med['fp32'] / med['bf16']:.2f}x")
    else:
        print("bf16 not measured: this CPU has no bf16 units (AVX-512 BF16 or AMX)")


if __name__ == "__main__":
    main()
