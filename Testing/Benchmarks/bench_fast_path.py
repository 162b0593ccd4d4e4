"""Fast-path candidates against exact mode, side by side in one run, on trained models.

    .venv/bin/python Testing/Benchmarks/bench_fast_path.py [--threads 2] [--hn-cases 3]

Candidates (each run on the same inputs with the predictor loaded once, after a warm-up):
  exact         the default: fp32, the pipeline's own tile step (0.5)
  step 0.75     a coarser sliding-window step
  step 1.0      no tile overlap
  bf16          plain bf16 autocast (only on CPUs with AVX-512 BF16 or AMX; refused elsewhere)
  speed fast    what --speed fast chooses on this machine (on bf16 CPUs: bf16 with the
                full-resolution layers in fp32; elsewhere exact mode)
and, for skipping tiles wholly outside the body, the number of tiles that qualify (every voxel
below -300 HU in the network's input), which bounds what that candidate can save.

Inputs: the bundled demo model on the full-size Pancreas-CT-CB_001 series, and the head-and-neck
model on the first held-out patients of Resources/Splits/openkbp_validation.json (never trained on).
Agreement: Dice of each candidate's labels against exact mode's, per structure of >= 1000 voxels.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from bench_common import cpu_flags
from medsegai import Predictor
from medsegai.datasets import openkbp
from medsegai.evaluate import dice
from medsegai.inference.device import cpu_has_bf16_units
from medsegai.io.read import read_image
from medsegai.run_request import RunRequest

HERE = Path(__file__).resolve().parent
PANCREAS = "ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom"


def candidates():
    """(label, predictor options, per-call options); precision is fixed when a predictor is built."""
    out = [("exact", {}, {}), ("step 0.75", {}, {"tile_step": 0.75}), ("step 1.0", {}, {"tile_step": 1.0})]
    if cpu_has_bf16_units():
        out.append(("bf16", {"precision": "bf16"}, {}))
        out.append(("bf16 + step 0.75", {"precision": "bf16"}, {"tile_step": 0.75}))
    out.append(("speed fast", {"speed": "fast"}, {}))
    return out


def run_case(predictors, image, names) -> dict:
    rows = {}
    exact_labels = exact_secs = None
    for label, built, options in candidates():
        predictor = predictors(built)
        t = time.perf_counter()
        res = predictor.predict(image, **options)
        secs = time.perf_counter() - t
        labels = res.labels.array
        if exact_labels is None:
            exact_labels, exact_secs = labels, secs
        agreement = {}
        for value, name in names.items():
            ref = exact_labels == value
            if ref.sum() >= 1000:
                agreement[name] = dice(labels == value, ref)
        rows[label] = {"seconds": secs, "ratio": exact_secs / secs, "min_dice": min(agreement.values(), default=1.0),
                       "worst": min(agreement, key=agreement.get) if agreement else "-",
                       "structures": len(agreement), "below": sum(d < 0.99 for d in agreement.values())}
    return rows


class Predictors:
    """One loaded predictor per precision for a model, warmed up on first use."""

    def __init__(self, image, **model):
        self.image, self.model, self.cache = image, model, {}

    def __call__(self, built: dict) -> Predictor:
        key = tuple(sorted(built.items()))
        if key not in self.cache:
            p = Predictor(request=RunRequest(**self.model, **built))
            p.predict(self.image)  # loads the model and fills caches; not timed
            self.cache[key] = p
        return self.cache[key]


def body_tiles(image, patch, step, spacing_model) -> str:
    """Tiles of the model-resolution grid whose voxels all lie below -300 HU (outside the body)."""
    from medsegai.inference.sliding_window import tile_slicers
    from scipy import ndimage

    arr = image.array.astype(np.float32)
    zoom = [s / m for s, m in zip(image.spacing[::-1], spacing_model)]
    small = ndimage.zoom(arr, zoom, order=1)
    shape = [max(a, p) for a, p in zip(small.shape, patch)]
    padded = np.full(shape, -1024.0, np.float32)
    padded[tuple(slice(0, s) for s in small.shape)] = small
    tiles = tile_slicers(padded.shape, patch, step)
    outside = sum(1 for sl in tiles if padded[sl].max() < -300)
    return f"{outside} of {len(tiles)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", HERE.parents[2] / "shared/data")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hn-cases", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"## Fast-path candidates against exact mode ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print(f"`.venv/bin/python Testing/Benchmarks/bench_fast_path.py --threads {a.threads} --hn-cases {a.hn_cases}`\n")
    print(f"CPU flags: {cpu_flags()}; bf16 units: {cpu_has_bf16_units()}; {a.threads} threads\n")

    pancreas = read_image(a.data / PANCREAS)
    cases = [("demo model, Pancreas-CT-CB_001 (134 x 512 x 512)", {"model": "medsegai_ct_demo"}, pancreas)]
    for case in openkbp.validation_cases()[: a.hn_cases]:
        cases.append((f"head and neck, held-out {case}", {"task": "head_neck_oar"}, openkbp.read_case(a.data, case).image))
    print("| input | candidate | s | exact / candidate | structures | below 0.99 | min Dice vs exact (structure) |")
    print("|---|---|---|---|---|---|---|")
    demo = None
    for title, model, image in cases:
        predictors = Predictors(image, **model)
        exact = predictors({})
        demo = demo or exact
        names = {v: n for v, n in exact.label_names.items() if v}
        for label, row in run_case(predictors, image, names).items():
            print(f"| {title} | {label} | {row['seconds']:.1f} | {row['ratio']:.2f}x | {row['structures']} | "
                  f"{row['below']} | "
                  f"{row['min_dice']:.4f} ({row['worst']}) |", flush=True)
    print(f"\nspeed fast here: {predictors({'speed': 'fast'}).speed.note}")
    loaded = demo.loaded_models[0]
    patch = tuple(loaded.config.patch_size)
    spacing = tuple(loaded.config.spacing)
    print(f"\nTiles wholly outside the body (all below -300 HU) on the pancreas CT at the demo model's "
          f"{spacing} mm, patch {patch}: step 0.5: {body_tiles(cases[0][2], patch, 0.5, spacing)}; "
          f"step 0.75: {body_tiles(cases[0][2], patch, 0.75, spacing)}")


if __name__ == "__main__":
    main()
