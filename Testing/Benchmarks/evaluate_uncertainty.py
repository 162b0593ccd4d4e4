"""How good is MedSegAI's uncertainty? Calibration, error detection and segment ranking on held-out CT.

  .venv/bin/python Testing/Benchmarks/evaluate_uncertainty.py --out /tmp/medsegai_unc

Held-out case: TotalSegmentator's DICOM example series (`example_ct_dicom`, 512x512x20, not used to
train the bundled model; see its model card) against TotalSegmentator's labels for it
(`example_seg_dicom.nii.gz`). Reference voxels of structures the model never learned count as
background, the class the model was trained to give them. For each method (entropy, tta,
mcdropout, ensemble when the model has several folds):

* ECE: expected calibration error of the top-class probability (15 equal-width bins), voxel level;
* Brier score: mean over voxels of sum_c (p_c - [c = reference])^2, the method's (mean) probabilities;
* AUROC of the voxel uncertainty map for detecting wrong voxels (label != reference);
* Spearman rank correlation between per-segment confidence (Soft Dice Confidence) and per-segment
  Dice with the reference, over the structures present in the prediction or the reference.

ECE and Brier are reported over all voxels and over the "body region" (prediction or reference
foreground, dilated by 10 mm), since air outside the body is trivially right. Memory: each run is a
separate process; its peak RSS is reported, and the same methods run on the full-size
Pancreas-CT-CB_001 series (512x512x134, no reference) to show memory stays bounded.
Writes uncertainty.json and the preview PNGs into --out.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "MedSegAIInference"))
DEFAULT_MODEL = REPO / "Resources/Models/medsegai_ct_demo/MedSegAITrainer__nnUNetPlans__3d_fullres"
REF = Path("ct/totalsegmentator-examples/tests/reference_files")


def ece(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    n = np.bincount(idx, minlength=bins)
    acc = np.bincount(idx, weights=correct.astype(np.float64), minlength=bins)
    cf = np.bincount(idx, weights=conf.astype(np.float64), minlength=bins)
    nz = n > 0
    return float(np.sum(np.abs(acc[nz] - cf[nz])) / conf.size)


def brier(probs: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> float:
    """Mean over masked voxels of sum_c (p_c - onehot_c)^2, one class at a time (probs fp16)."""
    total = np.zeros(int(mask.sum()), np.float64)
    r = ref[mask]
    for c in range(probs.shape[0]):
        p = probs[c][mask].astype(np.float64)
        total += (p - (r == c)) ** 2
    return float(total.mean())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * np.logical_and(a, b).sum() / s) if s else float("nan")


def run_one(args) -> dict:
    """One (case, method) in this process: segment, then the metrics; prints a JSON line."""
    import medsegai
    from medsegai.io.read import read_image

    t = time.perf_counter()
    if args.case == "dicom":
        image = read_image(args.data / REF / "example_ct_dicom")
    else:
        image = read_image(_pancreas(args.data))
    method = None if args.method == "none" else args.method
    res = medsegai.segment(image, model=args.model, device="cpu", threads=args.threads, uncertainty=method,
                           uncertainty_passes=args.passes,
                           return_probabilities=args.case == "dicom" and method is not None)
    seconds = time.perf_counter() - t
    out = {"case": args.case, "method": args.method, "seconds": round(seconds, 1), "shape": list(image.shape),
           "timings": {k: round(v, 1) for k, v in res.timings.items()}, "notes": res.notes}
    if args.case == "dicom" and method:
        out.update(_metrics(args, image, res))
    if method:
        from medsegai.preview import write_preview

        write_preview(image, res, args.out / f"{args.case}_{args.method}_preview.png")
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    return out


def _metrics(args, image, res) -> dict:
    import SimpleITK as sitk
    import torch
    from scipy import ndimage
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from medsegai.io.read import read_image

    ref_img = read_image(args.data / REF / "example_seg_dicom.nii.gz")
    if not ref_img.same_grid(image, atol=1e-2):  # labels of the same series: resample by nearest if needed
        rs = sitk.Resample(ref_img.to_sitk(), image.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        ref_arr = sitk.GetArrayFromImage(rs)
    else:
        ref_arr = ref_img.array
    ck = torch.load(args.model / "fold_0/checkpoint_final.pth", weights_only=True, map_location="cpu")
    trained = set(ck.get("medsegai", {}).get("trained_label_values") or range(res.probabilities.shape[0]))
    ref = np.where(np.isin(ref_arr, list(trained)), ref_arr, 0).astype(np.int64)
    pred = res.labels.array.astype(np.int64)
    probs = res.probabilities  # (K, k, j, i) fp16: the method's (mean) probabilities
    conf = probs.max(0).astype(np.float32)
    top = probs.argmax(0)
    body = ndimage.binary_dilation((ref > 0) | (pred > 0), iterations=max(1, int(round(10 / min(image.spacing)))))
    wrong = pred != ref
    u = res.uncertainty.array
    names = {s.value: s.name for s in res.segments}
    values = sorted((set(np.unique(pred).tolist()) | set(np.unique(ref).tolist())) - {0})
    seg_rows = []
    for v in values:
        c = res.segment_confidence.get(names[v])
        seg_rows.append({"structure": names[v], "dice": round(dice(pred == v, ref == v), 4),
                         "soft_dice_confidence": None if c is None else c["soft_dice"],
                         "mean_uncertainty": None if c is None else c["mean_uncertainty"],
                         "flagged": None if c is None else c["flagged"]})
    scored = [r for r in seg_rows if r["soft_dice_confidence"] is not None]
    rho = spearmanr([r["soft_dice_confidence"] for r in scored], [r["dice"] for r in scored]) if len(scored) > 2 else None
    rho_u = spearmanr([-r["mean_uncertainty"] for r in scored], [r["dice"] for r in scored]) if len(scored) > 2 else None
    return {
        "voxels": int(pred.size), "wrong_voxels": int(wrong.sum()), "wrong_voxels_body": int(wrong[body].sum()),
        "ece": round(ece(conf.ravel(), (top == ref).ravel()), 5),
        "ece_body": round(ece(conf[body], (top == ref)[body]), 5),
        "brier": round(brier(probs, ref, np.ones(ref.shape, bool)), 5),
        "brier_body": round(brier(probs, ref, body), 5),
        "auroc_wrong_voxels": round(float(roc_auc_score(wrong.ravel(), u.ravel())), 4),
        "auroc_wrong_voxels_body": round(float(roc_auc_score(wrong[body], u[body])), 4),
        "spearman_sdc_vs_dice": None if rho is None else round(float(rho.statistic), 4),
        "spearman_p": None if rho is None else round(float(rho.pvalue), 4),
        "spearman_neg_mean_uncertainty_vs_dice": None if rho_u is None else round(float(rho_u.statistic), 4),
        "segments": seg_rows,
    }


def _pancreas(data: Path) -> Path:
    root = data / "ct/pancreas-ct-cb001-dicom"
    dirs = sorted({p.parent for p in root.rglob("*.dcm")}) or sorted(
        p for p in root.rglob("*") if p.is_dir() and any(q.is_file() and q.suffix == "" for q in p.iterdir()))
    return dirs[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", REPO.parent / "shared/data")))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--passes", type=int, default=8)
    ap.add_argument("--methods", nargs="+", default=["entropy", "tta", "mcdropout", "ensemble"])
    ap.add_argument("--full-size", nargs="*", default=["none", "entropy", "tta"],
                    help="methods to run on the full-size Pancreas CT for time and peak memory")
    ap.add_argument("--one", nargs=2, metavar=("CASE", "METHOD"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.one:
        a.case, a.method = a.one
        print("@result " + json.dumps(run_one(a)), flush=True)
        return
    from medsegai.nnunet.model_folder import load_model_folder

    model = load_model_folder(a.model)
    report = {"model": str(a.model), "folds": model.folds, "dropout_p": model.config.network.dropout_p,
              "passes": a.passes, "threads": a.threads, "held_out": {}, "full_size": {}, "skipped": {}}
    jobs = [("dicom", "none")] + [("dicom", m) for m in a.methods] + [("pancreas", m) for m in a.full_size]
    for case, method in jobs:
        cmd = [sys.executable, __file__, "--one", case, method, "--model", str(a.model), "--data", str(a.data),
               "--out", str(a.out), "--threads", str(a.threads), "--passes", str(a.passes)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@result ")), None)
        key = "held_out" if case == "dicom" else "full_size"
        if line is None:  # e.g. ensemble of a single-fold model: the runner's own message is the result
            msg = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            report["skipped"][f"{case}/{method}"] = msg
            print(f"{case}/{method}: {msg}", flush=True)
            continue
        report[key][method] = json.loads(line[len("@result "):])
        r = report[key][method]
        print(f"{case}/{method}: {r['seconds']} s, peak RSS {r['peak_rss_mb']} MB"
              + (f", ECE {r['ece']}, Brier {r['brier']}, AUROC {r['auroc_wrong_voxels']}, "
                 f"rho {r['spearman_sdc_vs_dice']}" if case == "dicom" and method != "none" else ""), flush=True)
        (a.out / "uncertainty.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
