"""Simulated users for training: where the crop goes, and the prompts, the way interactive papers train.

Per sample: an object of a scan; a crop either centred on its first click at the base zoom (what
the engine does for a first click) or fitted around the whole object (what it does once a mask
exists, up to its maximum zoom); a first prompt (a click at the deepest point, most often; else a
3D box, a 2D box on one slice, a scribble, a lasso, or an imperfect existing mask plus a click);
then the training loop adds rounds of corrective clicks from the network's own predictions with
:func:`medsegai.interactive.click_simulation.next_click` (the benchmark's simulator).
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
from scipy import ndimage as ndi

from ..click_simulation import deepest_point, next_click
from . import encoding as enc
from .encoding import ball
from .grid import CropGrid


def choose_grid(rng: np.random.Generator, scan, box, obj: np.ndarray, cfg) -> CropGrid:
    size, base = tuple(cfg["crop_size"]), float(cfg["base_spacing_mm"])
    spacing_kji = np.array(scan.spacing)
    extent_mm = np.array([(s.stop - s.start) for s in box]) * spacing_kji
    if rng.random() < 0.35:
        sub = obj[box]
        p = deepest_point(sub, spacing_kji)
        center = np.array([c + s.start for c, s in zip(p, box)], dtype=float)
        spacing = base * rng.uniform(0.9, 1.15)
        if extent_mm.max() > base * size[0] and rng.random() < 0.5:
            spacing = min(base * cfg["max_zoom"], base * cfg["zoom_step"])  # the wider second pass
    else:
        center = np.array([(s.start + s.stop - 1) / 2.0 for s in box])
        center += rng.uniform(-0.12, 0.12, 3) * np.array([s.stop - s.start for s in box])
        fov = max(base * size[0], float(extent_mm.max()) * rng.uniform(1.1, 1.6) + 10.0)
        spacing = min(fov / size[0], base * cfg["max_zoom"])
    return CropGrid.around(center, spacing, size, scan.spacing, scan.array.shape)


def _slice_of(rng, gt: np.ndarray) -> Tuple[int, int]:
    """(axis, index) of a slice through the object; mostly axial (axis 0)."""
    axis = 0 if rng.random() < 0.7 else int(rng.integers(1, 3))
    counts = gt.sum(axis=tuple(a for a in range(3) if a != axis))
    idx = np.nonzero(counts)[0]
    weights = counts[idx] ** 0.5
    return axis, int(rng.choice(idx, p=weights / weights.sum()))


def _on_slice(shape, axis, index, plane: np.ndarray) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    sl = [slice(None)] * 3
    sl[axis] = index
    out[tuple(sl)] = plane
    return out


def _scribble(rng, plane: np.ndarray) -> np.ndarray:
    """A thick polyline through 2-4 points inside ``plane`` (a 2D mask)."""
    core = ndi.binary_erosion(plane, iterations=1)
    core = core if core.any() else plane
    pts = np.argwhere(core)
    pts = pts[rng.choice(len(pts), size=min(len(pts), int(rng.integers(2, 5))), replace=False)]
    out = np.zeros_like(plane)
    for a, b in zip(pts[:-1], pts[1:]):
        n = int(np.abs(b - a).max()) + 1
        for t in np.linspace(0, 1, n):
            y, x = np.round(a + t * (b - a)).astype(int)
            out[y, x] = True
    out[pts[0][0], pts[0][1]] = True
    return ndi.binary_dilation(out) & plane if rng.random() < 0.5 else out


def first_prompt(rng, gt: np.ndarray) -> Tuple[Dict[int, np.ndarray], np.ndarray]:
    """(prompt channels, previous mask) for the first interaction on the crop target ``gt``."""
    shape, marks, prev = gt.shape, {}, np.zeros(gt.shape, np.float32)
    r = rng.random()

    def click(region, positive=True):
        if rng.random() < 0.7:
            p = deepest_point(region)
        else:
            core = ndi.binary_erosion(region, iterations=2)
            pts = np.argwhere(core if core.any() else region)
            p = tuple(pts[rng.integers(len(pts))])
        ch = enc.POINT_POS if positive else enc.POINT_NEG
        marks[ch] = marks.get(ch, np.zeros(shape, bool)) | ball(shape, p, enc.POINT_RADIUS)

    if r < 0.5:
        click(gt)
    elif r < 0.62:  # 3D box
        box = ndi.find_objects(gt.astype(np.uint8))[0]
        jit = [slice(max(0, s.start - int(rng.integers(0, 3))), min(n, s.stop + int(rng.integers(0, 3))))
               for s, n in zip(box, shape)]
        m = np.zeros(shape, bool)
        m[tuple(jit)] = True
        marks[enc.BOX_POS] = m
    elif r < 0.74:  # 2D box on one slice
        axis, index = _slice_of(rng, gt)
        plane = np.take(gt, index, axis=axis)
        b = ndi.find_objects(plane.astype(np.uint8))[0]
        p = np.zeros_like(plane)
        p[tuple(slice(max(0, s.start - int(rng.integers(0, 2))), s.stop + int(rng.integers(0, 2))) for s in b)] = True
        marks[enc.BOX_POS] = _on_slice(shape, axis, index, p)
    elif r < 0.84:  # scribble on one slice
        axis, index = _slice_of(rng, gt)
        marks[enc.SCRIBBLE_POS] = _on_slice(shape, axis, index, _scribble(rng, np.take(gt, index, axis=axis)))
        if rng.random() < 0.3:
            bg = ~ndi.binary_dilation(np.take(gt, index, axis=axis), iterations=3)
            if bg.any():
                marks[enc.SCRIBBLE_NEG] = _on_slice(shape, axis, index, _scribble(rng, bg))
    elif r < 0.92:  # lasso on one slice
        axis, index = _slice_of(rng, gt)
        plane = np.take(gt, index, axis=axis)
        it = int(rng.integers(0, 3))
        plane = ndi.binary_fill_holes(ndi.binary_dilation(plane, iterations=it) if it else plane)
        marks[enc.BOX_POS] = _on_slice(shape, axis, index, plane)
    else:  # an imperfect existing mask, then a corrective click
        it = int(rng.integers(1, 4))
        m = ndi.binary_dilation(gt, iterations=it) if rng.random() < 0.5 else ndi.binary_erosion(gt, iterations=it)
        if rng.random() < 0.5:  # part of it missing
            axis = int(rng.integers(0, 3))
            idx = np.nonzero(gt.any(axis=tuple(a for a in range(3) if a != axis)))[0]
            cut = int(rng.integers(idx[0], idx[-1] + 1))
            sl = [slice(None)] * 3
            sl[axis] = slice(cut, None) if rng.random() < 0.5 else slice(None, cut)
            m[tuple(sl)] = False
        prev = m.astype(np.float32)
        c = next_click(m, gt)
        if c is None:
            click(gt)
        else:
            ch = enc.POINT_POS if c[1] else enc.POINT_NEG
            marks[ch] = ball(shape, c[0], enc.POINT_RADIUS)
    return marks, prev


def add_correction(marks: Dict[int, np.ndarray], prediction: np.ndarray, gt: np.ndarray) -> bool:
    """One more click at the largest error region (the benchmark's user); False when nothing is wrong."""
    c = next_click(prediction, gt)
    if c is None or c[0] is None:
        return False
    ch = enc.POINT_POS if c[1] else enc.POINT_NEG
    marks[ch] = marks.get(ch, np.zeros(gt.shape, bool)) | ball(gt.shape, c[0], enc.POINT_RADIUS)
    return True
