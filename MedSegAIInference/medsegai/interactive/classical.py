"""The classical engine: no network, the fallback and the benchmark baseline.

Each prompt is solved on a crop around it (``seeds`` says what the prompts mean). Voxels beyond
the prompt's reach keep their mask value and are seeds too, so a prompt is a local edit and one
click grows a blob rather than the whole body; crop voxels far outside every foreground intensity
window are background. When the blob covers much of its zone's edge, the zone grows 1.6x and the
prompt is solved again, up to twice (nnInteractive's AutoZoom, in spirit). Large crops are solved
on a coarser grid (``work_grid``), so a 512x512 CT costs the same per prompt as a small one.

Solver: marker-based watershed (``skimage.segmentation.watershed``) on the gradient magnitude of
the normalised crop, i.e. seeded region growing along the lowest-edge paths, a geodesic method in
the GrowCut family. Measured against ``skimage.segmentation.random_walker`` (``cg_j``) with the
same seeds on 21 real organs (7 and 4 in TotalSegmentator's 3 mm and 0.98 mm example CTs, 10 in
OpenKBP head-and-neck CTs), 5 simulated clicks each (each at the largest error's centre): mean Dice
0.51/0.62/0.68/0.68/0.72 after clicks 1-5 against 0.41/0.55/0.63/0.66/0.70, at 0.03 s per click
(at most 0.14 s) against 0.65 s (up to 3.5 s) on 2 shared CPU cores. The random walker's bias
towards small seeds keeps a blob from reaching its zone's edge, so it never zooms out on large
organs. ``solver="random_walker"`` keeps it for benchmarks.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi

from ..io.image import Image
from .engine import Prompt, Region, Update
from .seeds import (WINDOW, box_centre, box_core, click_window, clicks_in, core, inside, noise_level, paint,
                    prompt_seeds, since_last_mask, window)
from .work_grid import blocks_of, block_factors, fine_of, grow, mm_to_voxels, nearest, reduce, upsample

REACH_MM = 50.0  # how far one click or stroke may change the mask at first
ZOOMS, ZOOM = 2, 1.6  # a blob reaching the edge of its zone is solved again 1.6x further out, at most twice
ZOOM_EDGE = 0.05  # "reaching the edge": covering this fraction of the zone's edge
RING_MM = 6.0  # background ring around a box
SMOOTH_MM = 1.5  # Gaussian smoothing against CT noise
MAX_VOXELS = 48 ** 3  # solver unknowns per prompt, whatever the image size
SOLVERS = ("watershed", "random_walker")
BG, FG = 1, 2


def create_engine(model=None, device: str = "auto", threads: Optional[int] = None, **options) -> "ClassicalEngine":
    return ClassicalEngine(**options)


class ClassicalEngine:
    name = "classical"

    def __init__(self, reach_mm: float = REACH_MM, max_voxels: int = MAX_VOXELS, solver: str = "watershed"):
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
        self.reach_mm, self.max_voxels, self.solver = float(reach_mm), int(max_voxels), solver
        self._array: Optional[np.ndarray] = None
        self._spacing = (1.0, 1.0, 1.0)

    def set_image(self, image: Image) -> None:
        self._array = image.array  # the session's array, not a copy: crops are converted per prompt
        self._spacing = tuple(float(s) for s in image.spacing[::-1])

    def sync(self, prompts: Sequence[Prompt], mask: np.ndarray) -> None:
        """Nothing to do: every prediction reads the prompts and the mask it is given."""

    def close(self) -> None:
        self._array = None

    # -- one prompt ---------------------------------------------------------------------------------
    def predict(self, prompts: Sequence[Prompt], mask: np.ndarray) -> Update:
        if self._array is None:
            raise RuntimeError("set_image first")
        last = prompts[-1]
        if last.kind == "mask":
            raise ValueError("a mask prompt sets the mask itself; the session never asks an engine to predict it")
        if last.kind == "box" and not last.positive:
            # An eraser: the user says nothing in this box belongs to the segment.
            return Update(last.region(), np.zeros(mask[last.region()].shape, np.uint8))
        active = since_last_mask(prompts)
        reach = self.reach_mm
        for _ in range(ZOOMS + 1):
            region, crop = self._regions(last, reach)
            update, grew_out = self._solve_crop(active, last, crop, mask[crop], reach)
            whole = all(s.start == 0 and s.stop == n for s, n in zip(region, mask.shape))
            if not grew_out or whole or last.kind == "box" or not last.positive:
                break
            reach *= ZOOM
        return update

    def _solve_crop(self, active: Sequence[Prompt], last: Prompt, crop: Region, current: np.ndarray,
                    reach: float) -> Tuple[Update, bool]:
        """The new values where they may differ from the mask, and whether the blob reached its zone's edge."""
        factors = block_factors(current.shape, self._spacing, self.max_voxels)
        spacing = tuple(np.multiply(self._spacing, factors))
        image = reduce(self._array[crop].astype(np.float32), factors)
        image = ndi.gaussian_filter(image, sigma=np.clip(SMOOTH_MM / np.asarray(spacing), 0.5, 1.5))
        noise = noise_level(image)
        fine_fg, fine_bg, fine_drawn = prompt_seeds(active, crop, self._spacing)
        m = reduce(current.astype(np.float32), factors)
        free, exact = self._free_zone(last, crop, reach, factors)
        fg, bg = reduce(fine_fg, factors, np.max), reduce(fine_bg, factors, np.max)
        clicks = clicks_in(active, crop, factors)

        windows = [click_window(image, at, spacing, noise) for p, at in clicks if p.positive]
        drawn = reduce(fine_drawn, factors, np.min)  # whole blocks: a block's mean mixes tissues...
        if not drawn.any():
            drawn = reduce(fine_drawn, factors, np.max)  # ... unless the stroke is too thin for any
        if drawn.any():
            windows.append(window(image, drawn, noise))
        box_seeds = self._box_seeds(active, crop, factors, image, noise)
        boxes = [seeds for seeds, _ in box_seeds]
        windows += [win for _, win in box_seeds]
        if not windows and (m > 0.5).any():
            windows.append(window(image, m > 0.5, noise))
        nothing = Update(tuple(slice(s.start, s.start) for s in crop), np.zeros((0, 0, 0), np.uint8))
        if not windows:
            return nothing, False  # nothing positive nearby: nothing to grow

        far = np.all([np.abs(image - mu) > WINDOW * w for mu, w in windows], axis=0)
        far = ndi.binary_opening(far)  # a noisy voxel inside the organ is no seed
        labels = np.zeros(image.shape, np.int32)
        labels[free & far & (m < 0.5)] = BG
        labels[~free] = np.where(m[~free] > 0.5, FG, BG)
        if last.kind == "box":  # outside the box (a 2D box: outside its outline, on every slice of its slab)
            labels[~free] = BG
        for centre in boxes:
            labels[centre] = FG
        for p, at in clicks:  # a later click's core wins over an earlier one's
            labels[core(image, at, free, spacing, noise)] = FG if p.positive else BG
        labels[fg & ~bg] = FG
        labels[bg & ~fg] = BG
        mu = float(np.median([w[0] for w in windows]))
        z = np.clip((image - mu) / (WINDOW * max(w[1] for w in windows)), -1.5, 1.5)
        solved = self._solve(z, m, labels, spacing)

        edge = free & ~ndi.binary_erosion(free, border_value=1)
        grew_out = np.count_nonzero((solved > 0.5) & edge & (m < 0.5)) > ZOOM_EDGE * max(1, np.count_nonzero(edge))
        changing = free & ((solved > 0) | (m > 0))
        if not changing.any():
            return nothing, grew_out
        box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(changing))
        sub = fine_of(blocks_of(fine_of(box, factors, current.shape), factors, image.shape, margin=1), factors,
                      current.shape)
        free_fine = exact[sub] if exact is not None else nearest(free, factors, sub)
        cur = current[sub].astype(bool)
        new = np.where(free_fine, upsample(solved, factors, sub) > 0.5, cur)
        new[fine_fg[sub] & free_fine] = True
        new[fine_bg[sub] & free_fine] = False
        support = fine_fg[sub] | cur
        for centre in boxes:
            support |= nearest(centre, factors, sub)
        new = _keep_supported(new, support)
        if last.kind != "box":  # a click or stroke only adds (positive) or only removes (negative): no surprises
            new = new | cur if last.positive else new & cur
        region = tuple(slice(c.start + s.start, c.start + s.stop) for c, s in zip(crop, sub))
        return Update(region, new.astype(np.uint8)), grew_out

    @staticmethod
    def _box_seeds(active: Sequence[Prompt], crop: Region, factors, image: np.ndarray, noise: float):
        """(foreground seeds, intensity window) on the work grid for each positive box in the crop."""
        shape = tuple(c.stop - c.start for c in crop)
        out = []
        for p in active:
            if p.kind != "box" or not p.positive:
                continue
            # A 2D box's outline is close to the object on its slice; a 3D box's corners are not.
            flat = any(b - a == 1 for a, b in p.box)
            centre = reduce(inside(box_centre(p.box, 1 / 6 if flat else 1 / 3), crop, shape), factors, np.min)
            # The ring to compare with lies in the box's own slices: for a 2D box, its slice.
            slab = [(a, b) if b - a == 1 else (c.start, c.stop) for (a, b), c in zip(p.box, crop)]
            ring = reduce(inside(slab, crop, shape), factors, np.max)
            seeds, win = box_core(image, reduce(inside(p.box, crop, shape), factors, np.max), ring, centre, noise)
            if seeds.any():
                out.append((seeds, win))
        return out

    def _solve(self, z: np.ndarray, m: np.ndarray, labels: np.ndarray, spacing) -> np.ndarray:
        """Foreground (1) or its probability on the work grid."""
        if not (labels == BG).any():  # nothing says where the object ends: its intensity window does
            return np.where(labels == 0, np.abs(z) <= 1, labels == FG).astype(np.float32)
        if not (labels == 0).any():
            return (labels == FG).astype(np.float32)
        if self.solver == "watershed":
            from skimage.segmentation import watershed

            # The mask's own edge counts as an image edge: the current mask is evidence, not a seed.
            elevation = ndi.gaussian_gradient_magnitude(z, 0.5) + 0.5 * ndi.gaussian_gradient_magnitude(m, 0.5)
            return (watershed(elevation, labels) == FG).astype(np.float32)
        from skimage.segmentation import random_walker

        data = np.stack([z, 0.5 * (m - 0.5)], axis=-1)
        prob = random_walker(data, labels, beta=130, mode="cg_j", tol=1e-2, channel_axis=-1,
                             spacing=np.asarray(spacing) / min(spacing), return_full_prob=True, prob_tol=1.0)
        return prob[FG - 1].astype(np.float32)

    # -- where a prompt acts ------------------------------------------------------------------------
    def _regions(self, prompt: Prompt, reach_mm: float) -> Tuple[Region, Region]:
        """(the region the prompt may change, the crop the solver sees around it)."""
        shape = self._array.shape
        reach = mm_to_voxels(reach_mm, self._spacing)
        ring = mm_to_voxels(RING_MM, self._spacing)
        if prompt.kind != "box":
            region = grow(prompt.region(), reach, shape)
            return region, region
        box = prompt.region()
        thin = [n for n, s in enumerate(box) if s.stop - s.start == 1]
        if thin:  # a 2D box: the object goes on through neighbouring slices, within the box's outline
            t = thin[0]
            region = tuple(grow(box, reach, shape)[n] if n == t else box[n] for n in range(3))
            return region, grow(region, tuple(0 if n == t else ring[n] for n in range(3)), shape)
        return box, grow(box, ring, shape)

    def _free_zone(self, prompt: Prompt, crop: Region, reach_mm: float, factors):
        """Work-grid blocks the prompt may change: within reach, or inside a box (its slab, for a 2D box);
        for a box also the exact voxels, as a box is a hard limit down to the voxel."""
        fine_shape = tuple(s.stop - s.start for s in crop)
        if prompt.kind == "box":
            region = self._regions(prompt, reach_mm)[0]
            exact = inside(tuple((s.start, s.stop) for s in region), crop, fine_shape)
            return reduce(exact, factors, np.max), exact
        drawn = np.zeros(fine_shape, bool)
        paint(drawn, prompt, crop)
        drawn = reduce(drawn, factors, np.max)
        spacing = np.multiply(self._spacing, factors)
        return ndi.distance_transform_edt(~drawn, sampling=spacing) <= reach_mm, None


def _keep_supported(new: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Drop new foreground islands that touch neither a positive seed nor the current mask."""
    lab, n = ndi.label(new)
    if n == 0:
        return new
    keep = np.unique(lab[support & new])
    return np.isin(lab, keep[keep > 0])
