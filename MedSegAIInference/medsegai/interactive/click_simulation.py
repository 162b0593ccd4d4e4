"""The click simulator interactive papers use (RITM, the CVPR 2025 interactive 3D challenge): the first
click at the object's deepest point, each next click at the deepest point of the largest
26-connected error region, positive or negative by the reference there. Used by the benchmark and
by the click model's training, so both see the same kind of user.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi

Point = Tuple[int, int, int]
_CONNECT_26 = np.ones((3, 3, 3), dtype=bool)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def deepest_point(region: np.ndarray, spacing_kji: Optional[Sequence[float]] = None) -> Optional[Point]:
    """The voxel of ``region`` farthest from its border (ties: the first in array order); None if empty.

    The distance transform runs on the region's bounding box only, so a small error region in a
    full-size CT costs what a small image costs."""
    boxes = ndi.find_objects(region.astype(np.uint8))
    if not boxes or boxes[0] is None:
        return None
    box = boxes[0]
    crop = np.pad(region[box].astype(bool), 1)  # the box's edge is outside the region
    depth = ndi.distance_transform_edt(crop, sampling=spacing_kji)
    idx = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return tuple(int(i - 1 + s.start) for i, s in zip(idx, box))


def next_click(prediction: np.ndarray, reference: np.ndarray,
               spacing_kji: Optional[Sequence[float]] = None) -> Optional[Tuple[Point, bool]]:
    """(point, positive) at the deepest point of the largest 26-connected error region; None if perfect."""
    error = prediction.astype(bool) != reference.astype(bool)
    labels, n = ndi.label(error, structure=_CONNECT_26)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    point = deepest_point(labels == int(np.argmax(sizes)), spacing_kji)
    return point, bool(reference[point])


@dataclass
class ClickRun:
    dice: List[float] = field(default_factory=list)  # after click 1, 2, ...
    seconds: List[float] = field(default_factory=list)  # latency of each click

    def dice_at(self, clicks: int) -> float:
        """Dice after ``clicks`` clicks (the last one reached when the run stopped early at a perfect mask)."""
        return self.dice[min(clicks, len(self.dice)) - 1]

    def noc(self, threshold: float, cap: int = 20) -> int:
        """Clicks needed to reach ``threshold`` Dice; ``cap`` when never reached (RITM's NoC@85/90)."""
        return next((n + 1 for n, d in enumerate(self.dice[:cap]) if d >= threshold), cap)


def simulate_clicks(add_point, current_mask, reference: np.ndarray, clicks: int = 20,
                    spacing_kji: Optional[Sequence[float]] = None) -> ClickRun:
    """Drive a session: ``add_point(point, positive)`` makes the click, ``current_mask()`` reads the mask."""
    run = ClickRun()
    mask = np.zeros(reference.shape, dtype=np.uint8)
    for n in range(clicks):
        if n == 0:
            click = (deepest_point(reference, spacing_kji), True)
        else:
            click = next_click(mask, reference, spacing_kji)
        if click is None or click[0] is None:
            break
        t = time.perf_counter()
        add_point(click[0], click[1])
        run.seconds.append(time.perf_counter() - t)
        mask = current_mask()
        run.dice.append(dice(mask, reference))
    return run
