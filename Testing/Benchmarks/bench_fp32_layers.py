"""Which layers must stay fp32 under bf16 autocast to keep exact mode's labels (why --speed fast is
what it is; inference/mixed_precision.py).

    .venv/bin/python Testing/Benchmarks/bench_fp32_layers.py [--threads 2]

The bundled demo model on the full-size Pancreas-CT-CB_001 series (CPUs with bf16 units only). Each
variant keeps a set of layers in fp32 and runs the rest in bf16; agreement is the Dice of its labels
against fp32 exact mode for every structure of >= 1000 voxels. Layer sets: first (the first
convolution), enc0 (the first encoder stage), declast (the last decoder stage), head (the
segmentation layer); "full resolution" is what --speed fast uses (full_resolution_modules).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from medsegai import Predictor
from medsegai.evaluate import dice
from medsegai.inference.device import cpu_has_bf16_units
from medsegai.inference.mixed_precision import keep_in_fp32
from medsegai.io.read import read_image

HERE = Path(__file__).resolve().parent
PANCREAS = "ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom"
VARIANTS = ("bf16", "first", "first+head", "enc0+head", "enc0+declast", "full resolution")


def layers(net, variant: str):
    parts = {"first": [net.encoder.stages[0][0].convs[0]], "enc0": [net.encoder.stages[0]],
             "declast": [net.decoder.stages[-1]], "head": [net.decoder.seg_layers[-1]]}
    if variant == "full resolution":
        return net.full_resolution_modules()
    return [m for p in variant.split("+") if p in parts for m in parts[p]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", HERE.parents[2] / "shared/data")))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if not cpu_has_bf16_units():
        raise SystemExit("This CPU has no bf16 units (AVX-512 BF16 or AMX); bf16 is refused here.")
    torch.set_num_threads(a.threads)
    image = read_image(a.data / PANCREAS)
    print(f"## Layers kept in fp32 under bf16 ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print(f"`.venv/bin/python Testing/Benchmarks/bench_fp32_layers.py --threads {a.threads}`\n")
    print("| variant | s | structures | below 0.99 | min Dice vs exact (structure) |\n|---|---|---|---|---|")
    exact = Predictor(model="medsegai_ct_demo", device="cpu", precision="fp32").predict(image)
    ref = exact.labels.array
    names = {s.value: s.name for s in exact.present_segments() if (ref == s.value).sum() >= 1000}
    for variant in VARIANTS:
        p = Predictor(model="medsegai_ct_demo", device="cpu", precision="bf16")
        p.predict(image)  # builds and warms the network
        for net in p.loaded_models[0]._networks.values():
            keep_in_fp32(layers(net, variant))
        t = time.perf_counter()
        lab = p.predict(image).labels.array
        secs = time.perf_counter() - t
        d = {n: dice(lab == v, ref == v) for v, n in names.items()}
        worst = min(d, key=d.get)
        print(f"| {variant} | {secs:.1f} | {len(d)} | {sum(x < 0.99 for x in d.values())} | {d[worst]:.4f} ({worst}) |",
              flush=True)


if __name__ == "__main__":
    main()
