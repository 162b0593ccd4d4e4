"""Running statistics over passes on the network grid: memory independent of the number of passes.

Per voxel we keep the mean class probabilities (fp16, one score-sized array) and the mean
squared norm of each pass's probability vector (fp32, one scalar per voxel). Their difference
is the total variance of the probabilities across passes (see ``measures.py``).
"""
from __future__ import annotations

from typing import Optional

import torch

from .measures import normalised_total_variance, softmax_slabs_

SLAB = 8  # X-slices per fp32 working copy


class PassAccumulator:
    def __init__(self, num_passes: int, keep_logit_sum: bool = False):
        self.num_passes = num_passes
        self.seen = 0
        self.mean_probs: Optional[torch.Tensor] = None  # (K, X, Y, Z) fp16
        self.mean_sq_norm: Optional[torch.Tensor] = None  # (X, Y, Z) fp32
        self.keep_logit_sum = keep_logit_sum
        self.logit_sum: Optional[torch.Tensor] = None  # fp16, summed in pass order like predict_logits

    def add(self, scores: torch.Tensor) -> None:
        """Consume one pass's class scores (fp16 logits); the tensor is overwritten (softmax in place)."""
        if self.keep_logit_sum:
            self.logit_sum = scores.clone() if self.logit_sum is None else self.logit_sum.add_(scores)
        probs = softmax_slabs_(scores, SLAB)
        if self.mean_probs is None:
            self.mean_probs = torch.zeros_like(probs, dtype=torch.float16)
            self.mean_sq_norm = torch.zeros(probs.shape[1:], dtype=torch.float32)
        w = 1.0 / self.num_passes
        for x0 in range(0, probs.shape[1], SLAB):
            p = probs[:, x0:x0 + SLAB].float()
            m = self.mean_probs[:, x0:x0 + SLAB]
            m.copy_((m.float() + p * w).to(torch.float16))
            self.mean_sq_norm[x0:x0 + SLAB] += (p * p).sum(0) * w
        self.seen += 1

    def logit_mean(self) -> torch.Tensor:
        """The folds' logits averaged as nnU-Net's predictor does (fp16 sum, then one division)."""
        self.logit_sum /= self.seen
        out, self.logit_sum = self.logit_sum, None
        return out

    def spread(self) -> torch.Tensor:
        """Normalised total variance across passes, 0..1, (X, Y, Z) fp32 on the network grid."""
        if self.seen != self.num_passes:
            raise RuntimeError(f"{self.seen} of {self.num_passes} passes were accumulated")
        out = torch.empty_like(self.mean_sq_norm)
        k = self.mean_probs.shape[0]
        for x0 in range(0, out.shape[0], SLAB):
            m = self.mean_probs[:, x0:x0 + SLAB].float()
            out[x0:x0 + SLAB] = normalised_total_variance(self.mean_sq_norm[x0:x0 + SLAB], (m * m).sum(0), k,
                                                          self.num_passes)
        return out
