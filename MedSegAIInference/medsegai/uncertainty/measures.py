"""Voxel-wise uncertainty measures on class probabilities, computed a slab or a class chunk at a time.

Everything here works on parts of the data so that no caller ever needs all class probabilities
of a full-size CT at float32 at once (see ``run.py`` for how the parts are streamed).
"""
from __future__ import annotations

import math

import torch

from ..inference.probabilities import softmax_slabs_  # noqa: F401 - part of the measures' API


def entropy_terms(probs: torch.Tensor) -> torch.Tensor:
    """-sum_c p_c log p_c over the classes in this chunk (C, ...) -> (...), float32; 0 log 0 = 0.

    Entropy is a sum over classes, so chunks of classes can be added up one after the other.
    """
    p = probs.float().clamp_min(0.0)
    return -(torch.special.xlogy(p, p)).sum(0)


def normalise_entropy(entropy: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Entropy in nats -> 0..1 (1 = uniform over all classes)."""
    if num_classes < 2:
        return torch.zeros_like(entropy)
    return (entropy / math.log(num_classes)).clamp_(0.0, 1.0)


def max_total_variance(num_classes: int, passes: int) -> float:
    """Largest possible sum over classes of the across-pass variance of p_c.

    sum_c Var_i(p_ic) = mean_i |p_i|^2 - |mean_i p_i|^2 <= 1 - 1/min(K, N): every pass one-hot on
    a different class (|p_i|^2 = 1, the mean spread evenly over min(K, N) classes).
    """
    m = min(int(num_classes), int(passes))
    return 1.0 - 1.0 / m if m >= 2 else 0.0


def normalised_total_variance(mean_sq_norm: torch.Tensor, mean_probs_sq_norm: torch.Tensor, num_classes: int,
                              passes: int) -> torch.Tensor:
    """(mean_i |p_i|^2 - |p_mean|^2) / its maximum, clipped to 0..1 (fp rounding can go below 0)."""
    top = max_total_variance(num_classes, passes)
    if top <= 0:
        return torch.zeros_like(mean_sq_norm)
    return ((mean_sq_norm - mean_probs_sq_norm) / top).clamp_(0.0, 1.0)
