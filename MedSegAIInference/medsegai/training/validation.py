"""Validation = inference: the current weights saved as a model folder and run by the runner.

The held-out case goes through ``medsegai.segment`` (preprocessing, sliding window with Gaussian
weighting, export to the input grid), so the Dice reported during training is the Dice a user
gets. Dice is computed on the case's own grid against its label map, unknown voxels excluded.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from .dataset import Case, LabelMap
from .export import model_folder_name, write_model_folder


def dice_per_structure(pred: np.ndarray, ref: np.ndarray, names: Dict[int, str], values: List[int],
                       ignore_value: Optional[int] = None) -> Dict[str, float]:
    """Dice for each value in ``values`` that is in the reference or the prediction (absent in both: left out)."""
    valid = np.ones(ref.shape, bool) if ignore_value is None else ref != ignore_value
    out = {}
    for v in values:
        if v == 0:
            continue
        r = (ref == v) & valid
        p = (pred == v) & valid
        denom = int(r.sum()) + int(p.sum())
        if denom:
            out[names[v]] = 2.0 * int((r & p).sum()) / denom
    return out


def validate(cases: List[Case], plans: dict, dataset: dict, state: Dict[str, torch.Tensor], trained: List[int],
             label_map: LabelMap, device: torch.device, unlabelled: Optional[Dict[str, List[int]]] = None
             ) -> Dict[str, Dict[str, float]]:
    from ..predictor import Predictor

    results = {}
    with tempfile.TemporaryDirectory(prefix="medsegai-val-") as tmp:
        folder = write_model_folder(Path(tmp) / model_folder_name(), plans, dataset, state, trained, fp16=False)
        predictor = Predictor(model=folder, device=str(device))  # loaded once for every held-out case
        for c in cases:
            res = predictor.predict(c.image)
            # A structure not contoured in the case has no reference: no Dice, rather than a false 0.
            scored = [v for v in trained if v not in set((unlabelled or {}).get(c.name, ()))]
            results[c.name] = dice_per_structure(res.labels.array, c.label, label_map.names, scored,
                                                 label_map.ignore_value)
    return results


def mean_dice(per_case: Dict[str, Dict[str, float]]) -> float:
    vals = [d for case in per_case.values() for d in case.values()]
    return float(np.mean(vals)) if vals else float("nan")
