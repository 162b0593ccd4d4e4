"""The ``"clicks"`` interactive engine: MedSegAI's own click model on a crop around each prompt.

Per prompt: choose a crop (:meth:`ClickModelEngine.grid_for`), encode the image, the current mask
and every prompt since the last ``mask`` prompt on it (nnInteractive's 8 channels,
:mod:`.encoding`), one forward pass, paste the object's logits back onto the image voxels the crop
covers (linear interpolation, threshold 0) and return them as the update: nothing outside the
crop changes. Cost and memory are bounded by the crop (32^3 network voxels; the image region it
covers is at most ``max_zoom`` x the base field of view), not by the image size.

Crop choice: a first prompt with no mask yet gets the base field of view (32 voxels of 3 mm =
9.6 cm) centred on the prompt; a box, lasso or scribble, or a mask that already exists, gets a
field of view of ``fit_margin`` x the extent of mask + prompt (isotropic, at least the base, at
most ``max_zoom`` x the base: 5 x 9.6 = 48 cm) centred on them. When the prediction reaches the crop's
border (more than 2 % of a face), the crop widens by ``zoom_step`` and the pass is repeated (at
most twice): a liver on a 512^2 CT is found by zooming out, not by a larger network input.

Stateless between calls: every prediction reads the prompts and the mask it is given, so
``sync`` after undo/redo only records them and a replay gives bit-identical results.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ...errors import InvalidModelError
from ...inference.device import configure_threads, select_device
from ...io.image import Image
from ...resources import resource_path
from ..engine import Prompt, Update
from . import encoding as enc
from . import model_folder as mf
from .grid import CropGrid

MODEL_ID = "medsegai_clicks"
BORDER_FRACTION = 0.02
MAX_WIDENINGS = 2


def shipped_model_folder() -> Path:
    return resource_path("Models", MODEL_ID)


def _since_last_mask(prompts: Sequence[Prompt]) -> list:
    idx = max((n for n, p in enumerate(prompts) if p.kind == "mask"), default=-1)
    return list(prompts[idx + 1:])


def _bbox(mask: np.ndarray):
    """(lo, hi) voxel bounds of the non-zero voxels (hi exclusive), or None."""
    lo, hi = [], []
    for axis in range(3):
        any_ = mask.any(axis=tuple(a for a in range(3) if a != axis))
        idx = np.flatnonzero(any_)
        if idx.size == 0:
            return None
        lo.append(int(idx[0]))
        hi.append(int(idx[-1]) + 1)
    return np.array(lo), np.array(hi)


class ClickModelEngine:
    name = "clicks"

    def __init__(self, model_folder=None, device: str = "auto", threads: Optional[int] = None,
                 modality: Optional[str] = None):
        folder = Path(model_folder) if model_folder is not None else shipped_model_folder()
        if not folder.is_dir():
            raise InvalidModelError(f"The click model folder {folder} does not exist.")
        self.folder = folder
        self.cfg, net = mf.load(folder)
        self.device = select_device(device)
        if self.device.type == "cpu":
            configure_threads(threads if threads is not None else 2)
        elif threads is not None:
            configure_threads(threads)
        self.net = net.to(self.device)
        self.size = tuple(int(n) for n in self.cfg["crop_size"])
        self.base = float(self.cfg["base_spacing_mm"])
        self.max_zoom = float(self.cfg["max_zoom"])
        self.zoom_step = float(self.cfg["zoom_step"])
        self.fit_margin = float(self.cfg["fit_margin"])
        self.point_radius = float(self.cfg["point_radius"])
        if modality not in (None, "CT", "MR"):
            raise ValueError(f"modality must be None, 'CT' or 'MR', got {modality!r}")
        self.modality = modality
        self._array: Optional[np.ndarray] = None
        self._spacing = (1.0, 1.0, 1.0)
        self._ct = True
        self._prompts: list = []
        self.last_passes = 0  # forward passes of the last prediction (1, or more when it widened)

    # -- Engine protocol ------------------------------------------------------------------------
    def set_image(self, image: Image) -> None:
        self._array = image.array
        self._spacing = tuple(float(s) for s in image.spacing[::-1])
        self._ct = enc.is_ct(image.array) if self.modality is None else self.modality == "CT"
        self._prompts = []

    def sync(self, prompts: Sequence[Prompt], mask: np.ndarray) -> None:
        self._prompts = list(prompts)

    def close(self) -> None:
        self._array = None
        self.net = None
        self._prompts = []
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def predict(self, prompts: Sequence[Prompt], mask: np.ndarray) -> Update:
        if self._array is None:
            raise RuntimeError("set_image first")
        if self.net is None:
            raise RuntimeError("the engine is closed")
        self._prompts = list(prompts)
        last = prompts[-1]
        if last.kind == "mask":  # an existing segment to edit: taken as it is, no network
            region = last.region()
            values = last.mask.astype(np.uint8) if last.positive else (mask[region] & ~last.mask.astype(bool)).astype(np.uint8)
            return Update(region, values)
        active = _since_last_mask(prompts)
        grid = self.grid_for(last, mask)
        for n in range(MAX_WIDENINGS + 1):
            logits = self._forward(grid, active, mask)
            self.last_passes = n + 1
            zoom = grid.step[0] * self._spacing[0] / self.base
            if n == MAX_WIDENINGS or zoom >= self.max_zoom - 1e-6 or not self._touches_border(logits > 0):
                break
            grid = CropGrid.around(grid.center, min(self.base * self.max_zoom, grid.step[0] * self._spacing[0] * self.zoom_step),
                                   self.size, self._spacing, self._array.shape)
        region = grid.region()
        values = (grid.paste(logits, region) > 0).astype(np.uint8)
        if last.kind == "box" and last.positive:
            values = self._inside_box(values, region, last.box, mask)
        return Update(region, values)

    # -- pieces ---------------------------------------------------------------------------------
    def grid_for(self, prompt: Prompt, mask: np.ndarray) -> CropGrid:
        shape = self._array.shape
        sp = np.array(self._spacing)
        region = prompt.region()
        plo = np.array([s.start for s in region])
        phi = np.array([s.stop for s in region])
        box = _bbox(mask) if mask is not None else None
        base_fov = self.base * self.size[0]
        if prompt.kind == "point" and box is None:
            return CropGrid.around(tuple(float(c) for c in prompt.point), self.base, self.size, sp, shape)
        lo, hi = (plo, phi) if box is None else (np.minimum(plo, box[0]), np.maximum(phi, box[1]))
        extent_mm = (hi - lo) * sp
        fov = min(max(base_fov, float(extent_mm.max()) * self.fit_margin + 10.0), base_fov * self.max_zoom)
        center = (lo + hi - 1) / 2.0
        # A mask larger than the widest crop: centre on the prompt instead, so it is edited where it is.
        half = fov / 2.0 / sp
        pc = (plo + phi - 1) / 2.0
        center = np.clip(center, pc - half * 0.8, pc + half * 0.8)
        return CropGrid.around(tuple(center), fov / self.size[0], self.size, sp, shape)

    def _forward(self, grid: CropGrid, prompts: Sequence[Prompt], mask: np.ndarray) -> np.ndarray:
        x = enc.encode(grid, self._array, self._ct, prompts, mask, self.point_radius)
        with torch.inference_mode():
            out = self.net(torch.from_numpy(x)[None].to(self.device)).float()
        out = out[0, 1] - out[0, 0]
        return out.cpu().numpy()

    @staticmethod
    def _inside_box(values: np.ndarray, region, box, mask: np.ndarray) -> np.ndarray:
        """A positive box says where the object is: new foreground outside it is dropped (the old mask
        stays there). A 2D box (one axis of length 1) constrains its own slice only."""
        flat = [n for n, (a, b) in enumerate(box) if b - a == 1]
        keep = np.zeros(values.shape, bool)
        sl = []
        for axis, ((a, b), r) in enumerate(zip(box, region)):
            lo, hi = max(a, r.start) - r.start, max(min(b, r.stop) - r.start, 0)
            sl.append(slice(lo, max(lo, hi)))
        if flat:
            keep[:] = True
            axis = flat[0]
            plane = [slice(None)] * 3
            plane[axis] = sl[axis]
            keep[tuple(plane)] = False  # the box's slice: only inside the rectangle
            keep[tuple(sl)] = True
        else:
            keep[tuple(sl)] = True
        old = mask[region].astype(np.uint8)
        return np.where(keep, values, old).astype(np.uint8)

    def _touches_border(self, fg: np.ndarray) -> bool:
        faces = (fg[0], fg[-1], fg[:, 0], fg[:, -1], fg[:, :, 0], fg[:, :, -1])
        return any(f.mean() > BORDER_FRACTION for f in faces)
