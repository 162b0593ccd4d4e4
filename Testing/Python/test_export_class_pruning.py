"""Export skips classes that cannot win the argmax, and the labels stay exactly the same.

The reference is the same export with an ``on_chunk`` consumer, which resamples every class.
Scores mimic the bundled model (silent output heads with bias -1000) and the hard cases of the
proof: classes that lose to background only by a hair (must be kept: fp16 rounding could tie),
and classes that are below the maximum everywhere but not below one single class (must be kept:
interpolation between two winners can lift them to the top).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medsegai.inference.export import classes_that_can_win, scores_to_labels
from medsegai.inference.preprocess import CaseGeometry


def _geometry(low_shape, full_shape, model_spacing, spacing):
    return CaseGeometry(shape_before_crop=tuple(full_shape), bbox=[(0, s) for s in full_shape],
                        shape_after_crop=tuple(full_shape), spacing=tuple(spacing),
                        model_spacing=tuple(model_spacing), transpose_backward=(0, 1, 2))


def _scores(rng, low_shape, k=24):
    s = torch.from_numpy(rng.normal(0, 3, (k, *low_shape)).astype(np.float32))
    s[0] += 2.0
    s[5:15] = -1000 + torch.from_numpy(rng.normal(0, 1, (10, *low_shape)).astype(np.float32))  # silent heads
    s[15] = s[0] - 1e-4  # loses to background everywhere, but within fp16 rounding: must be kept
    # Class 16 is below class 1 on one half and below class 2 on the other, never below one class
    # everywhere: between the halves, interpolation can make it the maximum.
    half = low_shape[2] // 2
    s[16] = torch.maximum(s[1], s[2]) - 0.5
    s[1, :, :, :half] += 5
    s[2, :, :, half:] += 5
    return s


@pytest.mark.parametrize("aniso", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_pruned_export_gives_identical_labels(aniso, dtype):
    rng = np.random.default_rng(3)
    low = (6, 10, 12)
    full = (18, 25, 31) if not aniso else (6, 25, 31)
    geom = _geometry(low, full, (3.0, 2.0, 2.0), (1.0, 0.8, 0.8) if not aniso else (3.0, 0.8, 0.8))
    scores = _scores(rng, low).to(dtype)
    kept = classes_that_can_win(scores)
    assert not set(range(5, 15)) & set(kept), "silent heads were resampled"
    assert {0, 15, 16} <= set(kept)
    seen = []
    reference = scores_to_labels(scores, geom, {}, on_chunk=lambda idx, res: seen.extend(idx))
    assert seen == list(range(scores.shape[0]))  # the reference path resampled every class
    pruned = scores_to_labels(scores, geom, {})
    assert pruned.dtype == reference.dtype and pruned.shape == reference.shape
    np.testing.assert_array_equal(pruned, reference)
    assert len(np.unique(reference)) > 3  # a real label map, not all background


def test_all_classes_kept_when_none_is_dominated():
    rng = np.random.default_rng(0)
    s = torch.from_numpy(rng.normal(0, 1, (6, 5, 6, 7)).astype(np.float32))
    assert classes_that_can_win(s) == list(range(6))
