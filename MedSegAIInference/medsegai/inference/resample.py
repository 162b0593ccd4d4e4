"""Resampling with nnU-Net's and TotalSegmentator's exact conventions.

Why hand-written instead of MONAI's Spacing transform: label agreement with nnU-Net /
TotalSegmentator depends on the exact sampling grid (scipy ``zoom`` with ``grid_mode=True`` as
skimage's ``resize`` uses it for nnU-Net; ``grid_mode=False`` for TotalSegmentator), the output
shape rounding, the clipping after cubic interpolation and the separate-z rule for anisotropic
data. The class-score export uses torch's trilinear interpolation, which samples the same grid
as ``zoom(order=1, grid_mode=True, mode="nearest")`` but runs multi-threaded on chunks of classes.
The image zooms are scipy's, run on several threads with bit-identical results (``parallel_zoom``).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from . import parallel_zoom

ANISO_THRESHOLD = 3  # nnU-Net's threshold for resampling the low-resolution axis separately


def compute_new_shape(old_shape: Sequence[int], old_spacing: Sequence[float], new_spacing: Sequence[float]) -> Tuple[int, ...]:
    return tuple(int(round(s * o / n)) for s, o, n in zip(old_shape, old_spacing, new_spacing))


def _lowres_axis(spacing: Sequence[float]) -> Optional[int]:
    spacing = np.asarray(spacing, dtype=float)
    axes = np.where(spacing.max() / spacing == 1)[0]
    return int(axes[0]) if len(axes) == 1 else None


def separate_z_axis(current_spacing, new_spacing, force_separate_z: Optional[bool] = None,
                    threshold: float = ANISO_THRESHOLD) -> Optional[int]:
    """The axis nnU-Net resamples with order_z (nearest) instead of the in-plane order, or None."""
    if force_separate_z is not None:
        return _lowres_axis(current_spacing) if force_separate_z else None
    for sp in (current_spacing, new_spacing):
        if max(sp) / min(sp) > threshold:
            return _lowres_axis(sp)
    return None


def resize_skimage_like(img: np.ndarray, new_shape: Sequence[int], order: int) -> np.ndarray:
    """What ``skimage.transform.resize(img, new_shape, order, mode='edge', anti_aliasing=False)`` computes."""
    factors = [n / o for n, o in zip(new_shape, img.shape)]
    out = parallel_zoom.zoom(img, factors, order=order, mode="nearest", grid_mode=True)
    if order > 0:  # skimage clips to the input range after interpolation (clip=True)
        np.clip(out, img.min(), img.max(), out=out)
    return out


def resample_image_nnunet(data: np.ndarray, new_shape: Sequence[int], current_spacing, new_spacing,
                          order: int = 3, order_z: int = 0, force_separate_z: Optional[bool] = None,
                          check: Optional[Callable[[], None]] = None) -> np.ndarray:
    """nnU-Net's ``resample_data_or_seg_to_shape`` for image data (C, X, Y, Z), float64 arithmetic."""
    new_shape = tuple(int(s) for s in new_shape)
    if tuple(data.shape[1:]) == new_shape:
        return data
    axis = separate_z_axis(current_spacing, new_spacing, force_separate_z)
    out = np.zeros((data.shape[0], *new_shape), dtype=data.dtype)
    for c in range(data.shape[0]):
        ch = data[c].astype(np.float64)
        if axis is None:
            out[c] = resize_skimage_like(ch, new_shape, order)
        else:
            out[c] = _resample_separate_z(ch, new_shape, axis, order, order_z, check)
        if check:
            check()
    return out


def _resample_separate_z(ch: np.ndarray, new_shape, axis: int, order: int, order_z: int, check=None) -> np.ndarray:
    inplane = [s for a, s in enumerate(new_shape) if a != axis]
    tmp_shape = list(new_shape)
    tmp_shape[axis] = ch.shape[axis]
    tmp = np.zeros(tmp_shape)

    def one_slice(i):
        idx = [slice(None)] * 3
        idx[axis] = i
        tmp[tuple(idx)] = resize_skimage_like(ch[tuple(idx)], inplane, order)

    # Slices are independent scipy calls that release the GIL: the same values, on every thread.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        list(pool.map(one_slice, range(ch.shape[axis])))
    if ch.shape[axis] == new_shape[axis]:
        return tmp
    # Along the low-resolution axis nnU-Net samples pixel centres with map_coordinates(order_z).
    grids = np.meshgrid(*[(np.arange(n) + 0.5) * (o / n) - 0.5 for n, o in zip(new_shape, tmp.shape)], indexing="ij")
    return ndimage.map_coordinates(tmp, np.array(grids), order=order_z, mode="nearest")


def zoom_totalseg(data: np.ndarray, zoom: Sequence[float], order: int) -> np.ndarray:
    """TotalSegmentator's ``resample_img``: scipy zoom, grid_mode False, edge mode 'nearest'."""
    return parallel_zoom.zoom(data, zoom, mode="nearest", order=order)


def _nearest_index(n_out: int, n_in: int, device) -> torch.Tensor:
    x = (torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) * (n_in / n_out) - 0.5
    # map_coordinates(order=0) rounds half up; clamp = mode 'nearest'
    return torch.floor(x + 0.5).long().clamp(0, n_in - 1)


def resample_scores_chunk(scores: torch.Tensor, new_shape: Sequence[int], separate_axis: Optional[int]) -> torch.Tensor:
    """Order-1 resampling of a chunk of class scores (C, X, Y, Z) -> float32 (C, *new_shape).

    Equivalent to nnU-Net's probability resampling (linear in-plane, nearest along a separate
    low-resolution axis) up to float32 rounding.
    """
    x = scores.float()
    new_shape = tuple(int(s) for s in new_shape)
    if tuple(x.shape[1:]) == new_shape:
        return x
    if separate_axis is None:
        return F.interpolate(x[None], size=new_shape, mode="trilinear", align_corners=False)[0]
    # Linear in the two in-plane axes (batched over the separate axis), then nearest along it.
    perm = [0, 1 + separate_axis] + [1 + a for a in range(3) if a != separate_axis]
    xp = x.permute(*perm)  # (C, S, A, B)
    c, s, a, b = xp.shape
    inplane = [new_shape[i] for i in range(3) if i != separate_axis]
    y = F.interpolate(xp.reshape(c * s, 1, a, b), size=inplane, mode="bilinear", align_corners=False)
    y = y.reshape(c, s, *inplane)
    idx = _nearest_index(new_shape[separate_axis], s, y.device)
    y = y.index_select(1, idx)
    inv = np.argsort(perm).tolist()
    return y.permute(*inv).contiguous()
