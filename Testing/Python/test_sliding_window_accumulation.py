"""The tile scores are added into the fp16 sums one class at a time (memory and speed); every element
must get exactly the sum and the rounding of nnU-Net's single ``logits[:, sl] += p``. The export
shortcuts must give the labels of the general path."""
from __future__ import annotations

import numpy as np
import torch


def test_adding_class_by_class_is_bitwise_the_single_add():
    from medsegai.inference.sliding_window import _add_class_by_class

    g = torch.Generator().manual_seed(0)
    acc = (torch.randn((37, 20, 18, 16), generator=g) * 50).half()
    p = torch.randn((37, 12, 10, 9), generator=g) * torch.logspace(-3, 3, 9)  # fp32, tiny to large
    sl = (slice(5, 17), slice(3, 13), slice(7, 16))
    expected = acc.clone()
    expected[(slice(None), *sl)] += p
    _add_class_by_class(acc, sl, p)
    assert acc.dtype == torch.float16
    assert torch.equal(acc.view(torch.int16), expected.view(torch.int16))


def _scores_with_ties(k=37, shape=(9, 11, 13), seed=1):
    g = torch.Generator().manual_seed(seed)
    scores = (torch.randn((k, *shape), generator=g) * 4).half()
    scores[5, :3] = scores[2, :3]  # exact ties: the lower class must win
    scores[k - 1, 4:] = scores[:, 4:].max(0).values  # the last class ties the maximum
    return scores


def test_first_argmax_is_torch_argmax_with_its_tie_rule():
    from medsegai.inference.export import first_argmax

    scores = _scores_with_ties()
    expected = scores.argmax(0)
    assert torch.equal(first_argmax(scores).long(), expected)
    assert torch.equal(first_argmax(scores, torch.uint8).long(), expected)


def test_labels_without_resampling_equal_the_chunked_running_maximum():
    """TotalSegmentator's pipeline exports on the model grid: the shortcut must give the labels the
    general chunked path gives (which the parity tests tie to TotalSegmentator and nnU-Net)."""
    from medsegai.inference.export import scores_to_labels
    from medsegai.inference.preprocess import CaseGeometry

    scores = _scores_with_ties(k=130)  # > 127 classes: int16 indices
    shape = tuple(scores.shape[1:])
    geom = CaseGeometry(shape_before_crop=(12, 11, 15), bbox=[(2, 11), (0, 11), (1, 14)], shape_after_crop=shape,
                        spacing=(3.0, 3.0, 3.0), model_spacing=(3.0, 3.0, 3.0), transpose_backward=(0, 1, 2))
    shortcut = scores_to_labels(scores, geom, {})
    chunked = scores_to_labels(scores, geom, {}, on_chunk=lambda idx, res: None)  # every class, in chunks
    assert shortcut.dtype == chunked.dtype and np.array_equal(shortcut, chunked)
    assert np.array_equal(shortcut[2:11, :, 1:14], scores.argmax(0).numpy())


def test_non_finite_scores_are_an_error_not_labels():
    import pytest

    from medsegai.errors import DeviceError
    from medsegai.inference.sliding_window import WindowSettings, predict_logits

    class Broken(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros((x.shape[0], 3, *x.shape[2:]))
            out[:, 1, 0, 0, 0] = float("nan")
            return out

    data = np.zeros((1, 8, 8, 8), dtype=np.float32)
    with pytest.raises(DeviceError, match="not numbers"):
        predict_logits([Broken()], data, 3, WindowSettings((8, 8, 8), 0.5, None, 1, "fp32"), torch.device("cpu"))
