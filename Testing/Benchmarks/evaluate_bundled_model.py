"""Evaluate the bundled demo model: Dice on the held-out scan, a look at an unseen full-size CT.

  .venv/bin/python Testing/Benchmarks/evaluate_bundled_model.py --out /tmp/medsegai_eval

1. Held out from training: TotalSegmentator's DICOM example series (`example_ct_dicom`, another
   scan than the training CT) scored against TotalSegmentator's labels for it
   (`example_seg_dicom.nii.gz`), per structure, for the structures the model learned.
2. The training CT's upper 30 slices (`example_ct_sm`, a crop of `example_ct`, which was trained
   on) against TotalSegmentator's 1.5 mm labels (`example_seg`): a fit check, not generalisation.
3. The full-size Pancreas-CT-CB_001 series (never seen): segmentation, volumes and a preview PNG.
Writes evaluation.json and the previews into --out.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "MedSegAIInference"))


def main() -> None:
    import medsegai
    from medsegai.nnunet.model_folder import load_model_folder
    from medsegai.outputs import write_result_files
    from medsegai.preview import write_preview
    from medsegai.training.dataset import LabelMap, Pair, load_case
    from medsegai.training.validation import dice_per_structure

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path,
                    default=REPO / "Resources/Models/medsegai_ct_demo/MedSegAITrainer__nnUNetPlans__3d_fullres")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", REPO.parent / "shared/data")))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    ref = a.data / "ct/totalsegmentator-examples/tests/reference_files"
    model = load_model_folder(a.model)
    names = model.config.label_names
    import torch

    ck = torch.load(a.model / "fold_0/checkpoint_final.pth", weights_only=True)
    trained = ck["medsegai"]["trained_label_values"]
    lm = LabelMap(names)
    report = {"model": str(a.model), "trained_structures": [names[v] for v in trained if v]}

    def score(case_name, image_path, label_path):
        case = load_case(Pair(case_name, image_path, label_path), lm)
        t = time.perf_counter()
        res = medsegai.segment(case.image, model=a.model, device="cpu", threads=a.threads)
        secs = time.perf_counter() - t
        ref_present = set(np.unique(case.label).tolist())
        dice = dice_per_structure(res.labels.array, case.label, names, [v for v in trained if v in ref_present])
        fp = {names[v]: int((res.labels.array == v).sum()) for v in np.unique(res.labels.array)
              if v and v not in ref_present}
        write_preview(case.image, res, a.out / f"{case_name}_preview.png")
        return {"dice": dict(sorted(dice.items(), key=lambda kv: -kv[1])),
                "mean_dice": float(np.mean(list(dice.values()))) if dice else None,
                "predicted_but_not_in_reference_voxels": fp, "seconds": round(secs, 1)}

    report["held_out_dicom"] = score("dicom_case", ref / "example_ct_dicom", ref / "example_seg_dicom.nii.gz")
    report["training_image_ct_sm"] = score("example_ct_sm", ref / "example_ct_sm.nii.gz", ref / "example_seg.nii.gz")

    pancreas = a.data / "ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom"
    if not any(p.is_file() for p in pancreas.iterdir()):
        sub = [p for p in pancreas.rglob("*") if p.is_dir() and any(q.is_file() for q in p.iterdir())]
        pancreas = sub[0]
    from medsegai.io.read import read_image

    img = read_image(pancreas)
    t = time.perf_counter()
    res = medsegai.segment(img, model=a.model, device="cpu", threads=a.threads)
    secs = time.perf_counter() - t
    write_result_files(res, a.out / "pancreas_ct", stem="pancreas_ct")
    write_preview(img, res, a.out / "pancreas_ct_preview.png")
    ml = float(np.prod(img.spacing)) / 1000
    vals, counts = np.unique(res.labels.array, return_counts=True)
    report["pancreas_ct"] = {"shape": list(img.shape), "spacing": list(img.spacing), "seconds": round(secs, 1),
                             "timings": res.timings,
                             "volumes_ml": {names[int(v)]: round(c * ml, 1) for v, c in zip(vals, counts) if v}}
    (a.out / "evaluation.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
