"""Refinement after a zoomed-out prediction: the coarse mask, resized back to the window, tells
where the mask changed; patch-sized boxes over that change are predicted again at full resolution,
one after the other, each seeing the coarse mask and the boxes refined before it as its previous
mask. Only the refined boxes reach the mask; the coarse prediction itself never does.

nnInteractive copies the image and all prompt channels of the boxes' hull into a cache first
(18 bytes a voxel); here each box's input is built when it is predicted, and only the previous-mask
channel of the hull is kept (1 byte a voxel). Every voxel gets the same values either way.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .boxes import BoxList, cover
from .morphology import cube_filter
from .normalization import NormalizedImage, nonzero_box
from .prompts import PromptChannels

MARGIN = 24  # voxels of a box's side that count as context only
OPENING = 5  # width of the cube that opens the change map, fewer boxes for speckle


def clip(box, shape) -> Optional[List[List[int]]]:
    out = [[max(0, a), min(b, s)] for (a, b), s in zip(box, shape)]
    return None if any(b <= a for a, b in out) else out


def union(*boxes) -> Optional[List[List[int]]]:
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return [[min(b[d][0] for b in boxes), max(b[d][1] for b in boxes)] for d in range(3)]


def box_slices(box, origin=(0, 0, 0)):
    return tuple(slice(a - o, b - o) for (a, b), o in zip(box, origin))


def plan(coarse: torch.Tensor, window_box, prev_seg: np.ndarray, center: Sequence[int], patch: Sequence[int],
         full: bool, rng: np.random.RandomState) -> BoxList:
    """Refinement boxes (image coordinates) for a coarse mask ``coarse`` over ``window_box``.
    ``full``: also cover the whole previous mask (an initial mask is refined everywhere)."""
    shape = prev_seg.shape
    fallback = [[[c - p // 2, c - p // 2 + p] for c, p in zip(center, patch)]]
    planning = clip(window_box, shape)
    if full:
        planning = union(planning, nonzero_box(prev_seg))
    if planning is None:
        return fallback
    seen = clip(window_box, shape)
    change = np.zeros([b - a for a, b in planning], dtype=np.uint8)
    if seen is not None:
        pred_part = coarse[box_slices(seen, [a for a, _ in window_box])]
        before = torch.from_numpy(np.ascontiguousarray(prev_seg[box_slices(seen)])).to(pred_part.device)
        # 0/1 values: min and max give the same result in uint8 as in nnInteractive's float16, faster.
        diff = (pred_part != before).to(torch.uint8)
        diff = cube_filter(cube_filter(diff, OPENING, minimum=True), OPENING)
        change[box_slices(seen, [a for a, _ in planning])] = diff.cpu().numpy()
    if full:
        change[prev_seg[box_slices(planning)] > 0] = 1
    local = cover(change, patch, (MARGIN,) * 3, rng)
    if not local:
        return fallback
    return [[[a + o, b + o] for (a, b), (o, _) in zip(box, planning)] for box in local]


def upsample_coarse(pred: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The coarse argmax, at the zoomed-out window's own size."""
    if list(pred.shape) == list(size):
        return pred
    return (F.interpolate(pred[None, None].to(torch.float32), list(size), mode="trilinear")[0, 0] >= 0.5).to(
        torch.uint8)


def refine(boxes: BoxList, coarse: torch.Tensor, window_box, image: NormalizedImage, channels: PromptChannels,
           prev_seg: np.ndarray, forward: Callable[[torch.Tensor], torch.Tensor], device: torch.device):
    """Predict every box in order; returns (hull in image coordinates, new mask values over it)."""
    shape = image.shape
    hull = union(*boxes)
    hull_lo = [a for a, _ in hull]
    # The previous-mask channel of the hull: old mask, the coarse prediction over the window, zeros outside the image.
    work = np.zeros([b - a for a, b in hull], dtype=np.uint8)
    inside = clip(hull, shape)
    if inside is not None:
        work[box_slices(inside, hull_lo)] = prev_seg[box_slices(inside)]
    # The window may reach beyond the hull (and the image): inject only where all three overlap.
    inject = clip(window_box, shape)
    inject = None if inject is None else clip([[max(a, h0), min(b, h1)] for (a, b), (h0, h1) in zip(inject, hull)],
                                              shape)
    if inject is not None:
        part = coarse[box_slices(inject, [a for a, _ in window_box])].to(torch.uint8).cpu().numpy()
        work[box_slices(inject, hull_lo)] = part
    n, prev_c = channels.cap.num_channels, channels.cap.prev_seg
    for box in boxes:
        valid = clip(box, shape)
        dst = tuple(slice(va - a, vb - a) for (a, _), (va, vb) in zip(box, valid))
        img = torch.zeros([1, *[b - a for a, b in box]], dtype=torch.float32)
        img[(slice(None), *dst)] = image.crop(valid)
        inter = torch.zeros([n, *[b - a for a, b in box]], dtype=torch.float16)
        for c in range(n):
            if c == prev_c:
                inter[c] = torch.from_numpy(work[box_slices(box, hull_lo)])
            else:
                inter[(c, *dst)] = channels.region(c, valid)
        channels.normalize_(inter)
        pred = forward(torch.cat((img, inter)).to(device))
        work[box_slices(box, hull_lo)] = pred.to(torch.uint8).cpu().numpy()
    # Only the refined boxes are written: between them the hull keeps the old mask, not the coarse one.
    values = np.zeros_like(work)
    if inside is not None:
        values[box_slices(inside, hull_lo)] = prev_seg[box_slices(inside)]
    for box in boxes:
        valid = clip(box, shape)
        values[box_slices(valid, hull_lo)] = work[box_slices(valid, hull_lo)]
    return inside, values[box_slices(inside, hull_lo)] if inside is not None else values
