"""Held-out quality of the head-and-neck organ model: Dice, 95% Hausdorff distance, confidence, time.

    .venv/bin/python Testing/Benchmarks/eval_head_neck.py [--model FOLDER] [--json OUT.json] [--markdown OUT.md]

Runs the model through the runner (``medsegai.Predictor``, exactly what ``medsegai segment --task
head_neck_oar`` does) on every case of Resources/Splits/openkbp_validation.json, which no
training run ever read, with the entropy uncertainty so that every segment gets its Soft Dice
Confidence. An organ not contoured in a case has no reference there and is left out of that
case's figures; an organ contoured but not predicted counts as Dice 0 (its HD95 is then missing
and counted). Prints per-organ medians and the confidence-against-Dice relation.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.stats import spearmanr

from medsegai import Predictor
from medsegai.datasets import openkbp
from medsegai.evaluate import dice as dice_of, hd95


def evaluate(model, data: Path, cases, uncertainty: Optional[str] = "entropy", precision: str = "auto",
             log=print) -> dict:
    predictor = (Predictor(task="head_neck_oar", precision=precision) if model is None
                 else Predictor(model=str(model), precision=precision))
    values = openkbp.organ_values(data)
    rows, times = [], []
    for case in cases:
        c = openkbp.read_case(data, case)
        t = time.perf_counter()
        res = predictor.predict(c.image, uncertainty=uncertainty)
        times.append(time.perf_counter() - t)
        pred = res.labels.array
        by_name = {s.name: s.value for s in res.segments}
        for name, ref_value in values.items():
            if name not in c.contoured:
                continue
            p, r = pred == by_name[name], c.organs == ref_value
            dice = dice_of(p, r)
            conf = (res.segment_confidence or {}).get(name, {})
            distance = hd95(p, r, c.image.spacing[::-1])
            rows.append({"case": case, "organ": name, "dice": dice,
                         "hd95_mm": float("nan") if distance is None else distance,
                         "soft_dice_confidence": conf.get("soft_dice", float("nan")),
                         "flagged": conf.get("flagged"), "voxels_ref": int(r.sum()), "voxels_pred": int(p.sum())})
        log(f"{case}: {times[-1]:.1f} s  " + " ".join(
            f"{r['organ']}={r['dice']:.2f}" for r in rows if r["case"] == case))
    return {"rows": rows, "seconds_per_case": times}


def summarise(result: dict) -> dict:
    rows = result["rows"]
    out = {}
    for organ in dict.fromkeys(r["organ"] for r in rows):
        rs = [r for r in rows if r["organ"] == organ]
        dice = np.array([r["dice"] for r in rs])
        hd = np.array([r["hd95_mm"] for r in rs])
        conf = np.array([r["soft_dice_confidence"] for r in rs], dtype=float)
        ok = np.isfinite(conf)
        rho = spearmanr(conf[ok], dice[ok]).statistic if ok.sum() >= 3 else float("nan")
        flagged = [r for r in rs if r["flagged"] == 1]
        out[organ] = {
            "cases": len(rs), "dice_median": float(np.median(dice)), "dice_q1": float(np.percentile(dice, 25)),
            "dice_q3": float(np.percentile(dice, 75)), "dice_mean": float(dice.mean()),
            "hd95_median_mm": float(np.nanmedian(hd)) if np.isfinite(hd).any() else float("nan"),
            "hd95_missing": int((~np.isfinite(hd)).sum()),
            "confidence_median": float(np.nanmedian(conf)) if ok.any() else float("nan"),
            "spearman_confidence_dice": float(rho),
            "flagged": len(flagged),
            "dice_median_flagged": float(np.median([r["dice"] for r in flagged])) if flagged else float("nan"),
            "dice_median_unflagged": float(np.median([r["dice"] for r in rs if r["flagged"] == 0]))
            if any(r["flagged"] == 0 for r in rs) else float("nan"),
        }
    t = np.array(result["seconds_per_case"])
    return {"organs": out, "seconds_per_case_median": float(np.median(t)), "seconds_per_case_max": float(t.max()),
            "cases": len(t)}


def markdown(summary: dict) -> str:
    lines = ["| organ | cases | Dice median (IQR) | HD95 median mm | confidence median | Spearman conf~Dice | "
             "flagged (Dice median flagged / not) |", "|---|---|---|---|---|---|---|"]
    for organ, s in summary["organs"].items():
        lines.append(f"| {organ} | {s['cases']} | {s['dice_median']:.3f} ({s['dice_q1']:.2f}-{s['dice_q3']:.2f}) | "
                     f"{s['hd95_median_mm']:.1f}{' (' + str(s['hd95_missing']) + ' missing)' if s['hd95_missing'] else ''}"
                     f" | {s['confidence_median']:.3f} | {s['spearman_confidence_dice']:.2f} | {s['flagged']} "
                     f"({s['dice_median_flagged']:.2f} / {s['dice_median_unflagged']:.2f}) |")
    lines.append(f"\n{summary['cases']} held-out cases; {summary['seconds_per_case_median']:.1f} s per case median "
                 f"(max {summary['seconds_per_case_max']:.1f} s), {summary.get('setting', '')}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped task head_neck_oar)")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", "../shared/data")))
    ap.add_argument("--limit", type=int, default=None, help="only the first N held-out cases")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="the runner's precision (auto: fp32 on the CPU; bf16 needs AVX-512 BF16 or AMX)")
    ap.add_argument("--no-uncertainty", action="store_true", help="labels only (no confidence columns)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    cases = openkbp.validation_cases()[: a.limit]
    result = evaluate(a.model, a.data, cases, None if a.no_uncertainty else "entropy", a.precision)
    summary = summarise(result)
    summary["setting"] = (f"precision {a.precision}, "
                          + ("labels only" if a.no_uncertainty else "entropy uncertainty included"))
    text = markdown(summary)
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in Path("/proc/cpuinfo").read_text()]
    print(text)
    print(f"CPU: {platform.processor() or platform.machine()}, flags {' '.join(flags)}, {a.threads} threads")
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, **result}, indent=1))
    if a.markdown:
        a.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
