"""Per-segment confidence: Soft Dice Confidence and the mean voxel uncertainty inside each segment.

Soft Dice Confidence (SDC) is the soft Dice between the hard mask M_c and the class probability
p_c: SDC_c = 2 sum_{v in M_c} p_c(v) / (|M_c| + sum_v p_c(v)). It is 1 when the model put
probability 1 exactly on the voxels it labelled and falls as probability leaks out of, or is
missing inside, the mask. Both sums are per class, so they are collected one class chunk at a
time while the probabilities stream to full resolution.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import torch

from ..run_request import DEFAULT_CONFIDENCE_THRESHOLD


class SoftDiceSums:
    """Collects, per class, sum of p_c inside the mask, sum of p_c overall and the mask size."""

    def __init__(self, labels_fine: np.ndarray, num_classes: int):
        # Kept in the label map's own small dtype (uint8/int16): the fine grid may be a full-size CT.
        lab = np.ascontiguousarray(labels_fine)
        self.labels = torch.from_numpy(lab.astype(np.int16) if lab.dtype == np.uint16 else lab).reshape(-1)
        self.voxels = torch.from_numpy(np.bincount(lab.reshape(-1), minlength=num_classes)[:num_classes]).double()
        self.inside = torch.zeros(num_classes, dtype=torch.float64)
        self.total = torch.zeros(num_classes, dtype=torch.float64)

    def add(self, class_indices: Sequence[int], probs_fine: torch.Tensor) -> None:
        for j, c in enumerate(class_indices):
            p = probs_fine[j].reshape(-1)
            self.total[c] += p.double().sum()
            self.inside[c] += p[self.labels == c].double().sum()

    def soft_dice(self) -> np.ndarray:
        denom = self.voxels + self.total
        sdc = torch.where(denom > 0, 2 * self.inside / denom.clamp_min(1e-12), torch.full_like(denom, float("nan")))
        return sdc.numpy()


def mean_inside(labels: np.ndarray, values: np.ndarray, num_values: int) -> np.ndarray:
    """Mean of ``values`` over the voxels of each label (NaN for an absent label)."""
    lab = labels.reshape(-1).astype(np.int64)
    sums = np.bincount(lab, weights=values.reshape(-1).astype(np.float64), minlength=num_values)
    counts = np.bincount(lab, minlength=num_values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def segment_confidence(names: Mapping[int, str], soft_dice: np.ndarray, mean_uncertainty: np.ndarray,
                       voxels: np.ndarray, threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
                       ) -> Dict[str, Dict[str, float]]:
    """{name: {soft_dice, mean_uncertainty, voxels, flagged}} for every non-empty foreground label."""
    out: Dict[str, Dict[str, float]] = {}
    for value, name in sorted(names.items()):
        if value == 0 or value >= len(voxels) or voxels[value] == 0:
            continue
        out[name] = {"soft_dice": round(float(soft_dice[value]), 6),
                     "mean_uncertainty": round(float(mean_uncertainty[value]), 6),
                     "voxels": int(voxels[value]), "flagged": 0}
    return flag_segments(out, threshold)


def flag_segments(confidence: Dict[str, Dict[str, float]], threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
                  ) -> Dict[str, Dict[str, float]]:
    """Set ``flagged`` = 1 where Soft Dice Confidence is below ``threshold`` (in place; returned)."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"The confidence threshold must be between 0 and 1, got {threshold}.")
    for vals in confidence.values():
        vals["flagged"] = int(float(vals["soft_dice"]) < float(threshold))
    return confidence


def least_confident(confidence: Mapping[str, Mapping[str, float]]) -> Optional[str]:
    """The segment with the lowest Soft Dice Confidence (ties: higher mean uncertainty), or None."""
    if not confidence:
        return None
    return min(confidence, key=lambda n: (float(confidence[n]["soft_dice"]),
                                          -float(confidence[n].get("mean_uncertainty", 0.0))))
