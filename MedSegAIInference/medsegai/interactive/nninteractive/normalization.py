"""The image as nnInteractive's network sees it: z-scored with the mean and unbiased standard
deviation of the bounding box of its non-zero voxels, no resampling, no reorientation.

nnInteractive keeps a normalised float32 copy of the whole image (315 MB for a 512x512x300 CT);
we keep a reference to the caller's array and the two statistics, and normalise each crop when a
patch needs it. Subtraction and division are exactly rounded per voxel, so a crop normalised on
its own is bit-identical to the same voxels of a normalised whole.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch

from ...errors import InvalidImageError

Box = Sequence[Sequence[int]]  # [[lo, hi), ...] per axis


def nonzero_box(array: np.ndarray):
    """Half-open bounding box of the non-zero voxels, or None if there are none."""
    box = []
    for axis in range(array.ndim):
        others = tuple(a for a in range(array.ndim) if a != axis)
        hit = np.flatnonzero(np.any(array, axis=others))
        if hit.size == 0:
            return None
        box.append([int(hit[0]), int(hit[-1]) + 1])
    return box


class NormalizedImage:
    def __init__(self, array: np.ndarray):
        if array.ndim != 3:
            raise InvalidImageError(f"nnInteractive needs a 3D image (got {array.ndim} dimensions).")
        box = nonzero_box(array)
        if box is None:
            raise InvalidImageError("The image is entirely zero: nnInteractive cannot normalise it.")
        # The statistics come from a float32 view of the whole image sliced to the box, exactly as
        # nnInteractive takes them: torch's reduction order depends on the view's strides, and the
        # last bit of the mean decides the last bit of every normalised voxel. Transient only.
        whole = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
        crop = whole[(slice(0, 1), *(slice(lo, hi) for lo, hi in box))]
        self.mean, self.std = crop.mean(), crop.std()
        del whole, crop
        if not torch.isfinite(self.std) or float(self.std) == 0.0:
            raise InvalidImageError("The image has no contrast (its non-zero voxels are all equal): nnInteractive "
                                    "cannot normalise it.")
        self.array = array
        self.shape: Tuple[int, int, int] = tuple(int(s) for s in array.shape)

    def crop(self, valid: Box) -> torch.Tensor:
        """Normalised voxels of the in-image box ``valid``, as float32 [1, *size] on the CPU."""
        raw = torch.from_numpy(np.ascontiguousarray(self.array[tuple(slice(lo, hi) for lo, hi in valid)],
                                                    dtype=np.float32))
        # Out of place: ``raw`` may share memory with the caller's array.
        return ((raw - self.mean) / self.std)[None]
