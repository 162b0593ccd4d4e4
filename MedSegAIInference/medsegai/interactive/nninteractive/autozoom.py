"""AutoZoom's network input: a window of ``zoom`` patches around the prompt, resized to one patch,
and the test that tells AutoZoom to zoom out further (the prediction changed at the window's border).

The arithmetic follows nnInteractive 2.6.0 step by step (float16 channels, area resize of the
prompt channels after dilating thin ones, trilinear resize of the image, nearest for the previous
mask), because every rounding step shows in the network's input.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil, floor
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .morphology import dilate_near
from .normalization import NormalizedImage
from .prompts import PromptChannels

MAX_ZOOM = 4.0
ZOOM_STEP = 1.5


@dataclass
class Window:
    box: List[List[int]]  # [lo, hi) per axis in image coordinates; may reach outside the image
    size: Tuple[int, int, int]

    def valid(self, shape: Sequence[int]) -> List[List[int]]:
        return [[max(a, 0), min(b, s)] for (a, b), s in zip(self.box, shape)]

    def interior(self, shape: Sequence[int]) -> Tuple[slice, ...]:
        """Where the in-image part lies inside the window."""
        return tuple(slice(va - a, vb - a) for (a, _), (va, vb) in zip(self.box, self.valid(shape)))


def window(center: Sequence[int], zoom: float, patch: Sequence[int]) -> Window:
    size = tuple(round(p * zoom) for p in patch)
    return Window([[c - s // 2, c + s // 2 + s % 2] for c, s in zip(center, size)], size)


def odd_at_least(x: float) -> int:
    """The odd integer nnInteractive picks as dilation width for a zoom: ceil or floor if odd, else round + 1."""
    if ceil(x) % 2 == 1:
        return ceil(x)
    if floor(x) % 2 == 1:
        return floor(x)
    return round(x) + 1


def network_input(image: NormalizedImage, channels: PromptChannels, prev_seg: np.ndarray, center, zoom: float,
                  patch: Sequence[int], device: torch.device):
    """(input [1 + n, *patch] float32, window, previous mask as the network sees it [*patch] float16)."""
    win = window(center, zoom, patch)
    valid, inside = win.valid(image.shape), win.interior(image.shape)
    n, prev_c = channels.cap.num_channels, channels.cap.prev_seg
    patch = list(patch)

    def raw(c: int) -> torch.Tensor:
        if c == prev_c:
            return torch.from_numpy(np.ascontiguousarray(prev_seg[tuple(slice(a, b) for a, b in valid)])).to(
                torch.float16)
        return channels.region(c, valid)

    if list(win.size) != patch:
        k = odd_at_least(zoom * 2 - 1)
        thin = set(channels.cap.thin_channels()) if k > 1 else set()
        padded = torch.zeros([1, *win.size], dtype=torch.float16, device=device)

        def framed(c: int) -> torch.Tensor:
            padded[(0, *inside)] = raw(c).to(device)
            return padded

        previous = F.interpolate(framed(prev_c)[None], patch, mode="nearest")[0, 0]
        # Channels that are zero in the window stay zero through dilation and resize: skip the work
        # (the float16 area resize is the slowest step on a CPU, half a second per channel at 216^3).
        inter = torch.zeros([n, *patch], dtype=torch.float16, device=device)
        for c in range(n):
            if c == prev_c:
                if not prev_seg[tuple(slice(a, b) for a, b in valid)].any():
                    continue
                ch = framed(c)
            else:
                near = channels.footprint(c, valid)
                if near is None:
                    continue
                ch = framed(c)
                if c in thin:
                    near = [[a + s.start, b + s.start] for (a, b), s in zip(near, inside)]
                    ch = dilate_near(ch[0], k, near)[None]
            inter[c:c + 1] = F.interpolate(ch[None], patch, mode="area")[0]
        del padded
        img = torch.zeros([1, *win.size], dtype=torch.float32, device=device)
        img[(slice(None), *inside)] = image.crop(valid).to(device)
        img = F.interpolate(img[None], patch, mode="trilinear")[0]
    else:
        img = torch.zeros([1, *patch], dtype=torch.float32, device=device)
        img[(slice(None), *inside)] = image.crop(valid).to(device)
        inter = torch.zeros([n, *patch], dtype=torch.float16, device=device)
        for c in range(n):
            inter[(c, *inside)] = raw(c).to(device)
        previous = inter[prev_c].clone()
    channels.normalize_(inter)
    return torch.cat((img, inter)), win, previous


def border_changed(pred: torch.Tensor, previous: torch.Tensor, abs_threshold: int = 1500,
                   rel_threshold: float = 0.2, min_threshold: int = 100) -> bool:
    """Did the prediction change on a face of the window: more than 1500 voxels, or more than 100
    voxels and 20% of the face's foreground? Then the object probably goes on outside it."""
    stats = []
    for dim in range(pred.ndim):
        for idx in (0, pred.shape[dim] - 1):
            before = previous.select(dim, idx)
            now = pred.select(dim, idx).to(previous.device)
            stats += [torch.sum(before, dtype=torch.float32), torch.sum(now, dtype=torch.float32),
                      torch.sum(before != now, dtype=torch.float32)]
    values = torch.stack(stats).tolist()
    for i in range(0, len(values), 3):
        before, now, diff = values[i:i + 3]
        rel = max(before, now) / max(min(before, now), 1e-5) - 1
        if diff > abs_threshold or (diff > min_threshold and rel > rel_threshold):
            return True
    return False
