"""Seeds of the classical engine: what the prompts say about foreground and background.

Positive points (a small ball), scribbles, lassos and the centre of a box are hard foreground;
their negative counterparts hard background, a later prompt overriding an earlier one. A click is
a few voxels, so it also grows a *core*: the voxels of nearly its own intensity connected to it
within ``CORE_MM``. Intensity windows (median and robust spread of a click's neighbourhood, at
least the image noise) decide which voxels are far from anything the user called foreground.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi

from .engine import Prompt, Region
from .work_grid import local

SEED_MM = 3.0  # radius of the ball a click seeds (at least its voxel)
STATS_MM = 5.0  # radius around a click whose intensities set its window (at least the 26 neighbours)
CORE_MM = 12.0  # how far a click's core grows through voxels of nearly its own intensity
CORE_WINDOW = 0.4  # a core's tolerance, as a fraction of the window
WINDOW = 3.0  # half-width of a window, in robust spreads


def since_last_mask(prompts: Sequence[Prompt]) -> List[Prompt]:
    """Prompts after the last set_mask/add_text: earlier ones are already summed up in that mask."""
    start = max((n + 1 for n, p in enumerate(prompts) if p.kind == "mask"), default=0)
    return list(prompts[start:])


def ball(shape, centre, spacing, radius_mm: float) -> np.ndarray:
    """Voxels within ``radius_mm`` of ``centre`` (crop coordinates; may lie outside the crop)."""
    axes = np.ogrid[tuple(slice(0, n) for n in shape)]
    d2 = sum(((a - c) * s) ** 2 for a, c, s in zip(axes, centre, spacing))
    out = d2 <= radius_mm ** 2
    if all(0 <= c < n for c, n in zip(centre, shape)):
        out[tuple(int(c) for c in centre)] = True  # a radius below the voxel size still holds the voxel
    return out


def inside(box, crop: Region, shape) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[local(tuple(slice(a, b) for a, b in box), crop)] = True
    return out


def box_centre(box, fraction: float = 1 / 6) -> tuple:
    """The box without ``fraction`` of its size on each side (at least its middle voxel): where the
    object most likely is; its intensity window then picks the object's voxels there."""
    out = []
    for a, b in box:
        lo = a + int((b - a) * fraction)
        out.append((lo, max(lo + 1, b - int((b - a) * fraction))))
    return tuple(out)


def paint(target: np.ndarray, prompt: Prompt, crop: Region) -> None:
    """Mark the prompt's own voxels (a point's voxel, a stroke's pixels) in a crop-sized array."""
    sub = local(prompt.region(), crop)
    if any(s.stop <= s.start for s in sub):
        return
    if prompt.kind == "point":
        target[sub] = True
        return
    src = tuple(slice(s.start + c.start - r.start, s.stop + c.start - r.start)
                for s, c, r in zip(sub, crop, prompt.region()))
    target[sub] |= prompt.mask[src].astype(bool)


def prompt_seeds(prompts: Sequence[Prompt], crop: Region, spacing) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hard foreground and background of every prompt overlapping the crop (a later prompt wins), and
    the foreground drawn rather than clicked (strokes), whose intensities are many."""
    shape = tuple(s.stop - s.start for s in crop)
    fg, bg, drawn = np.zeros(shape, bool), np.zeros(shape, bool), np.zeros(shape, bool)
    for p in prompts:
        if p.kind == "point":
            centre = tuple(x - c.start for x, c in zip(p.point, crop))
            if not all(-SEED_MM / s <= x < n + SEED_MM / s for x, n, s in zip(centre, shape, spacing)):
                continue
            mark = ball(shape, centre, spacing, SEED_MM)
        elif p.kind == "box":
            continue  # a box's centre is only likely foreground: see box_core
        else:
            mark = np.zeros(shape, bool)
            paint(mark, p, crop)
        (fg if p.positive else bg)[mark] = True
        (bg if p.positive else fg)[mark] = False
        if p.kind != "point":
            drawn[mark] = p.positive
    return fg, bg, drawn & fg


def clicks_in(prompts: Sequence[Prompt], crop: Region, factors) -> List[Tuple[Prompt, Tuple[int, int, int]]]:
    """Each click inside the crop, with its voxel on the work grid."""
    return [(p, tuple((x - c.start) // f for x, c, f in zip(p.point, crop, factors)))
            for p in prompts if p.kind == "point" and all(c.start <= x < c.stop for x, c in zip(p.point, crop))]


def noise_level(image: np.ndarray) -> float:
    """Robust noise of the (smoothed) crop from neighbour differences; edges are outliers of the median."""
    axis = int(np.argmax(image.shape))
    return 1.4826 * float(np.median(np.abs(np.diff(image, axis=axis)))) / np.sqrt(2)


def window(image: np.ndarray, evidence: np.ndarray, noise: float) -> Tuple[float, float]:
    """Centre and robust spread (at least the noise) of the intensities under ``evidence``."""
    values = image[evidence]
    mu = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - mu)))
    return mu, max(spread, noise, 1e-6 * max(1.0, abs(mu)))


def click_window(image: np.ndarray, at, spacing, noise: float) -> Tuple[float, float]:
    return window(image, ball(image.shape, at, spacing, max(STATS_MM, 1.8 * max(spacing))), noise)


def core(image: np.ndarray, at, free: np.ndarray, spacing, noise: float) -> np.ndarray:
    """The voxels of nearly the click's intensity connected to it within CORE_MM. Without it a click
    is a seed of a few voxels that a solver's background seeds easily outnumber."""
    mu, width = click_window(image, at, spacing, noise)
    similar = (np.abs(image - mu) <= CORE_WINDOW * WINDOW * width) & ball(image.shape, at, spacing, CORE_MM) & free
    similar[at] = True
    lab, _ = ndi.label(similar)
    return lab == lab[at]


def box_window(image: np.ndarray, box: np.ndarray, ring: np.ndarray, noise: float) -> Tuple[float, float]:
    """The object's intensity window from a box: the intensities most enriched inside the box against
    the ring around it (GrabCut's idea, as two histograms). A box's centre need not be the object: a
    kidney's holds the renal sinus fat, a liver's may hold the stomach."""
    inner, ring = image[box], image[ring & ~box]
    if ring.size < 8 or inner.size < 8:
        return window(image, box, noise)
    lo, hi = np.percentile(inner, [1, 99])
    if hi <= lo:
        return window(image, box, noise)
    bins = np.linspace(lo, hi, 49)
    excess = np.histogram(inner, bins)[0] / inner.size - np.histogram(ring, bins)[0] / ring.size
    enriched = ndi.gaussian_filter1d(excess, 1.0)
    peak = int(np.argmax(enriched))
    left, right = peak, peak
    while left > 0 and enriched[left - 1] > 0:
        left -= 1
    while right < len(enriched) - 1 and enriched[right + 1] > 0:
        right += 1
    values = inner[(inner >= bins[left]) & (inner <= bins[right + 1])]
    if values.size < 8:
        return window(image, box, noise)
    mu = float(np.median(values))
    return mu, max(1.4826 * float(np.median(np.abs(values - mu))), noise)


def box_core(image: np.ndarray, box: np.ndarray, ring: np.ndarray, centre: np.ndarray,
             noise: float) -> Tuple[np.ndarray, Tuple[float, float]]:
    """The voxels of a box's centre inside its object window (foreground seeds), and that window."""
    mu, width = box_window(image, box, ring, noise)
    return centre & (np.abs(image - mu) <= CORE_WINDOW * WINDOW * width), (mu, width)
