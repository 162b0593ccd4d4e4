"""Agreement measures for parity tests and benchmarks."""
from __future__ import annotations

from typing import Dict

import numpy as np


def dice_per_class(ref: np.ndarray, ours: np.ndarray) -> Dict[int, float]:
    """Dice for every label present in either map (background excluded)."""
    out = {}
    for c in np.union1d(np.unique(ref), np.unique(ours)):
        if c == 0:
            continue
        a, b = ref == c, ours == c
        denom = a.sum() + b.sum()
        out[int(c)] = float(2 * (a & b).sum() / denom) if denom else 1.0
    return out


def assert_parity(ref: np.ndarray, ours: np.ndarray, min_dice: float = 0.999) -> Dict[int, float]:
    assert ref.shape == ours.shape, f"shape {ours.shape} != reference {ref.shape}"
    dice = dice_per_class(ref, ours)
    assert len(dice) >= 2, f"the reference holds too few classes to prove anything: {dice}"
    bad = {c: d for c, d in dice.items() if d < min_dice}
    assert not bad, f"classes below Dice {min_dice}: {bad}"
    return dice
