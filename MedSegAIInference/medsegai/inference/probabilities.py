"""Collecting full-resolution class probabilities from the chunked export (opt-in: they are large)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from .crop import paste


def softmax_slabs_(scores: torch.Tensor, slab: int = 8) -> torch.Tensor:
    """In-place softmax over axis 0 of (K, X, Y, Z) scores, ``slab`` X-slices at a time.

    The fp32 working copy is one slab, not the whole tensor; the result keeps the input dtype.
    """
    for x0 in range(0, scores.shape[1], slab):
        part = scores[:, x0:x0 + slab].float()
        scores[:, x0:x0 + slab] = torch.softmax(part, 0).to(scores.dtype)
    return scores


class ProbabilitySink:
    """Receives score chunks (classes, grid) and turns them into fp16 softmax probabilities."""

    def __init__(self, num_classes: int, work_shape: Tuple[int, ...]):
        self.num_classes = num_classes
        self.work_shape = work_shape
        self.scores: Optional[torch.Tensor] = None

    def reset(self) -> None:
        self.scores = None

    def add(self, class_indices: Sequence[int], chunk: torch.Tensor) -> None:
        if self.scores is None:
            self.scores = torch.empty((self.num_classes, *chunk.shape[1:]), dtype=torch.float16)
        self.scores[class_indices[0]:class_indices[-1] + 1] = chunk.to(torch.float16)

    def finish(self, grid, image_shape: Tuple[int, ...], box=None) -> np.ndarray:
        probs = softmax_slabs_(self.scores).numpy()
        mapped = np.stack([grid.to_input(p) for p in probs])
        self.scores = None
        # outside the cropped region everything is background
        return paste(mapped, box, image_shape, fill=[1.0] + [0.0] * (self.num_classes - 1), leading=1)
