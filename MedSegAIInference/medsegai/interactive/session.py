"""``InteractiveSession``: one image, one mask, the prompts that made it, and undo/redo over all of them.

The session owns the mask; an engine only proposes new values in a region. Each history step keeps
the prompt and the old and new values of the voxels it changed (their tight bounding box), so undo
restores exactly those voxels, redo puts back exactly what the engine produced (nothing is
recomputed), and the memory of a long session grows with what the prompts changed, not with the
image. Every input is checked before anything changes: a refused prompt leaves mask, history and
engine as they were.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np

from ..io.image import Image, validate_image
from . import registry
from .engine import Prompt, Region, Update
from .errors import InteractiveError
from .prompts import (EMPTY_REGION, _placed, bounding_box, full_mask, make_box, make_drawn, make_point, mask_prompt,
                      region_is_empty)

ImageLike = Union[Image, str, os.PathLike]


@dataclass
class _Step:
    prompt: Prompt
    region: Region  # the voxels this step changed (tight box; empty when it changed none)
    old: np.ndarray
    new: np.ndarray


class InteractiveSession:
    """``InteractiveSession(engine="auto", model=None, device="auto", threads=None)``.

    Coordinates are voxel indices of the image array, order (k, j, i). Every ``add_*``,
    ``set_mask``, ``undo``, ``redo`` and ``reset`` returns the region of :attr:`mask` it changed, a
    tuple of 3 slices (empty slices when nothing changed), so a viewer redraws only that part.
    """

    def __init__(self, engine: str = "auto", model=None, device: str = "auto", threads: Optional[int] = None):
        self.engine, self.engine_note = registry.create(engine, model=model, device=device, threads=threads)
        self.device, self.threads = device, threads
        self.image: Optional[Image] = None
        self._mask: Optional[np.ndarray] = None
        self._undo: List[_Step] = []
        self._redo: List[_Step] = []
        self._text = None  # the structure-name segmenter, created on the first add_text and kept
        self.text_structures: List[str] = []  # the model's structures the last add_text segmented
        self.text_warnings: List[str] = []  # what that model said about its reliability on this image

    # -- state ----------------------------------------------------------------------------------------
    @property
    def mask(self) -> np.ndarray:
        """The current mask, uint8 0/1 on the image grid [k, j, i]; read-only (edit through prompts or set_mask)."""
        self._require_image()
        view = self._mask.view()
        view.flags.writeable = False
        return view

    @property
    def prompts(self) -> Tuple[Prompt, ...]:
        """The prompts that made the current mask, oldest first (undone ones excluded)."""
        return tuple(step.prompt for step in self._undo)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def history_nbytes(self) -> int:
        """Bytes the undo and redo history hold (changed regions and drawn strokes)."""
        def size(step: _Step) -> int:
            drawn = step.prompt.mask.nbytes if step.prompt.mask is not None else 0
            return step.old.nbytes + step.new.nbytes + drawn
        return sum(size(s) for s in self._undo + self._redo)

    # -- image ----------------------------------------------------------------------------------------
    def set_image(self, image: ImageLike) -> Region:
        """A new image (a medsegai.Image or a path medsegai can read); the mask starts empty, history cleared."""
        if isinstance(image, (str, os.PathLike)):
            from ..io.read import read_image

            image = read_image(image)
        elif not isinstance(image, Image):
            raise InteractiveError(f"set_image takes a medsegai.Image or a path, got {type(image).__name__} "
                                   "(a bare array has no voxel spacing; wrap it in medsegai.Image).")
        validate_image(image, name="The image")
        previous = self.image
        try:
            self.engine.set_image(image)
        except BaseException:
            if previous is not None:  # give the engine back the image and prompts the session still has
                self.engine.set_image(previous)
                self.engine.sync(self.prompts, self.mask)
            raise
        self.image = image
        self._mask = np.zeros(image.shape, np.uint8)
        self._undo.clear()
        self._redo.clear()
        self.text_structures = []
        return tuple(slice(0, n) for n in image.shape)

    def _require_image(self) -> Tuple[int, int, int]:
        if self.image is None:
            raise InteractiveError("No image yet: call set_image(image) before prompts or masks.")
        return self.image.shape

    # -- prompts --------------------------------------------------------------------------------------
    def add_point(self, point, positive: bool = True) -> Region:
        return self._predict(make_point(point, positive, self._require_image()))

    def add_box(self, box, positive: bool = True) -> Region:
        """((k0, k1), (j0, j1), (i0, i1)), half-open; one axis of length 1 is a 2D box on that slice."""
        return self._predict(make_box(box, positive, self._require_image()))

    def add_scribble(self, mask, positive: bool = True, offset=None) -> Region:
        """A uint8/bool 0/1 stroke on the image grid, or a crop of it placed at ``offset`` (k, j, i)."""
        return self._predict(make_drawn("scribble", mask, positive, self._require_image(), offset))

    def add_lasso(self, mask, positive: bool = True, offset=None) -> Region:
        """A filled polygon on one slice (any axis), same form as a scribble; an outline is filled."""
        return self._predict(make_drawn("lasso", mask, positive, self._require_image(), offset))

    def set_mask(self, existing) -> Region:
        """Start from an existing segment (uint8/bool 0/1 on the image grid, or an Image on it) and edit it."""
        shape = self._require_image()
        mask = full_mask(existing, shape, grid_check=self.image.same_grid)
        return self._replace(mask_prompt(mask), mask)

    def add_text(self, name: str, progress=None, cancel=None) -> Region:
        """Segment a structure by name (``"liver"``, ``"left kidney"``) with an auto-segmentation model;
        the result becomes the mask, undoable like set_mask, for clicks to refine. ``progress`` and
        ``cancel`` are passed to the model run (``medsegai.ProgressEvent``, ``medsegai.CancelToken``)."""
        self._require_image()
        if not isinstance(name, str):
            raise InteractiveError(f"A structure name is a string, got {type(name).__name__}.")
        if self._text is None:
            from .text_prompt import TextSegmenter

            self._text = TextSegmenter(device=self.device, threads=self.threads)
        found = self._text.segment(self.image, name, progress=progress, cancel=cancel)
        region = self._replace(mask_prompt(found.mask), found.mask)
        self.text_structures, self.text_warnings = found.names, found.warnings
        return region

    def amend(self, mask, offset=None, last_step: bool = False) -> Region:
        """Voxels the caller changed outside the session, so the mask says what its viewer shows.

        ``last_step=True``: the caller kept only part of what the last prompt proposed (Slicer's
        masking settings refused some voxels); the last step then records what was kept, so redo
        puts back exactly that, and ``mask`` must lie inside that step's region. Otherwise (the
        segment was edited elsewhere) no step is added: undo of an earlier prompt still restores
        exactly the voxels it changed. ``mask`` is the whole grid, or a crop placed at ``offset``."""
        shape = self._require_image()
        values, off = _placed(mask, shape, offset, "The amended mask")
        region = tuple(slice(o, o + n) for o, n in zip(off, values.shape))
        if region_is_empty(region):
            return EMPTY_REGION
        step = None
        if last_step:
            if not self._undo:
                raise InteractiveError("There is no prompt to amend: the history is empty.")
            step = self._undo[-1]
            if region_is_empty(step.region) or any(r.start < s.start or r.stop > s.stop
                                                   for r, s in zip(region, step.region)):
                raise InteractiveError(f"The amended region {_fmt_region(region)} is not inside what the last "
                                       f"prompt changed ({_fmt_region(step.region)}).")
        changed = bounding_box(self._mask[region] != values)
        if changed is None:
            return EMPTY_REGION
        if step is not None:
            step.new[tuple(slice(r.start - s.start, r.stop - s.start) for r, s in zip(region, step.region))] = values
        self._mask[region] = values
        self._sync()
        return tuple(slice(r.start + c.start, r.start + c.stop) for r, c in zip(region, changed))

    # -- history --------------------------------------------------------------------------------------
    def undo(self) -> Region:
        """Take back the last prompt: exactly the voxels it changed get their old values."""
        self._require_image()
        if not self._undo:
            return EMPTY_REGION
        step = self._undo.pop()
        self._mask[step.region] = step.old
        self._redo.append(step)
        self._sync()
        return step.region

    def redo(self) -> Region:
        """Put back what the last undone prompt produced (no recomputation)."""
        self._require_image()
        if not self._redo:
            return EMPTY_REGION
        step = self._redo.pop()
        self._mask[step.region] = step.new
        self._undo.append(step)
        self._sync()
        return step.region

    def reset(self) -> Region:
        """Empty mask, no prompts, no history (not undoable: it is a fresh start on the same image)."""
        self._require_image()
        region = bounding_box(self._mask) or EMPTY_REGION
        self._mask[...] = 0
        self._undo.clear()
        self._redo.clear()
        self._sync()
        return region

    def close(self) -> None:
        """Free the engine (network, prompt channels) and the structure-name model."""
        self.engine.close()
        self._text = None

    def __enter__(self) -> "InteractiveSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------------
    def _sync(self) -> None:
        self.engine.sync(self.prompts, self.mask)

    def _predict(self, prompt: Prompt) -> Region:
        try:
            update = self.engine.predict(self.prompts + (prompt,), self.mask)
            values = self._check_update(update)
        except BaseException:
            with contextlib.suppress(Exception):  # the engine's own failure is the one to report
                self._sync()  # an engine that recorded the prompt before failing forgets it again
            raise
        return self._commit(prompt, update.region, values)

    def _replace(self, prompt: Prompt, mask: np.ndarray) -> Region:
        region = self._commit(prompt, tuple(slice(0, n) for n in mask.shape), mask)
        self._sync()
        return region

    def _commit(self, prompt: Prompt, region: Region, values: np.ndarray) -> Region:
        old = self._mask[region]
        changed = bounding_box(old != values)
        if changed is None:
            self._undo.append(_Step(prompt, EMPTY_REGION, old[EMPTY_REGION].copy(), values[EMPTY_REGION].copy()))
            self._redo.clear()
            return EMPTY_REGION
        absolute = tuple(slice(r.start + c.start, r.start + c.stop) for r, c in zip(region, changed))
        step = _Step(prompt, absolute, old[changed].copy(), values[changed].copy())
        self._mask[absolute] = step.new
        self._undo.append(step)
        self._redo.clear()
        return absolute

    def _check_update(self, update: Update) -> np.ndarray:
        """An engine's proposal, checked: a bad one is a bug in that engine and must not reach the mask."""
        name = getattr(self.engine, "name", type(self.engine).__name__)
        region = tuple(update.region)
        shape = self._mask.shape
        if len(region) != 3 or any(not isinstance(s, slice) or s.step not in (None, 1) or s.start is None
                                   or s.stop is None or not 0 <= s.start <= s.stop <= n
                                   for s, n in zip(region, shape)):
            raise RuntimeError(f"engine {name!r} returned a region {update.region!r} outside the image {shape}")
        values = np.asarray(update.values)
        want = tuple(s.stop - s.start for s in region)
        if values.shape != want:
            raise RuntimeError(f"engine {name!r} returned values of shape {values.shape} for a region of {want}")
        if region_is_empty(region):
            return np.zeros(want, np.uint8)
        return (values > 0).astype(np.uint8) if values.dtype != np.uint8 or values.max() > 1 else values


def _fmt_region(region: Region) -> str:
    return "(" + ", ".join(f"{s.start}:{s.stop}" for s in region) + ")"
