"""Uncertainty measures and per-segment confidence: exact values on constructed inputs."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "MedSegAIInference"))

from medsegai.uncertainty.accumulate import PassAccumulator  # noqa: E402
from medsegai.uncertainty.confidence import (SoftDiceSums, flag_segments, least_confident, mean_inside,  # noqa: E402
                                             segment_confidence)
from medsegai.uncertainty.measures import (entropy_terms, max_total_variance, normalise_entropy,  # noqa: E402
                                           softmax_slabs_)
from medsegai.uncertainty.memory import check_memory, estimate_bytes  # noqa: E402
from medsegai.uncertainty.errors import UncertaintyMemoryError  # noqa: E402


def test_entropy_is_zero_for_certain_and_one_for_uniform_scores():
    k = 5
    scores = torch.zeros((k, 4, 3, 2), dtype=torch.float16)
    scores[:, :2] = 0.0  # uniform over all classes
    scores[2, 2:] = 60.0  # one class far ahead: probability 1 in fp16
    probs = softmax_slabs_(scores.clone(), slab=1)
    ent = normalise_entropy(entropy_terms(probs), k)
    np.testing.assert_allclose(ent[:2].numpy(), 1.0, atol=2e-3)
    np.testing.assert_allclose(ent[2:].numpy(), 0.0, atol=1e-6)
    # Chunks of classes add up to the whole entropy (what the streaming export relies on).
    whole = entropy_terms(probs)
    parts = entropy_terms(probs[:2]) + entropy_terms(probs[2:])
    torch.testing.assert_close(whole, parts)
    # Two equally likely classes out of 4: log 2 / log 4 = 0.5.
    p = torch.tensor([0.5, 0.5, 0.0, 0.0]).reshape(4, 1)
    assert normalise_entropy(entropy_terms(p), 4).item() == pytest.approx(0.5)


def test_softmax_in_slabs_equals_softmax_of_everything():
    g = torch.Generator().manual_seed(0)
    scores = (torch.randn((7, 9, 5, 4), generator=g) * 4).half()
    expected = torch.softmax(scores.float(), 0).half()
    torch.testing.assert_close(softmax_slabs_(scores.clone(), slab=2), expected, atol=1e-3, rtol=0)


def _one_hot(cls_per_voxel, k):
    arr = np.asarray(cls_per_voxel)
    out = np.zeros((k, *arr.shape), np.float32)
    for c in range(k):
        out[c][arr == c] = 40.0
    return torch.from_numpy(out).half()


def test_spread_is_zero_for_identical_passes_and_one_for_disjoint_certain_passes():
    k, n = 3, 3
    acc = PassAccumulator(n)
    for _ in range(n):
        acc.add(_one_hot([[[1, 2], [0, 1]]], k))
    np.testing.assert_allclose(acc.spread().numpy(), 0.0, atol=1e-3)
    acc = PassAccumulator(n)
    for c in range(n):  # every pass certain of a different class: the largest possible spread
        acc.add(_one_hot([[[c, c], [c, 1]]], k))
    s = acc.spread().numpy()
    np.testing.assert_allclose(s[0, 0], 1.0, atol=2e-3)
    np.testing.assert_allclose(s[0, 1, 1], 0.0, atol=1e-3)
    # Two of three passes agree: variance of (1,1,0) and (0,0,1) -> 2 * 2/9 = 4/9, max 1 - 1/3.
    acc = PassAccumulator(3)
    for c in (0, 0, 1):
        acc.add(_one_hot([[[c]]], k))
    assert acc.spread().item() == pytest.approx((4 / 9) / max_total_variance(3, 3), abs=3e-3)


def test_accumulator_memory_does_not_grow_with_passes():
    def held(acc):
        return sum(t.numel() * t.element_size() for t in (acc.mean_probs, acc.mean_sq_norm))

    sizes = []
    for n in (2, 6):
        acc = PassAccumulator(n)
        for i in range(n):
            acc.add(_one_hot(np.full((4, 4, 4), i % 3), 3))
        sizes.append(held(acc))
    assert sizes[0] == sizes[1] == 3 * 64 * 2 + 64 * 4
    assert estimate_bytes(10, (50, 60, 70), 10**6, True, False) == estimate_bytes(10, (50, 60, 70), 10**6, True, False)


def test_logit_mean_is_nnunets_fold_average():
    g = torch.Generator().manual_seed(1)
    folds = [(torch.randn((3, 4, 4, 4), generator=g) * 3).half() for _ in range(3)]
    expected = folds[0].clone()
    for f in folds[1:]:
        expected.add_(f)
    expected /= 3
    acc = PassAccumulator(3, keep_logit_sum=True)
    for f in folds:
        acc.add(f.clone())
    assert torch.equal(acc.logit_mean(), expected)


def test_soft_dice_confidence_values():
    labels = np.array([[[0, 1, 1, 2]]], np.uint8)
    sums = SoftDiceSums(labels, 3)
    probs = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]], [[[0.0, 1.0, 1.0, 0.0]]], [[[0.0, 0.0, 0.0, 1.0]]]])
    sums.add([0, 1], probs[:2])
    sums.add([2], probs[2:])
    np.testing.assert_allclose(sums.soft_dice(), [1.0, 1.0, 1.0])
    sums = SoftDiceSums(labels, 3)
    half = torch.tensor([[[[1.0, 0.5, 0.5, 0.5]]], [[[0.0, 0.5, 0.5, 0.0]]], [[[0.0, 0.0, 0.0, 0.5]]]])
    sums.add([0, 1, 2], half)
    sdc = sums.soft_dice()
    assert sdc[1] == pytest.approx(2 * 1.0 / (2 + 1.0))  # 2 * 0.5*2 / (2 voxels + 1.0)
    assert sdc[2] == pytest.approx(2 * 0.5 / (1 + 0.5))


def test_segment_confidence_flags_and_least_confident():
    names = {0: "background", 1: "liver", 2: "spleen", 3: "pancreas"}
    sdc = np.array([1.0, 0.95, 0.6, np.nan])
    unc = mean_inside(np.array([0, 1, 1, 2, 2]), np.array([0.0, 0.1, 0.3, 0.5, 0.7]), 4)
    np.testing.assert_allclose(unc[:3], [0.0, 0.2, 0.6])
    assert math.isnan(unc[3])
    conf = segment_confidence(names, sdc, unc, np.array([1, 2, 2, 0]), threshold=0.8)
    assert set(conf) == {"liver", "spleen"}  # absent pancreas and background are not segments
    assert conf["liver"]["flagged"] == 0 and conf["spleen"]["flagged"] == 1
    assert least_confident(conf) == "spleen"
    assert flag_segments(conf, 0.5)["spleen"]["flagged"] == 0
    with pytest.raises(ValueError):
        flag_segments(conf, 1.5)


def test_memory_check_refuses_with_a_clear_message():
    need = estimate_bytes(118, (300, 300, 300), 512 * 512 * 300, True, False)
    with pytest.raises(UncertaintyMemoryError, match=r"needs about .* GiB .* only .* GiB"):
        check_memory("tta", need, available=need // 2)
    check_memory("tta", need, available=need * 2)  # enough: no error
