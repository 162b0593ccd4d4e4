"""The click model's crop: a fixed-size isotropic grid placed anywhere in an image, at any zoom.

A crop is ``size`` voxels per axis at ``spacing_mm`` (the same on every axis) centred on a point
given in the image's voxel indices [k, j, i]. Moving values between the image and the crop is
separable and exact: one weight matrix per axis (linear interpolation, widened to a triangle filter
of the crop's step when the crop is coarser than the image, so zooming out averages instead of
aliasing), applied with three tensor contractions. The cost therefore depends on the crop's region
of the image, never on the whole image, and nothing outside that region is read or written.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

Region = Tuple[slice, slice, slice]


@dataclass(frozen=True)
class CropGrid:
    center: Tuple[float, float, float]  # image voxel indices (k, j, i), may be fractional
    step: Tuple[float, float, float]  # image voxels per crop voxel, per axis
    size: Tuple[int, int, int]  # crop voxels per axis
    shape: Tuple[int, int, int]  # the image's shape

    @classmethod
    def around(cls, center, spacing_mm: float, size: Sequence[int], image_spacing_kji: Sequence[float],
               shape: Sequence[int]) -> "CropGrid":
        step = tuple(float(spacing_mm) / float(s) for s in image_spacing_kji)
        return cls(tuple(float(c) for c in center), step, tuple(int(n) for n in size), tuple(int(n) for n in shape))

    # -- coordinates ----------------------------------------------------------------------------
    def positions(self, axis: int) -> np.ndarray:
        """Image coordinates of the crop's voxel centres along ``axis``."""
        n = self.size[axis]
        return self.center[axis] + (np.arange(n) - (n - 1) / 2.0) * self.step[axis]

    def to_crop(self, point) -> np.ndarray:
        return np.array([(p - c) / d + (n - 1) / 2.0 for p, c, d, n in zip(point, self.center, self.step, self.size)])

    def interval_to_crop(self, axis: int, lo: float, hi: float) -> slice:
        """Crop voxels whose centres lie in the image interval [lo, hi) (voxel edges); at least the nearest one."""
        pos = self.positions(axis)
        inside = np.nonzero((pos >= lo - 0.5) & (pos < hi - 0.5))[0]
        if inside.size == 0:
            mid = (lo + hi - 1) / 2.0
            nearest = int(np.clip(np.round((mid - self.center[axis]) / self.step[axis] + (self.size[axis] - 1) / 2.0),
                                  0, self.size[axis] - 1))
            if lo - 0.5 > pos[-1] + self.step[axis] / 2 or hi - 0.5 < pos[0] - self.step[axis] / 2:
                return slice(0, 0)  # entirely outside the crop
            return slice(nearest, nearest + 1)
        return slice(int(inside[0]), int(inside[-1]) + 1)

    def region(self) -> Region:
        """The image voxels whose value the crop decides (centres between the first and last crop centre)."""
        out = []
        for a in range(3):
            pos = self.positions(a)
            lo = max(0, int(np.ceil(pos[0] - 0.5 * min(1.0, self.step[a]))))
            hi = min(self.shape[a], int(np.floor(pos[-1] + 0.5 * min(1.0, self.step[a]))) + 1)
            out.append(slice(lo, max(lo, hi)))
        return tuple(out)

    # -- image -> crop --------------------------------------------------------------------------
    def _sample_weights(self, axis: int) -> Tuple[np.ndarray, slice]:
        pos = self.positions(axis)
        width = max(1.0, self.step[axis])
        lo = int(np.floor(pos[0] - width))
        hi = int(np.ceil(pos[-1] + width)) + 1
        x = np.arange(lo, hi, dtype=np.float64)
        w = np.maximum(0.0, 1.0 - np.abs(x[None, :] - pos[:, None]) / width)
        w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        a, b = max(lo, 0), min(hi, self.shape[axis])
        if b <= a:
            return np.zeros((len(pos), 0), np.float32), slice(0, 0)
        return w[:, a - lo:b - lo].astype(np.float32), slice(a, b)

    def sample(self, volume: np.ndarray, pad: float = 0.0) -> np.ndarray:
        """``volume`` resampled onto the crop (float32); positions outside the image read ``pad``."""
        ws, box = zip(*(self._sample_weights(a) for a in range(3)))
        if any(w.shape[1] == 0 for w in ws):
            return np.full(self.size, pad, np.float32)
        sub = volume[box].astype(np.float32)
        if pad:
            sub = sub - np.float32(pad)
        out = np.tensordot(ws[2], sub, axes=([1], [2]))  # (i', k, j)
        out = np.tensordot(ws[1], out, axes=([1], [2]))  # (j', i', k)
        out = np.tensordot(ws[0], out, axes=([1], [2]))  # (k', j', i')
        out = np.ascontiguousarray(out, dtype=np.float32)
        return out + np.float32(pad) if pad else out

    # -- crop -> image --------------------------------------------------------------------------
    def _paste_weights(self, axis: int, region: slice) -> np.ndarray:
        x = np.arange(region.start, region.stop, dtype=np.float64)
        q = np.clip((x - self.center[axis]) / self.step[axis] + (self.size[axis] - 1) / 2.0, 0, self.size[axis] - 1)
        n = np.arange(self.size[axis], dtype=np.float64)
        return np.maximum(0.0, 1.0 - np.abs(q[:, None] - n[None, :])).astype(np.float32)

    def paste(self, values: np.ndarray, region: Region = None) -> np.ndarray:
        """Crop values linearly interpolated onto the image voxels of ``region`` (default: :meth:`region`)."""
        region = self.region() if region is None else region
        ws = [self._paste_weights(a, region[a]) for a in range(3)]
        out = np.tensordot(ws[2], values.astype(np.float32), axes=([1], [2]))
        out = np.tensordot(ws[1], out, axes=([1], [2]))
        out = np.tensordot(ws[0], out, axes=([1], [2]))
        return np.ascontiguousarray(out)
