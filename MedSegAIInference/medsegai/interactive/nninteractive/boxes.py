"""Patch-sized boxes that cover a changed region, for refinement at full resolution: nnInteractive's
planner (a greedy set cover over candidate centres on a grid, then random sampling for what the
grid missed), with the same candidate order, tie-breaking and random draws so that both choose
the same boxes.

Each box is a patch, but counts as covering only its inner part (``margin`` voxels in from every
side), where the network has enough context.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

BoxList = List[List[List[int]]]  # [[[lo, hi), ...] per axis] per box, in the mask's coordinates


def cover(mask: np.ndarray, size: Sequence[int], margin: Sequence[int], rng: np.random.RandomState,
          max_depth: int = 3) -> BoxList:
    """Boxes of ``size`` whose inner parts cover every non-zero voxel of ``mask``."""
    return _cover(np.asarray(mask, dtype=np.uint8), list(size), list(margin), None, rng, max_depth, 0)


def _inner(center, size, margin, shape):
    return tuple(slice(max(0, c - s // 2 + m), min(n, c + (s - s // 2) - m))
                 for c, s, m, n in zip(center, size, margin, shape))


def _box(center, size) -> List[List[int]]:
    return [[c - s // 2, c + (s - s // 2)] for c, s in zip(center, size)]


def _cover(mask, size, margin, stride, rng, max_depth, depth) -> BoxList:
    if not mask.any():
        return []
    if depth > max_depth:
        return _random_cover(mask.copy(), size, margin, 25, rng)
    lo, hi = [], []  # inclusive extent of the mask
    for axis in range(3):
        hit = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(3) if a != axis)))
        lo.append(int(hit[0]))
        hi.append(int(hit[-1]))
    if stride is None:  # "auto": about four steps across the extent
        stride = [max(1, round((h - a) / 4)) for a, h in zip(lo, hi)]
    axes = [np.arange(max(0, a), min(n, h + 1), s) for a, h, s, n in zip(lo, hi, stride, mask.shape)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)  # lexicographic order
    centers = grid[mask[grid[:, 0], grid[:, 1], grid[:, 2]] != 0]
    if len(centers) == 0:
        return _cover(mask, size, margin, [max(1, s // 2) for s in stride], rng, max_depth, depth + 1)
    uncovered = mask.copy()
    boxes: BoxList = []
    while len(centers) and uncovered.any():
        counts = [int(np.count_nonzero(uncovered[_inner(c, size, margin, mask.shape)])) for c in centers.tolist()]
        best = int(np.argmax(counts))  # the first of equals, as nnInteractive's strict ">" loop picks
        if counts[best] == 0:
            break
        center = centers[best].tolist()
        boxes.append(_box(center, size))
        uncovered[_inner(center, size, margin, mask.shape)] = 0
        centers = centers[uncovered[centers[:, 0], centers[:, 1], centers[:, 2]] > 0]
    if uncovered.any():
        boxes += _random_cover(uncovered, size, margin, 10, rng)
    return boxes


def _random_cover(mask, size, margin, samples: int, rng) -> BoxList:
    """Until nothing is left: the best of ``samples`` random voxels as the next centre (destroys ``mask``)."""
    boxes: BoxList = []
    while mask.any():
        voxels = np.argwhere(mask)  # row-major, as torch.nonzero
        best, best_count = None, 0
        for _ in range(samples):
            center = voxels[rng.choice(len(voxels))].tolist()
            count = int(np.count_nonzero(mask[_inner(center, size, margin, mask.shape)]))
            if count > best_count:
                best, best_count = center, count
        boxes.append(_box(best, size))
        mask[_inner(best, size, margin, mask.shape)] = 0
    return boxes
