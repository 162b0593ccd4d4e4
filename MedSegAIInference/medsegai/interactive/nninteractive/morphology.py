"""Cube-shaped dilation and erosion with a replicated border, as nnInteractive's AutoZoom and
refinement planner use them (thin prompts are dilated before a zoomed-out resize; the planner
opens the change map). Max and min are exact, so any correct implementation agrees bit for bit;
this one is separable and works in slabs so that a zoomed-out 768^3 crop needs no second copy,
and dilation of a non-negative channel works only around its non-zero part.
"""
from __future__ import annotations

import torch


def _replicate(x: torch.Tensor, axis: int, before: int, after: int) -> torch.Tensor:
    if before <= 0 and after <= 0:
        return x
    parts = []
    if before > 0:
        parts.append(x.narrow(axis, 0, 1).expand(*[before if d == axis else -1 for d in range(x.ndim)]))
    parts.append(x)
    if after > 0:
        n = x.shape[axis]
        parts.append(x.narrow(axis, n - 1, 1).expand(*[after if d == axis else -1 for d in range(x.ndim)]))
    return torch.cat(parts, dim=axis)


def _window(x: torch.Tensor, axis: int, k: int, op) -> torch.Tensor:
    """Extreme over windows of width ``k`` along ``axis`` (the result is k - 1 shorter)."""
    n = x.shape[axis] - (k - 1)
    out = x.narrow(axis, 0, n)
    for shift in range(1, k):
        out = op(out, x.narrow(axis, shift, n))
    return out


def cube_filter(x: torch.Tensor, k: int, minimum: bool = False, slab: int = 64) -> torch.Tensor:
    """Max (or min) over a k^3 cube around every voxel of a 3D tensor, the border replicated."""
    if k % 2 != 1:
        raise ValueError("the cube must have an odd side")
    if k == 1:
        return x.clone()
    r, op = k // 2, (torch.minimum if minimum else torch.maximum)
    depth = x.shape[0]
    out = torch.empty_like(x)
    for z0 in range(0, depth, slab):
        z1 = min(depth, z0 + slab)
        a, b = max(0, z0 - r), min(depth, z1 + r)
        block = _window(_replicate(x[a:b], 0, r - (z0 - a), r - (b - z1)), 0, k, op)
        for axis in (1, 2):
            block = _window(_replicate(block, axis, r, r), axis, k, op)
        out[z0:z1] = block
    return out



def dilate_near(x: torch.Tensor, k: int, box) -> torch.Tensor:
    """``cube_filter(x, k)`` of a non-negative 3D tensor that is zero outside ``box`` ([lo, hi) per axis).

    A replicated border means each voxel takes the maximum over its cube clipped to the volume.
    Farther than k // 2 from the box that maximum is 0; nearer, the cube clipped to the box grown
    by 2 * (k // 2) holds every non-zero voxel the full cube holds, so filtering that block alone
    (with its own replicated border) gives the same values at a fraction of the cost.
    """
    r = k // 2
    block = tuple(slice(max(0, a - 2 * r), min(n, b + 2 * r)) for (a, b), n in zip(box, x.shape))
    out = torch.zeros_like(x)
    out[block] = cube_filter(x[block], k)
    return out
