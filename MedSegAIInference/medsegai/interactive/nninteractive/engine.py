"""nnInteractive checkpoints as an interactive engine (see ``..engine``): the prompts so far and the
session's mask in, the changed region of the mask out.

One prediction, as nnInteractive 2.6.0 makes it: the network sees a patch around the new prompt
(a point at zoom 1, a box or a mask at the zoom that fits it); while the prediction changes at the
patch's border, AutoZoom widens the window by 1.5 (at most 4 patches) and predicts again on the
window resized to a patch; if it zoomed out, the change is refined in patch-sized boxes at full
resolution. The engine holds no mask: the previous-mask channel is the mask the session passes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ...errors import InvalidImageError
from ...inference.device import autocast, check_precision, configure_threads, empty_cache, select_device
from ...io.image import Image
from ..engine import Prompt, Region, Update
from ..errors import InteractiveError
from . import refine as refinement
from .autozoom import MAX_ZOOM, ZOOM_STEP, border_changed, network_input
from .model_folder import NNInteractiveModel, load_model_folder
from .normalization import NormalizedImage, nonzero_box
from .prompts import Focus, PromptChannels, focus_for_extent

# The refinement planner falls back to random centres for what its grid misses; nnInteractive
# draws them from numpy's global generator. A fixed seed per prediction keeps the engine
# deterministic (a replayed prompt list predicts the same), and equals nnInteractive's draws
# after ``np.random.seed(PLANNER_SEED)``.
PLANNER_SEED = 0


@dataclass
class PredictionStats:
    """What the last prediction did, for the UI's status line and for tests."""
    zoom: float = 1.0
    forward_passes: int = 0
    refinement_boxes: int = 0
    seconds: float = 0.0


class NNInteractiveEngine:
    name = "nninteractive"

    def __init__(self, model_folder, device: str = "auto", threads: Optional[int] = None, *,
                 precision: str = "auto", autozoom: bool = True):
        self.device = select_device(device)
        check_precision(self.device, precision)
        configure_threads(threads)
        self.precision = precision
        self.autozoom = autozoom
        self.model: NNInteractiveModel = load_model_folder(Path(model_folder), check=False)
        self.network = self.model.build_network(self.device)  # checks the checkpoint against the plans
        self.model.state_dict = {}  # the network holds the weights now
        self.patch_size: Tuple[int, int, int] = self.model.patch_size
        self.last = PredictionStats()
        self._image: Optional[NormalizedImage] = None
        self._channels: Optional[PromptChannels] = None
        self._encoded: Tuple[Prompt, ...] = ()  # the prompts the channels hold, in order

    # -- what the UI shows ----------------------------------------------------------------------
    @property
    def license(self) -> Optional[str]:
        return self.model.license

    @property
    def license_text(self) -> Optional[str]:
        return self.model.license_text

    def state_bytes(self) -> int:
        """What the engine holds for the image besides the network and a reference to the caller's
        array: the encoded prompts (nnInteractive keeps 18 bytes per voxel: 1.4 GB at 512x512x300)."""
        return 0 if self._channels is None else self._channels.nbytes

    # -- the Engine protocol --------------------------------------------------------------------
    def set_image(self, image: Image) -> None:
        """Keeps a reference to ``image.array``, not a copy (crops are normalised when a patch needs
        them): the array must not change until the next set_image."""
        array = image.array if isinstance(image, Image) else np.asarray(image)
        if self.model.image_channels != 1:
            raise InvalidImageError(f"This nnInteractive model needs {self.model.image_channels} image channels.")
        self._image = NormalizedImage(array)
        self._channels = PromptChannels(self.model.capability, self._image.shape)
        self._encoded = ()

    def sync(self, prompts: Sequence[Prompt], mask: np.ndarray) -> None:
        self._need_image()
        self._encoded = ()
        self._channels.reset()
        # A mask prompt starts afresh (nnInteractive's initial segmentation resets every prompt channel);
        # the mask itself needs no encoding: it is the previous-mask channel, passed with each predict.
        for p in prompts[_after_last_mask(prompts):]:
            self._channels.add(p, self.patch_size)
        self._encoded = tuple(prompts)

    def predict(self, prompts: Sequence[Prompt], mask: np.ndarray) -> Update:
        self._need_image()
        if not prompts:
            raise ValueError("predict needs at least one prompt (the new one last)")
        mask = self._check_mask(mask)
        earlier, new = tuple(prompts[:-1]), prompts[-1]
        if len(earlier) != len(self._encoded) or any(a is not b for a, b in zip(earlier, self._encoded)):
            self.sync(earlier, mask)  # the session skipped a sync: rebuild rather than mix prompts up
        self.last = PredictionStats()
        started = time.perf_counter()
        self._encoded = ()  # until the prediction has succeeded
        if new.kind == "mask":
            update = self._predict_initial_mask(new, mask)
        else:
            focus = self._channels.add(new, self.patch_size)
            update = self._run(focus, mask, full=False) if focus is not None else _empty_update()
        self._encoded = earlier + (new,)
        self.last.seconds = time.perf_counter() - started
        return update

    def close(self) -> None:
        self.network = None
        self._image = self._channels = None
        self._encoded = ()  # drops the references to the prompts
        empty_cache(self.device)

    # -- internals ------------------------------------------------------------------------------
    def _need_image(self) -> None:
        if self._image is None:
            raise RuntimeError("set_image first")
        if self.network is None:
            raise RuntimeError("the engine is closed")

    def _check_mask(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.shape != self._image.shape:
            raise ValueError(f"mask shape {mask.shape} does not match the image {self._image.shape}")
        return mask if mask.dtype == np.uint8 else (mask != 0).astype(np.uint8)

    def _predict_initial_mask(self, prompt: Prompt, old_mask: np.ndarray) -> Update:
        """An existing segment to start from: all prompts are forgotten and the whole segment refined."""
        if not self.model.capability.supports_initial_label:
            raise InteractiveError("This nnInteractive model cannot start from an existing mask.")
        self._channels.reset()
        initial = np.zeros(self._image.shape, dtype=np.uint8)
        initial[prompt.region()] = prompt.mask != 0
        box = nonzero_box(initial)
        refined = None if box is None else self._run(focus_for_extent(box, self.patch_size), initial, full=True)
        # The session's mask becomes the initial mask plus the refinement, wherever either differs from it.
        region = refinement.union(None if refined is None else _box(refined.region), nonzero_box(old_mask),
                                  _box(prompt.region()))
        if region is None:
            return _empty_update()
        values = initial[refinement.box_slices(region)].copy()
        if refined is not None and _box(refined.region) is not None:
            values[_local(refined.region, region)] = refined.values
        return Update(_region(region), values)

    @torch.inference_mode()
    def _run(self, focus: Focus, prev_seg: np.ndarray, full: bool) -> Update:
        stats = self.last = PredictionStats()
        patch, image, channels = self.patch_size, self._image, self._channels
        zoom = min(MAX_ZOOM, focus.zoom)
        with autocast(self.device, self.precision):
            inp, win, previous = network_input(image, channels, prev_seg, focus.center, zoom, patch, self.device)
            pred = self._forward(inp)
            changed = border_changed(pred, previous)
            while changed and self.autozoom and zoom < MAX_ZOOM:
                zoom = min(MAX_ZOOM, zoom * ZOOM_STEP)
                inp, win, previous = network_input(image, channels, prev_seg, focus.center, zoom, patch, self.device)
                pred = self._forward(inp)
                changed = border_changed(pred, previous)
            del inp, previous
            stats.zoom = zoom
            if zoom == 1:
                inside = refinement.clip(win.box, image.shape)
                values = pred[win.interior(image.shape)].to(torch.uint8).cpu().numpy()
                return Update(_region(inside), values)
            coarse = refinement.upsample_coarse(pred, win.size)
            boxes = refinement.plan(coarse, win.box, prev_seg, focus.center, patch, full,
                                    np.random.RandomState(PLANNER_SEED))
            stats.refinement_boxes = len(boxes)
            inside, values = refinement.refine(boxes, coarse, win.box, image, channels, prev_seg, self._forward,
                                               self.device)
        empty_cache(self.device)
        return Update(_region(inside), values)

    def _forward(self, inp: torch.Tensor) -> torch.Tensor:
        self.last.forward_passes += 1
        return self.network(inp[None].contiguous())[0].argmax(0)


def _after_last_mask(prompts: Sequence[Prompt]) -> int:
    """Index of the first prompt after the last mask prompt (which resets everything before it)."""
    for i in range(len(prompts) - 1, -1, -1):
        if prompts[i].kind == "mask":
            return i + 1
    return 0


def _region(box) -> Region:
    if box is None:
        return (slice(0, 0),) * 3
    return tuple(slice(int(a), int(b)) for a, b in box)


def _box(region: Region) -> Optional[List[List[int]]]:
    box = [[s.start, s.stop] for s in region]
    return None if any(b <= a for a, b in box) else box


def _local(region: Region, outer) -> Tuple[slice, ...]:
    return tuple(slice(s.start - a, s.stop - a) for s, (a, _) in zip(region, outer))


def _empty_update() -> Update:
    return Update((slice(0, 0),) * 3, np.zeros((0, 0, 0), dtype=np.uint8))
