#!/usr/bin/env python
"""Clicks-to-Dice and latency of MedSegAI's click model on the held-out objects, beside the classical engine.

Held-out groups: the OpenKBP validation organs and target volumes (Resources/Splits/
openkbp_validation.json), the liver of the 512x512 TotalSegmentator DICOM CT, the BraTS FLAIR
edema. Each object: the benchmark's click simulator (first click at the deepest point, then the
largest error region), Dice after every click. Latency: warm clicks on the full-size
Pancreas-CT-CB_001 (512x512x134), which has no reference: clicks at fixed soft-tissue points.

    MEDSEGAI_DATA_DIR=../shared/data python Testing/Benchmarks/bench_click_model.py \
        [--model DIR] [--cases 10] [--clicks 10] [--engines clicks,classical] -o results.json
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medsegai.interactive.click_simulation import simulate_clicks
from medsegai.interactive.clicks.data import TOTALSEG, data_dir, openkbp_scan, validation_cases
from medsegai.interactive.engine import Prompt
from medsegai.io.image import Image
from medsegai.io.read import read_image

COUNTS = (1, 3, 5, 10)


def run_object(engine, image: Image, ref: np.ndarray, clicks: int):
    engine.set_image(image)
    state = {"mask": np.zeros(ref.shape, np.uint8), "prompts": []}

    def add_point(point, positive):
        state["prompts"].append(Prompt("point", positive, point=tuple(int(c) for c in point)))
        u = engine.predict(state["prompts"], state["mask"])
        state["mask"][u.region] = u.values

    return simulate_clicks(add_point, lambda: state["mask"], ref.astype(np.uint8), clicks, image.spacing[::-1])


def held_out_objects(root: Path, cases: int):
    for case in validation_cases()[:cases]:
        scan = openkbp_scan(root, case)
        image = Image(scan.array, scan.spacing[::-1])
        for name, get, _ in scan.objects:
            yield "openkbp_validation", f"{case}/{name}", image, get()
    ct = read_image(root / TOTALSEG / "example_ct_dicom")
    seg = sitk.Resample(sitk.ReadImage(str(root / TOTALSEG / "example_seg_dicom.nii.gz")), ct.to_sitk(),
                        sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    yield "liver_dicom_512", "example_ct_dicom/liver", ct, sitk.GetArrayFromImage(seg) == 5
    mri = root / "mri/brats-flair-edema"
    flair = read_image(mri / "image_BraTS2021_01646_flair.nii.gz")
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(mri / "label_BraTS2021_01646_edema.nii.gz"))) > 0
    yield "brats_edema", "BraTS2021_01646/edema", flair, lab


def latency(engine, root: Path, n: int = 12):
    ct = read_image(root / "ct/pancreas-ct-cb001-dicom")
    engine.set_image(ct)
    shape = np.array(ct.shape)
    mask = np.zeros(ct.shape, np.uint8)
    prompts, seconds, regions = [], [], []
    rng = np.random.default_rng(0)
    centre = shape // 2
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for c in range(n + 1):
        p = tuple(int(v) for v in np.clip(centre + rng.integers(-1, 2, 3) * np.array([4, 30, 30]), 0, shape - 1))
        prompts.append(Prompt("point", c % 3 != 2, point=p))
        t = time.perf_counter()
        u = engine.predict(prompts, mask)
        dt = time.perf_counter() - t
        mask[u.region] = u.values
        if c:  # the first click is the cold one
            seconds.append(dt)
            regions.append(int(np.prod(u.values.shape)))
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"image_shape": list(ct.shape), "clicks": n, "median_s": float(np.median(seconds)),
            "p95_s": float(np.percentile(seconds, 95)), "max_update_voxels": max(regions),
            "peak_rss_growth_mb": (rss1 - rss0) / 1024.0}


def summarise(rows):
    out = {}
    for group in sorted({r["group"] for r in rows}):
        rs = [r for r in rows if r["group"] == group]
        out[group] = {"objects": len(rs), **{f"dice@{k}": float(np.median([r["dice"][min(k, len(r["dice"])) - 1] for r in rs]))
                                             for k in COUNTS},
                      "median_s_per_click": float(np.median([s for r in rs for s in r["seconds"]]))}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--cases", type=int, default=10, help="OpenKBP validation cases (first N of the split)")
    ap.add_argument("--clicks", type=int, default=10)
    ap.add_argument("--engines", default="clicks", help="comma-separated: clicks, classical (default clicks)")
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args(argv)
    root = data_dir()
    from medsegai.interactive.clicks.engine import ClickModelEngine

    engines = {}
    for name in args.engines.split(","):
        if name == "clicks":
            engines[name] = ClickModelEngine(args.model, device="cpu", threads=2)
        elif name == "classical":
            from medsegai.interactive.classical import ClassicalEngine

            engines[name] = ClassicalEngine()
        else:
            ap.error(f"unknown engine {name}")
    result = {}
    for name, engine in engines.items():
        rows = []
        for group, obj, image, ref in held_out_objects(root, args.cases):
            run = run_object(engine, image, ref, args.clicks)
            rows.append({"group": group, "object": obj, "dice": run.dice, "seconds": run.seconds})
            print(f"{name:9s} {group:20s} {obj:28s} " + " ".join(f"{run.dice_at(k):.3f}" for k in COUNTS), flush=True)
        result[name] = {"summary": summarise(rows), "objects": rows}
        if name == "clicks":
            result[name]["latency_pancreas_ct"] = latency(engine, root)
        print(json.dumps({name: {k: v for k, v in result[name].items() if k != "objects"}}, indent=1), flush=True)
    if args.output:
        args.output.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
