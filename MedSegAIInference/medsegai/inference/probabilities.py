"""Collecting full-resolution class probabilities from the chunked export (opt-in: they are large)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch


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

    def softmax_(self, slab: int = 8) -> torch.Tensor:
        """In-place softmax over classes, a few slices at a time so no fp32 copy of everything exists."""
        s = self.scores
        for z in range(0, s.shape[1], slab):
            part = s[:, z:z + slab].float()
            s[:, z:z + slab] = torch.softmax(part, 0).to(torch.float16)
        return s

    def finish(self, grid, image_shape: Tuple[int, ...], box=None) -> np.ndarray:
        probs = self.softmax_().numpy()
        out = np.zeros((self.num_classes, *image_shape), dtype=np.float16)
        if box is not None:
            out[0] = 1.0  # outside the cropped region everything is background
        target = (slice(None), *box) if box is not None else (slice(None),)
        mapped = np.stack([grid.to_input(p) for p in probs])
        out[target] = mapped
        self.scores = None
        return out
