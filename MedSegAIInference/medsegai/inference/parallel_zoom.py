"""``scipy.ndimage.zoom`` on several threads, bit for bit the same result.

Exact mode must give TotalSegmentator's and nnU-Net's labels, and their pipelines truncate the
zoomed image to int32 (TotalSegmentator) or feed it to the network as is, so the resampling must
be scipy's own arithmetic, not an equivalent one: a separable torch version differed by 1e-12 HU,
enough to move a truncation. scipy's zoom runs on one core (15 s of a full-size CT at 1.5 mm).

What keeps it exact: each output voxel of ``zoom`` depends only on its own coordinate, which
scipy's C routine ``zoom_shift`` computes as ``(index + shift) * zoom``. Giving each thread a block
of output slices and ``shift`` = the block's first index (an integer, so the sum is exact) makes it
compute the same coordinates, weights and sums as one call over the whole output. The spline
prefilter (order > 1) filters each line along each axis independently, so it is split across the
other axes. scipy releases the GIL in both. ``zoom_shift`` is private; where it is missing or its
signature changed, this falls back to the public ``zoom`` (same result, one core), and
Testing/Python/test_parallel_zoom.py checks the equality on the installed scipy.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

MIN_PARALLEL_VOXELS = 1 << 20  # below this the thread start costs more than it saves


def _threads(threads: Optional[int]) -> int:
    if threads is not None:
        return max(1, int(threads))
    import torch

    return max(1, torch.get_num_threads())  # the runner's configured thread count


def _blocks(n: int, parts: int):
    edges = np.linspace(0, n, min(parts, n) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _spline_filter(padded: np.ndarray, order: int, mode: str, pool: ThreadPoolExecutor, parts: int) -> np.ndarray:
    out = np.asarray(padded, dtype=np.float64)
    for axis in range(out.ndim):
        other = 1 if axis == 0 else 0
        res = np.empty_like(out)

        def job(block, axis=axis, other=other, src=out, dst=res):
            sl = [slice(None)] * src.ndim
            sl[other] = slice(*block)
            sl = tuple(sl)
            ndimage.spline_filter1d(src[sl], order, axis=axis, output=dst[sl], mode=mode)

        list(pool.map(job, _blocks(out.shape[other], parts)))
        out = res
    return out


def zoom(data: np.ndarray, factors: Sequence[float], *, order: int, mode: str = "nearest", grid_mode: bool = False,
         threads: Optional[int] = None) -> np.ndarray:
    """``ndimage.zoom(data, factors, order=order, mode=mode, grid_mode=grid_mode)``, on ``threads`` threads."""
    data = np.asarray(data)
    parts = _threads(threads)
    if parts == 1 or data.size < MIN_PARALLEL_VOXELS or data.ndim < 2 or np.iscomplexobj(data):
        return ndimage.zoom(data, factors, order=order, mode=mode, grid_mode=grid_mode)
    try:
        from scipy.ndimage import _nd_image, _ni_support
        from scipy.ndimage._interpolation import _prepad_for_spline_filter
    except ImportError:
        return ndimage.zoom(data, factors, order=order, mode=mode, grid_mode=grid_mode)
    factors = _ni_support._normalize_sequence(factors, data.ndim)
    # From here on scipy's own steps of ``zoom``, in its order, with its arithmetic.
    out_shape = tuple(int(round(i * z)) for i, z in zip(data.shape, factors))
    if all(z == 1 for z in factors):
        return data.copy()
    output = np.zeros(out_shape, dtype=data.dtype)
    div, nom = np.array(out_shape), np.array(data.shape)
    if not grid_mode:
        div, nom = div - 1, nom - 1
    zooms = np.ascontiguousarray(np.divide(nom, div, out=np.ones_like(data.shape, dtype=np.float64), where=div != 0))
    code = _ni_support._extend_mode_to_code(mode)
    with ThreadPoolExecutor(parts) as pool:
        if order > 1:
            padded, npad = _prepad_for_spline_filter(data, mode, 0.0)
            filtered = _spline_filter(padded, order, mode, pool, parts)
        else:
            npad, filtered = 0, data

        def job(block):
            shift = np.zeros(data.ndim, dtype=np.float64)
            shift[0] = block[0]
            _nd_image.zoom_shift(filtered, zooms, shift, output[block[0]:block[1]], order, code, 0.0, npad,
                                 grid_mode)

        try:
            list(pool.map(job, _blocks(out_shape[0], parts)))
        except TypeError:  # zoom_shift's signature changed in this scipy: the public path
            return ndimage.zoom(data, factors, order=order, mode=mode, grid_mode=grid_mode)
    return output


__all__ = ["zoom"]
