#!/usr/bin/env python
"""Interactive engines side by side: clicks-to-Dice, NoC, latency, set_image time and memory.

Objects none of the engines was trained on (the click model's hold-out): the OpenKBP validation
organs and target volumes (Resources/Splits/openkbp_validation.json; small organs and targets),
the liver of the 512x512 TotalSegmentator DICOM CT (a large organ on a full-size slice) and the
BraTS FLAIR edema (a lesion). Each object: the click simulator of
``medsegai.interactive.click_simulation`` (first click at the deepest point, each next one at the
deepest point of the largest 26-connected error region, sign from the reference), up to 20 clicks.
Reported per engine and group: median Dice after 1, 3, 5 and 10 clicks, NoC@85 and NoC@90 (capped
at 20), median and 95th-percentile warm latency per click. Latency on a full-size CT: warm clicks
on Pancreas-CT-CB_001 (512x512x134; no reference, clicks at fixed soft-tissue points), with the
``set_image`` time and the process's peak RSS growth. ``--nninteractive-latency`` adds
nnInteractive's real architecture (ResEncL, 192^3 patch, random weights) for latency only.

Run one engine per process so each peak RSS is its own:

    MEDSEGAI_DATA_DIR=../shared/data .venv/bin/python Testing/Benchmarks/bench_interactive.py \\
        --engines clicks,classical [--cases 34] [--clicks 20] [--nninteractive-latency] -o results.json
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Testing" / "Python"))  # nninteractive_support (test-only, for latency)

from medsegai.interactive.click_simulation import simulate_clicks  # noqa: E402
from medsegai.interactive.clicks.data import TOTALSEG, data_dir, openkbp_scan, validation_cases  # noqa: E402
from medsegai.interactive.engine import Prompt  # noqa: E402
from medsegai.interactive.registry import create  # noqa: E402
from medsegai.io.image import Image  # noqa: E402
from medsegai.io.read import read_image  # noqa: E402

COUNTS = (1, 3, 5, 10)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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


def latency(engine, root: Path, n: int = 12) -> dict:
    ct = read_image(root / "ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom")
    rss0 = _rss_mb()
    t = time.perf_counter()
    engine.set_image(ct)
    set_image_s = time.perf_counter() - t
    shape = np.array(ct.shape)
    mask = np.zeros(ct.shape, np.uint8)
    prompts, seconds, regions = [], [], []
    rng = np.random.default_rng(0)
    centre = shape // 2
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
    return {"image_shape": list(ct.shape), "clicks": n, "set_image_s": set_image_s,
            "median_s": float(np.median(seconds)), "p95_s": float(np.percentile(seconds, 95)),
            "max_update_voxels": max(regions), "peak_rss_growth_mb": _rss_mb() - rss0}


def summarise(rows) -> dict:
    from medsegai.interactive.click_simulation import ClickRun

    out = {}
    for group in sorted({r["group"] for r in rows}):
        runs = [ClickRun(r["dice"], r["seconds"]) for r in rows if r["group"] == group]
        seconds = [s for r in runs for s in r.seconds[1:]]  # warm clicks
        out[group] = {"objects": len(runs),
                      **{f"dice@{k}": float(np.median([r.dice_at(k) for r in runs])) for k in COUNTS},
                      "noc@85": float(np.median([r.noc(0.85) for r in runs])),
                      "noc@90": float(np.median([r.noc(0.90) for r in runs])),
                      "median_s_per_click": float(np.median(seconds)) if seconds else None,
                      "p95_s_per_click": float(np.percentile(seconds, 95)) if seconds else None}
    return out


def nninteractive_latency(root: Path, clicks: int = 2) -> dict:
    """nnInteractive's real network shape (ResEncL: 6 stages 32..320, 1-3-4-6-6-6 blocks, 192^3), random weights."""
    from nninteractive_support import write_nninteractive_folder

    folder = write_nninteractive_folder(Path(tempfile.mkdtemp(prefix="nnint-resencl-")) / "model",
                                        patch=(192, 192, 192), features=(32, 64, 128, 256, 320, 320),
                                        blocks=(1, 3, 4, 6, 6, 6))
    engine, _ = create("nninteractive", model=folder, device="cpu", threads=2)
    engine.autozoom = False  # one forward pass per click: random weights would drive AutoZoom to its maximum
    return latency(engine, root, n=clicks)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=34, help="OpenKBP validation cases (first N of the split)")
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--engines", default="clicks,classical", help="comma-separated registry names")
    ap.add_argument("--nninteractive-latency", action="store_true")
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args(argv)
    root = data_dir()
    result = {}
    for name in args.engines.split(","):
        engine, note = create(name, device="cpu", threads=2)
        rows = []
        for group, obj, image, ref in held_out_objects(root, args.cases):
            run = run_object(engine, image, ref, args.clicks)
            rows.append({"group": group, "object": obj, "dice": run.dice, "seconds": run.seconds})
            print(f"{name:9s} {group:20s} {obj:28s} " + " ".join(f"{run.dice_at(k):.3f}" for k in COUNTS), flush=True)
        result[name] = {"summary": summarise(rows), "latency_pancreas_ct": latency(engine, root), "objects": rows}
        print(json.dumps({name: {k: v for k, v in result[name].items() if k != "objects"}}, indent=1), flush=True)
    if args.nninteractive_latency:
        result["nninteractive_resencl_random"] = {"latency_pancreas_ct": nninteractive_latency(root)}
        print(json.dumps(result["nninteractive_resencl_random"], indent=1), flush=True)
    if args.output:
        args.output.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
