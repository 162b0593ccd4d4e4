"""Reorientation to the closest canonical (RAS) voxel order and back, without interpolation.

TotalSegmentator reorients with nibabel's ``as_closest_canonical`` before resampling; matching
its labels needs the same voxel order. Only axis permutations and flips are involved, so the
round trip is exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..io.image import Image


@dataclass(frozen=True)
class Reorientation:
    perm: Tuple[int, int, int]  # canonical axis n takes input (i, j, k) axis perm[n]
    flip: Tuple[bool, bool, bool]  # flipped after the permutation, per canonical axis


def closest_canonical(ijk_to_ras: np.ndarray) -> Reorientation:
    """nibabel's io_orientation: orthogonalise the rotation, then assign axes largest-first."""
    rzs = ijk_to_ras[:3, :3]
    zooms = np.linalg.norm(rzs, axis=0)
    u, _s, vt = np.linalg.svd(rzs / zooms)
    r = np.abs(u @ vt)
    signed = u @ vt
    assign = [-1, -1, -1]  # world axis for each voxel axis
    work = r.copy()
    for _ in range(3):
        w, v = np.unravel_index(np.argmax(work), work.shape)
        assign[v] = int(w)
        work[w, :] = -1
        work[:, v] = -1
    perm = [assign.index(w) for w in range(3)]
    flip = [bool(signed[w, perm[w]] < 0) for w in range(3)]
    return Reorientation(tuple(perm), tuple(flip))


def _ijk(arr_kji: np.ndarray) -> np.ndarray:
    return arr_kji.transpose(2, 1, 0)


def to_canonical(image: Image) -> Tuple[Image, Reorientation]:
    ro = closest_canonical(image.ijk_to_ras())
    a = _ijk(image.array).transpose(ro.perm)
    for ax, f in enumerate(ro.flip):
        if f:
            a = np.flip(a, ax)
    m = image.ijk_to_ras()
    new = np.eye(4)
    shape_ijk = _ijk(image.array).shape
    origin = m[:3, 3].copy()
    for ax in range(3):
        col = m[:3, ro.perm[ax]]
        if ro.flip[ax]:
            origin = origin + col * (shape_ijk[ro.perm[ax]] - 1)
            col = -col
        new[:3, ax] = col
    new[:3, 3] = origin
    return Image.from_ijk_to_ras(np.ascontiguousarray(a.transpose(2, 1, 0)), new), ro


def from_canonical(arr_kji: np.ndarray, ro: Reorientation) -> np.ndarray:
    """Undo :func:`to_canonical` on an array of the canonical grid (k, j, i order)."""
    a = _ijk(arr_kji)
    for ax, f in enumerate(ro.flip):
        if f:
            a = np.flip(a, ax)
    a = a.transpose(np.argsort(ro.perm))
    return np.ascontiguousarray(a.transpose(2, 1, 0))
