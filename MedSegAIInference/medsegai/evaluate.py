"""``medsegai evaluate``: Dice and 95% Hausdorff distance of a segmentation against a reference.

Either side may be a DICOM SEG (.dcm), a .seg.nrrd or a label map (.nii.gz, .nrrd, .mha). The
prediction is put on the reference's grid (nearest neighbour, in physical space), so a SEG over the
original DICOM series can be scored against a NIfTI reference and the other way round. Structures
are matched by name (case, spaces and underscores ignored); a plain label map has names only with
--labels (a JSON {name: value}, or our own segmentation_labels.csv), else its values are its names.

  medsegai evaluate prediction.dcm reference.nii.gz --labels labels.json --json scores.json

A structure of the reference missing from the prediction scores Dice 0 (its HD95 is empty); one the
reference does not hold is listed, not scored.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .errors import MedSegAIError
from .io.image import Image


class EvaluationError(MedSegAIError):
    """The two segmentations cannot be compared (no common structure, no overlap in space, ...)."""


@dataclass(frozen=True)
class StructureScore:
    name: str
    dice: float
    hd95_mm: Optional[float]  # None where either side is empty
    voxels_reference: int
    voxels_prediction: int


@dataclass
class Evaluation:
    scores: List[StructureScore]
    not_in_reference: List[str]  # predicted structures the reference does not name
    notes: List[str]

    @property
    def mean_dice(self) -> float:
        return float(np.mean([s.dice for s in self.scores])) if self.scores else float("nan")


@dataclass
class LabelledVolume:
    labels: Image
    values: Dict[str, int]  # structure name -> voxel value
    notes: List[str]


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


def read_labels_table(path: str | os.PathLike) -> Dict[str, int]:
    """{name: value} from a JSON object (either direction) or a CSV with value and name columns
    (what ``medsegai segment`` writes as segmentation_labels.csv)."""
    p = Path(path)
    if not p.is_file():
        raise EvaluationError(f"Label table not found: {p}")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(p.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            pairs = [(k, v) if not str(k).isdigit() else (v, k) for k, v in data.items()]
            return {str(name): int(value) for name, value in pairs if int(value) != 0}
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f))
        value_col = next(c for c in (rows[0] if rows else {}) if c.lower() in ("value", "label", "label_value"))
        name_col = next(c for c in rows[0] if c.lower() in ("name", "structure", "segment"))
        return {r[name_col]: int(r[value_col]) for r in rows if int(r[value_col]) != 0}
    except (ValueError, StopIteration, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{p.name} is not a label table: a JSON {{name: value}} or a CSV with value and "
                              f"name columns ({exc}).") from None


def load_segmentation(path: str | os.PathLike, grid: Optional[Image] = None,
                      names: Optional[Dict[str, int]] = None) -> LabelledVolume:
    """A segmentation file as labels (on ``grid`` when given) and its structures' values."""
    from .io.dicom_seg_read import read_dicom_seg, resample_to
    from .io.read import read_image
    from .io.seg_nrrd import read_seg_nrrd

    p = Path(path)
    if not p.exists():
        raise EvaluationError(f"Segmentation not found: {p}")
    lower = p.name.lower()
    notes: List[str] = []
    if lower.endswith(".dcm"):
        seg = read_dicom_seg(p)
        labels, segments = seg.labels, seg.segments
        notes += [f"{p.name}: {n}" for n in seg.notes]
        values = {s.name: s.value for s in segments}
    elif lower.endswith(".seg.nrrd"):
        labels, segments = read_seg_nrrd(p)
        values = {s.name: s.value for s in segments}
    else:
        labels = read_image(p, validate=False)
        if not np.issubdtype(labels.array.dtype, np.integer):
            rounded = np.rint(labels.array)
            if not np.array_equal(rounded, labels.array):
                raise EvaluationError(f"{p.name} holds fractional values; a segmentation must be a label map.")
            labels = labels.with_array(rounded.astype(np.int32))
        present = [int(v) for v in np.unique(labels.array) if v > 0]
        sidecar = p.with_name(re.sub(r"(\.nii\.gz|\.nii|\.nrrd|\.mha)$", "", p.name, flags=re.I) + "_labels.csv")
        if names is None and sidecar.is_file():  # what medsegai segment writes beside its label map
            names = read_labels_table(sidecar)
            notes.append(f"{p.name}: structure names from {sidecar.name}")
        values = dict(names) if names else {str(v): v for v in present}
    if grid is not None:
        labels = resample_to(labels, grid)
    return LabelledVolume(labels, values, notes)


def hd95(pred: np.ndarray, ref: np.ndarray, spacing_kji) -> Optional[float]:
    """95th percentile of the symmetric surface distance in mm (MONAI); None if either mask is empty."""
    if not pred.any() or not ref.any():
        return None
    import warnings

    from monai.metrics import compute_hausdorff_distance

    with warnings.catch_warnings():  # MONAI 1.5 warns about its own internal argument on every call
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        d = compute_hausdorff_distance(pred[None, None], ref[None, None], include_background=True, percentile=95,
                                       spacing=list(spacing_kji))
    return float(d.ravel()[0])


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    denom = int(pred.sum()) + int(ref.sum())
    return 2.0 * int((pred & ref).sum()) / denom if denom else float("nan")


def evaluate(prediction: str | os.PathLike, reference: str | os.PathLike, *,
             prediction_labels: Optional[Dict[str, int]] = None,
             reference_labels: Optional[Dict[str, int]] = None, distances: bool = True) -> Evaluation:
    """Score ``prediction`` against ``reference`` on the reference's grid, structure by structure."""
    from .io.dicom_seg_read import resample_to

    ref = load_segmentation(reference, names=reference_labels)
    pred = load_segmentation(prediction, names=prediction_labels)
    on_own_grid = pred.labels
    pred.labels = resample_to(on_own_grid, ref.labels)
    if on_own_grid.array.any() and not pred.labels.array.any():
        raise EvaluationError(f"{Path(prediction).name} and {Path(reference).name} do not overlap in space: the "
                              f"prediction has no voxel inside the reference's grid.")
    by_key = {_key(n): n for n in pred.values}
    matched = [(n, by_key.get(_key(n))) for n in ref.values]
    if not any(p is not None for _, p in matched):
        raise EvaluationError(
            f"No structure of {Path(prediction).name} ({', '.join(sorted(pred.values)) or 'none'}) is named like one "
            f"of {Path(reference).name} ({', '.join(sorted(ref.values)) or 'none'}); give --labels for a plain "
            f"label map.")
    spacing = ref.labels.spacing[::-1]  # Image.spacing is (x, y, z); the arrays are [k, j, i]
    scores = []
    for ref_name, pred_name in matched:
        r = ref.labels.array == ref.values[ref_name]
        p = pred.labels.array == pred.values[pred_name] if pred_name is not None else np.zeros_like(r)
        if not r.any() and not p.any():
            continue  # named but empty on both sides: nothing to score
        scores.append(StructureScore(ref_name, dice(p, r), hd95(p, r, spacing) if distances else None,
                                     int(r.sum()), int(p.sum())))
    known = {_key(n) for n in ref.values}
    extra = sorted(n for n in pred.values if _key(n) not in known)
    return Evaluation(scores, extra, ref.notes + pred.notes)


# -- CLI ----------------------------------------------------------------------------------------------
def register(sub) -> None:
    import argparse

    p = sub.add_parser("evaluate", help="Dice and HD95 of a segmentation against a reference (DICOM SEG, "
                                        ".seg.nrrd or label map)",
                       description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prediction", help="the segmentation to score (.dcm, .seg.nrrd, .nii.gz, ...)")
    p.add_argument("reference", help="the reference segmentation (.dcm, .seg.nrrd, .nii.gz, ...)")
    p.add_argument("--labels", default=None, help="names of a plain label map's values, for both sides "
                                                  "(JSON {name: value} or segmentation_labels.csv)")
    p.add_argument("--prediction-labels", default=None, help="names for the prediction only")
    p.add_argument("--reference-labels", default=None, help="names for the reference only")
    p.add_argument("--no-distances", action="store_true", help="Dice only (HD95 takes seconds per structure)")
    p.add_argument("--json", default=None, help="write the scores as JSON here")
    p.add_argument("--csv", default=None, help="write the scores as CSV here")
    p.set_defaults(func=_cmd_evaluate)


def _table(path: Optional[str]) -> Optional[Dict[str, int]]:
    return read_labels_table(path) if path else None


def _cmd_evaluate(args) -> int:
    from .atomic import atomic_write_text

    pred_names = _table(args.prediction_labels or args.labels)
    ref_names = _table(args.reference_labels or args.labels)
    result = evaluate(args.prediction, args.reference, prediction_labels=pred_names, reference_labels=ref_names,
                      distances=not args.no_distances)
    width = max([len(s.name) for s in result.scores] + [9])
    print(f"{'structure':<{width}}  {'Dice':>6}  {'HD95 mm':>8}  {'voxels ref':>10}  {'voxels pred':>11}")
    for s in result.scores:
        h = "-" if s.hd95_mm is None else f"{s.hd95_mm:.2f}"
        print(f"{s.name:<{width}}  {s.dice:6.3f}  {h:>8}  {s.voxels_reference:>10}  {s.voxels_prediction:>11}")
    print(f"{'mean':<{width}}  {result.mean_dice:6.3f}")
    if result.not_in_reference:
        print(f"not in the reference (not scored): {', '.join(result.not_in_reference)}")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    rows = [asdict(s) for s in result.scores]
    if args.json:
        atomic_write_text(args.json, json.dumps({"scores": rows, "mean_dice": _finite(result.mean_dice),
                                                 "not_in_reference": result.not_in_reference,
                                                 "notes": result.notes}, indent=2))
    if args.csv:
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(StructureScore.__dataclass_fields__))
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(args.csv, buf.getvalue())
    return 0


def _finite(x: float) -> Optional[float]:
    return None if math.isnan(x) else x


__all__ = ["Evaluation", "EvaluationError", "StructureScore", "dice", "evaluate", "hd95", "load_segmentation",
           "read_labels_table"]
