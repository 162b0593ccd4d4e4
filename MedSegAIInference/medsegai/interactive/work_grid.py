"""Regions around prompts, and a coarser grid for large ones, so every prompt costs about the same.

A prompt on a 512x512 CT and one on a 128^3 CT both end up as at most ``max_voxels`` unknowns for
the solver: a large crop is averaged over whole blocks of voxels (finest axes first, towards
isotropic voxels), solved there and interpolated back.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import block_reduce

from .engine import Region


def grow(region: Region, by: Sequence[int], shape: Sequence[int]) -> Region:
    """``region`` enlarged by ``by`` voxels per axis, clipped to the image."""
    return tuple(slice(max(0, s.start - b), min(n, s.stop + b)) for s, b, n in zip(region, by, shape))


def mm_to_voxels(mm: float, spacing_kji: Sequence[float]) -> Tuple[int, int, int]:
    return tuple(max(1, int(np.ceil(mm / s))) for s in spacing_kji)


def local(region: Region, inside: Region) -> Region:
    """``region`` (image coordinates) in the coordinates of the crop ``inside``, clipped to it."""
    return tuple(slice(max(0, r.start - c.start), max(0, min(r.stop, c.stop) - c.start))
                 for r, c in zip(region, inside))


def block_factors(shape: Sequence[int], spacing_kji: Sequence[float], max_voxels: int) -> Tuple[int, int, int]:
    """Integer block sizes per axis: the finest (physically smallest) axis is coarsened first."""
    f = [1, 1, 1]
    while np.prod([int(np.ceil(n / b)) for n, b in zip(shape, f)]) > max_voxels:
        axis = int(np.argmin([s * b if n // b > 1 else np.inf for s, b, n in zip(spacing_kji, f, shape)]))
        if not np.isfinite(spacing_kji[axis] * f[axis]) or shape[axis] // f[axis] <= 1:
            break
        f[axis] += 1
    return tuple(f)


def reduce(a: np.ndarray, factors: Sequence[int], func=np.mean) -> np.ndarray:
    if all(f == 1 for f in factors):
        return a
    # Edge padding, not block_reduce's constant: a partial last block keeps its own values.
    a = np.pad(a, [(0, (-n) % f) for n, f in zip(a.shape, factors)], mode="edge")
    return block_reduce(a, tuple(factors), func=func)


def blocks_of(fine: Region, factors: Sequence[int], grid_shape: Sequence[int], margin: int = 0) -> Region:
    """The work-grid blocks covering a fine region, plus ``margin`` blocks, clipped to the grid."""
    return tuple(slice(max(0, s.start // f - margin), min(n, -(-s.stop // f) + margin))
                 for s, f, n in zip(fine, factors, grid_shape))


def fine_of(blocks: Region, factors: Sequence[int], fine_shape: Sequence[int]) -> Region:
    return tuple(slice(b.start * f, min(n, b.stop * f)) for b, f, n in zip(blocks, factors, fine_shape))


def nearest(a: np.ndarray, factors: Sequence[int], fine: Region) -> np.ndarray:
    """A work-grid array on the fine voxels of ``fine`` (crop coordinates), each voxel its block's value."""
    return a[np.ix_(*(np.arange(s.start, s.stop) // f for s, f in zip(fine, factors)))]


def upsample(p: np.ndarray, factors: Sequence[int], fine: Region) -> np.ndarray:
    """A work-grid map on the fine voxels of ``fine``, linear between block centres.

    Only the blocks around ``fine`` are interpolated (one block of margin makes the result the same
    as interpolating the whole grid), so the cost follows the changed region, not the crop.
    """
    if all(f == 1 for f in factors):
        return p[fine].astype(np.float32)
    blocks = blocks_of(fine, factors, p.shape, margin=1)
    zoomed = ndi.zoom(p[blocks].astype(np.float32), factors, order=1, mode="nearest", grid_mode=True)
    return zoomed[tuple(slice(s.start - b.start * f, s.stop - b.start * f) for s, b, f in zip(fine, blocks, factors))]
