"""User input checked against the image grid and turned into :class:`Prompt` objects.

Every check happens here, before the session or an engine touches anything, so a refused prompt
leaves the mask and the history as they were. Drawn masks are cropped to their bounding box: the
history then holds only the drawn region, never a full-size copy per stroke.
"""
from __future__ import annotations

import numbers
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi

from .engine import Prompt, Region
from .errors import InteractiveError

Shape = Tuple[int, int, int]
AXES = "kji"
EMPTY_REGION: Region = (slice(0, 0), slice(0, 0), slice(0, 0))


def _number(v, what: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not np.isfinite(float(v)):
        raise InteractiveError(f"{what} must be a finite number, got {v!r}.")
    return float(v)


def _triple(values, what: str) -> tuple:
    try:
        seq = tuple(values)
    except TypeError:
        raise InteractiveError(f"{what} must be 3 numbers (k, j, i), got {values!r}.") from None
    if len(seq) != 3:
        raise InteractiveError(f"{what} must be 3 numbers (k, j, i), got {len(seq)}: {values!r}.")
    return seq


def _positive(flag) -> bool:
    if isinstance(flag, (bool, np.bool_)) or flag in (0, 1):
        return bool(flag)
    raise InteractiveError(f"positive must be True or False, got {flag!r}.")


def check_point(point, shape: Shape) -> Tuple[int, int, int]:
    """Voxel indices (k, j, i); a float is rounded to the voxel whose centre is nearest (Slicer hands
    over continuous IJK), and a voxel outside the grid is refused with the axis that is out."""
    coords = tuple(int(np.floor(_number(c, f"point {AXES[n]}") + 0.5))
                   for n, c in enumerate(_triple(point, "A point")))
    for n, (c, size) in enumerate(zip(coords, shape)):
        if not 0 <= c < size:
            raise InteractiveError(f"The point {coords} is outside the image: {AXES[n]}={c} is not in 0..{size - 1} "
                                   f"(image shape {tuple(shape)}, order k, j, i).")
    return coords


def make_point(point, positive, shape: Shape) -> Prompt:
    return Prompt("point", _positive(positive), point=check_point(point, shape))


def make_box(box, positive, shape: Shape) -> Prompt:
    axes = _triple(box, "A box")
    bounds = []
    for n, pair in enumerate(axes):
        try:
            a, b = (_number(v, f"box {AXES[n]} bound") for v in pair)
        except (TypeError, ValueError):
            raise InteractiveError(f"A box is ((k0, k1), (j0, j1), (i0, i1)); axis {AXES[n]} is {pair!r}.") from None
        if a != round(a) or b != round(b):
            raise InteractiveError(f"Box bounds are whole voxel indices; axis {AXES[n]} is ({a:g}, {b:g}).")
        a, b = int(a), int(b)
        if b < a:
            raise InteractiveError(f"The box is inverted along {AXES[n]}: ({a}, {b}); bounds are (start, stop), "
                                   "start < stop.")
        if b == a:
            raise InteractiveError(f"The box has zero size along {AXES[n]}: ({a}, {b}) (half-open; a one-slice box is "
                                   f"({a}, {a + 1})).")
        if a < 0 or b > shape[n]:
            raise InteractiveError(f"The box {AXES[n]} range ({a}, {b}) is outside the image (0, {shape[n]}) "
                                   f"(image shape {tuple(shape)}, order k, j, i).")
        bounds.append((a, b))
    if sum(b - a == 1 for a, b in bounds) > 1:
        raise InteractiveError(f"The box {tuple(bounds)} is a line or a voxel: at most one axis may be one voxel "
                               "thick.")
    return Prompt("box", _positive(positive), box=tuple(bounds))


def check_binary(mask, what: str) -> np.ndarray:
    """A 3D 0/1 array of bool or integer type, as uint8 (label values other than 1 are ambiguous)."""
    if not isinstance(mask, np.ndarray):
        raise InteractiveError(f"{what} must be a numpy array, got {type(mask).__name__}.")
    if mask.dtype != bool and mask.dtype.kind not in "ui":
        raise InteractiveError(f"{what} must be uint8 or bool (0/1), got dtype {mask.dtype}.")
    if mask.ndim != 3:
        raise InteractiveError(f"{what} must be 3D [k, j, i], got {mask.ndim}D (shape {mask.shape}).")
    if mask.dtype != bool and mask.size and (mask.min() < 0 or mask.max() > 1):
        raise InteractiveError(f"{what} must hold only 0 and 1, found values {int(mask.min())}..{int(mask.max())}.")
    return mask.astype(np.uint8, copy=False)


def bounding_box(mask: np.ndarray) -> Optional[Region]:
    """Tight region of the non-zero voxels, None when there are none."""
    if not mask.any():
        return None
    region = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        region.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(region)


def _placed(mask, shape: Shape, offset, what: str) -> Tuple[np.ndarray, Tuple[int, int, int]]:
    mask = check_binary(mask, what)
    if offset is None:
        if mask.shape != tuple(shape):
            raise InteractiveError(f"{what} has shape {mask.shape} but the image is {tuple(shape)} (order k, j, i); "
                                   "pass a crop with offset=(k, j, i) or a mask on the whole grid.")
        return mask, (0, 0, 0)
    off = _triple(offset, f"The {what.lower()} offset")
    if any(isinstance(o, (bool, np.bool_)) or not isinstance(o, numbers.Integral) for o in off):
        raise InteractiveError(f"The offset must be 3 whole voxel indices (k, j, i), got {offset!r}.")
    off = tuple(int(o) for o in off)
    for n in range(3):
        if off[n] < 0 or off[n] + mask.shape[n] > shape[n]:
            raise InteractiveError(f"{what} at offset {off} with shape {mask.shape} is outside the image along "
                                   f"{AXES[n]} (0..{shape[n]}).")
    return mask, off


def make_drawn(kind: str, mask, positive, shape: Shape, offset=None) -> Prompt:
    """A scribble or a lasso, cropped to what was drawn."""
    what = "The scribble" if kind == "scribble" else "The lasso"
    positive = _positive(positive)
    mask, off = _placed(mask, shape, offset, what)
    box = bounding_box(mask)
    if box is None:
        raise InteractiveError(f"{what} is empty (no voxel set).")
    crop = mask[box].copy()
    if kind == "lasso":
        flat = [n for n in range(3) if crop.shape[n] == 1]
        if not flat:
            raise InteractiveError(f"The lasso is not on one slice: it spans {crop.shape} voxels (k, j, i); a lasso "
                                   "is a filled polygon on a single slice.")
        # A front end may hand over the closed outline rather than the filled polygon.
        plane = ndi.binary_fill_holes(np.squeeze(crop, axis=flat[0]))
        crop = np.expand_dims(plane, flat[0]).astype(np.uint8)
    return Prompt(kind, positive, mask=crop, offset=tuple(o + b.start for o, b in zip(off, box)))


def full_mask(existing, shape: Shape, grid_check=None) -> np.ndarray:
    """An existing segment on the image grid (an array, or an Image on the same grid) as uint8 0/1."""
    from ..io.image import Image

    if isinstance(existing, Image):
        if grid_check is not None and existing.shape == tuple(shape) and not grid_check(existing):
            raise InteractiveError("The mask image has the image's shape but another grid (origin, spacing or "
                                   "direction); resample it onto the image first.")
        existing = existing.array
    mask = check_binary(existing, "The mask")
    if mask.shape != tuple(shape):
        raise InteractiveError(f"The mask has shape {mask.shape} but the image is {tuple(shape)} (order k, j, i).")
    return mask.copy()


def mask_prompt(mask: np.ndarray) -> Prompt:
    """The ``mask`` prompt of set_mask/add_text, cropped to the segment (an empty crop for an empty mask)."""
    box = bounding_box(mask)
    if box is None:
        return Prompt("mask", True, mask=np.zeros((0, 0, 0), np.uint8))
    return Prompt("mask", True, mask=mask[box].copy(), offset=tuple(b.start for b in box))


def region_is_empty(region: Sequence[slice]) -> bool:
    return any(s.stop <= s.start for s in region)
