"""A region of an image and the way back: crop to a box, paste a box's result into the whole grid.

Used wherever a structure subset runs on the low-resolution model's region of interest: the
labels, the probabilities and the uncertainty map all go back through :func:`paste`.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from ..io.image import Image

Box = Tuple[slice, slice, slice]  # (k, j, i) half-open


def box_around(mask: np.ndarray, spacing_ijk: Sequence[float], margin_mm: float) -> Box:
    """The bounding box of ``mask`` grown by ``margin_mm`` on every side, clipped to the grid."""
    idx = np.argwhere(mask)
    margin = [int(np.ceil(margin_mm / s)) for s in spacing_ijk[::-1]]
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + 1 + margin, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def crop_image(image: Image, box: Box) -> Image:
    """The box as an image of its own, with the origin that keeps every voxel where it was."""
    ijk0 = np.array([box[2].start, box[1].start, box[0].start, 1.0])
    origin = (image.ijk_to_lps() @ ijk0)[:3]
    return Image(np.ascontiguousarray(image.array[box]), image.spacing, tuple(origin), image.direction)


def paste(part: np.ndarray, box: Optional[Box], shape: Sequence[int], fill=0, leading: int = 0) -> np.ndarray:
    """``part`` (computed on ``box``) on the whole grid ``shape``, ``fill`` elsewhere.

    ``leading`` axes (e.g. classes) come before the spatial ones and are not cropped; ``fill`` may
    be one value per leading index (background probability 1 outside the box, others 0).
    """
    if box is None:
        return part
    out = np.empty((*part.shape[:leading], *shape), dtype=part.dtype)
    fills = np.asarray(fill, dtype=part.dtype)
    out[...] = fills.reshape(fills.shape + (1,) * len(shape)) if fills.ndim else fills
    out[(slice(None),) * leading + tuple(box)] = part
    return out
