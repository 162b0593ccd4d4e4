"""The click model's network input: nnInteractive's 8-channel layout, rasterised on the model's crop.

Channels (the same order and meaning as nnInteractive's ``_legacy_default_capability``):
0 image, 1 previous mask, 2 box/lasso positive, 3 box/lasso negative, 4 points positive,
5 points negative, 6 scribbles positive, 7 scribbles negative. A point is a solid ball of radius
``point_radius`` crop voxels (nnInteractive: 4 voxels of its 192^3 patch; here 2 voxels of a
32^3 crop at 3 mm or coarser, i.e. at least 6 mm), boxes and lassos are filled, prompts are
merged by maximum. Unlike nnInteractive there is no per-prompt decay: every prompt weighs 1.

This module rasterises on a :class:`~.grid.CropGrid` (nnInteractive's encoder works on the full
volume); the nnInteractive engine has its own full-volume rasteriser. Written separately because
that module did not exist when this was written: the lead may merge them (the channel layout is
already shared).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from ..engine import Prompt
from .grid import CropGrid

CHANNELS = ("image", "previous_mask", "box_lasso_positive", "box_lasso_negative",
            "points_positive", "points_negative", "scribbles_positive", "scribbles_negative")
N_CHANNELS = len(CHANNELS)
IMAGE, PREVIOUS, BOX_POS, BOX_NEG, POINT_POS, POINT_NEG, SCRIBBLE_POS, SCRIBBLE_NEG = range(N_CHANNELS)

# CT: HU clipped to this window and divided by CT_SCALE; MR: z-score over the crop.
CT_WINDOW = (-1000.0, 1000.0)
CT_SCALE = 250.0
CT_AIR = -1000.0
POINT_RADIUS = 2.0  # crop voxels


def channel_of(kind: str, positive: bool) -> int:
    if kind in ("box", "lasso"):
        return BOX_POS if positive else BOX_NEG
    if kind == "point":
        return POINT_POS if positive else POINT_NEG
    if kind == "scribble":
        return SCRIBBLE_POS if positive else SCRIBBLE_NEG
    raise ValueError(f"prompt kind {kind!r} has no channel")


def is_ct(array: np.ndarray) -> bool:
    """HU images contain air (about -1000); MR intensities are (nearly) non-negative."""
    flat = array.ravel()
    sample = flat[:: max(1, flat.size // 200_000)]
    return bool(np.percentile(sample, 0.5) < -400)


def normalise(crop: np.ndarray, ct: bool) -> np.ndarray:
    if ct:
        return ((np.clip(crop, *CT_WINDOW)) / CT_SCALE).astype(np.float32)
    mean, std = float(crop.mean()), float(crop.std())
    return ((crop - mean) / max(std, 1e-6)).astype(np.float32)


def image_channel(grid: CropGrid, array: np.ndarray, ct: bool) -> np.ndarray:
    pad = CT_AIR if ct else 0.0
    return normalise(grid.sample(array, pad=pad), ct)


def ball(shape, center, radius: float) -> np.ndarray:
    """Voxels within ``radius`` of ``center`` (crop coordinates, may be fractional)."""
    lo = [max(0, int(np.floor(c - radius))) for c in center]
    hi = [min(n, int(np.ceil(c + radius)) + 1) for c, n in zip(center, shape)]
    out = np.zeros(shape, dtype=bool)
    if any(h <= l for l, h in zip(lo, hi)):
        return out
    zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    d2 = (zz - center[0]) ** 2 + (yy - center[1]) ** 2 + (xx - center[2]) ** 2
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = d2 <= radius ** 2
    return out


def rasterise(prompt: Prompt, grid: CropGrid, point_radius: float) -> Optional[np.ndarray]:
    """The prompt on the crop (bool), or None when it does not reach the crop."""
    size = grid.size
    if prompt.kind == "point":
        c = grid.to_crop(prompt.point)
        if np.any(c < -point_radius) or np.any(c > np.array(size) - 1 + point_radius):
            return None
        out = ball(size, c, point_radius)
        if not out.any():
            idx = tuple(int(np.clip(np.round(v), 0, n - 1)) for v, n in zip(c, size))
            out[idx] = True
        return out
    if prompt.kind == "box":
        sl = tuple(grid.interval_to_crop(a, lo, hi) for a, (lo, hi) in enumerate(prompt.box))
        if any(s.stop <= s.start for s in sl):
            return None
        out = np.zeros(size, dtype=bool)
        out[sl] = True
        return out
    if prompt.kind in ("scribble", "lasso"):
        m = prompt.mask
        shifted = CropGrid(tuple(c - o for c, o in zip(grid.center, prompt.offset)), grid.step, grid.size, m.shape)
        soft = shifted.sample(m.astype(np.float32))
        out = soft > (0.25 / max(1.0, max(grid.step)))  # thin strokes survive zooming out
        if not out.any():
            if soft.max() <= 0:
                return None
            out = soft >= soft.max() * 0.5
        return out
    return None


def encode(grid: CropGrid, array: np.ndarray, ct: bool, prompts: Sequence[Prompt], mask: np.ndarray,
           point_radius: float) -> np.ndarray:
    """The (8, *size) float32 network input for ``prompts`` (already since the last ``mask`` prompt)."""
    x = np.zeros((N_CHANNELS,) + tuple(grid.size), dtype=np.float32)
    x[IMAGE] = image_channel(grid, array, ct)
    x[PREVIOUS] = grid.sample(mask) > 0.5
    for p in prompts:
        if p.kind == "mask":
            continue
        r = rasterise(p, grid, point_radius)
        if r is not None:
            ch = channel_of(p.kind, p.positive)
            x[ch] = np.maximum(x[ch], r)
    return x


def crop_channels_from_arrays(image: np.ndarray, previous: np.ndarray, marks: Dict[int, np.ndarray]) -> np.ndarray:
    """Training: the input from crop-space arrays (``marks``: channel -> bool array)."""
    x = np.zeros((N_CHANNELS,) + image.shape, dtype=np.float32)
    x[IMAGE] = image
    x[PREVIOUS] = previous
    for ch, m in marks.items():
        x[ch] = np.maximum(x[ch], m)
    return x
