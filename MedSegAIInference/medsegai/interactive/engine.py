"""What an interactive engine is, seen from :class:`~medsegai.interactive.session.InteractiveSession`.

The session owns the mask, the prompt history and undo/redo; an engine turns "the prompts so far
and the current mask" into new mask values in a region. Engines: nnInteractive checkpoints
(``nninteractive``), MedSegAI's own click model (``clicks``), a classical one that needs no
network (``classical``). Coordinates are voxel indices of ``medsegai.Image.array`` ([k, j, i]).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence, Tuple

import numpy as np

from ..io.image import Image

Region = Tuple[slice, slice, slice]  # half-open, (k, j, i)
KINDS = ("point", "box", "scribble", "lasso", "mask")


@dataclass(frozen=True, eq=False)
class Prompt:
    """One user interaction, checked against the image by the session before an engine sees it.

    point: ``point`` (k, j, i). box: ``box`` ((k0, k1), (j0, j1), (i0, i1)), half-open; an axis of
    length 1 is a 2D box on that slice. scribble / lasso / mask: ``mask`` (uint8, 0/1) placed at
    ``offset`` in the image (a crop, or the whole grid with offset 0); a lasso lies on one slice.
    ``mask`` as a kind is an existing segment to start from (``set_mask`` and ``add_text``).
    """
    kind: str
    positive: bool = True
    point: Optional[Tuple[int, int, int]] = None
    box: Optional[Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]] = None
    mask: Optional[np.ndarray] = None
    offset: Tuple[int, int, int] = (0, 0, 0)

    def region(self) -> Region:
        """The voxels the prompt itself covers."""
        if self.kind == "point":
            return tuple(slice(c, c + 1) for c in self.point)
        if self.kind == "box":
            return tuple(slice(a, b) for a, b in self.box)
        return tuple(slice(o, o + s) for o, s in zip(self.offset, self.mask.shape))


@dataclass
class Update:
    """New mask values (uint8 0/1) in ``region`` of the session's mask; outside it nothing changes."""
    region: Region
    values: np.ndarray


class Engine(Protocol):
    name: str

    def set_image(self, image: Image) -> None:
        """A new image (validated 3D, finite); forget every prompt."""

    def predict(self, prompts: Sequence[Prompt], mask: np.ndarray) -> Update:
        """The mask after the last of ``prompts`` (the earlier ones are already in ``mask``)."""

    def sync(self, prompts: Sequence[Prompt], mask: np.ndarray) -> None:
        """After undo, redo, reset or set_mask: the prompts and mask are now these (no prediction)."""

    def close(self) -> None:
        """Free what the engine holds (network, image, prompt channels)."""
