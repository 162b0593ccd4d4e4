"""The limited field-of-view augmentation: padding value outside a window, unknown labels there."""
from __future__ import annotations

import numpy as np
import torch

from medsegai.training.preprocessing import IGNORE_INDEX
from medsegai.training.transforms import RandLimitedFieldOfViewd, training_transforms


def _item(shape=(1, 16, 20, 24)):
    rng = np.random.default_rng(0)
    return {"image": torch.from_numpy(rng.normal(1, 1, shape).astype(np.float32)),
            "target": torch.from_numpy(rng.integers(0, 5, shape).astype(np.uint8))}


def test_outside_the_window_is_padding_and_unknown_inside_unchanged():
    item = _item()
    original = {k: v.clone() for k, v in item.items()}
    t = RandLimitedFieldOfViewd(prob=1.0, axis_prob=(1.0, 0.0, 0.0), min_fraction=0.25)
    t.set_random_state(seed=1)
    seen_lengths = set()
    for _ in range(20):
        out = t(item)
        kept = (out["target"][0] != IGNORE_INDEX).any(dim=(1, 2)).numpy()
        rows = np.flatnonzero(kept)
        assert rows.size >= 4 and np.all(np.diff(rows) == 1)  # one contiguous window, >= 25 %
        seen_lengths.add(rows.size)
        inside, outside = slice(rows[0], rows[-1] + 1), ~kept
        assert torch.equal(out["image"][:, inside], item["image"][:, inside])
        assert torch.equal(out["target"][:, inside], item["target"][:, inside])
        assert torch.all(out["image"][:, outside] == 0)  # the runner's padding value
        assert torch.all(out["target"][:, outside] == IGNORE_INDEX)
    assert len(seen_lengths) > 3  # the window really varies
    assert all(torch.equal(item[k], original[k]) for k in item)  # the cached case is never modified


def test_probability_zero_changes_nothing_and_pipeline_keeps_shapes():
    item = _item()
    t = RandLimitedFieldOfViewd(prob=0.0)
    out = t(item)
    assert torch.equal(out["image"], item["image"]) and torch.equal(out["target"], item["target"])
    patch = (8, 12, 12)
    aug = training_transforms(patch, 5, seed=0, elastic_p=0.0, limited_fov_p=1.0)
    target = item["target"].numpy()
    from medsegai.training.transforms import cached_transforms, class_sampling_label

    cached = cached_transforms(patch, 5)({"image": item["image"].numpy(), "target": target,
                                          "sampling": class_sampling_label(target, 5)})
    for _ in range(5):
        b = aug(cached)[0]
        assert tuple(b["image"].shape) == (1, *patch) and tuple(b["target"].shape) == (1, *patch)


def test_air_margin_pads_in_plane_with_air_and_background_only_for_ct():
    from types import SimpleNamespace

    from medsegai.training.preprocessing import PreprocessedCase, add_air_margin

    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (1, 6, 8, 10)).astype(np.float32)
    target = rng.integers(1, 4, (1, 6, 8, 10)).astype(np.uint8)
    case = PreprocessedCase("c", image, target)
    # Network axes (x, y, z) = input axes (i, j, k): the in-plane ones are network axes 0 and 1.
    ct = SimpleNamespace(normalization_schemes=["CTNormalization"], transpose_forward=(2, 1, 0),
                         spacing=(2.0, 2.0, 5.0))
    out = add_air_margin(case, ct, margin_mm=10)
    assert out.image.shape == (1, 6 + 10, 8 + 10, 10) and out.target.shape == out.image.shape
    np.testing.assert_array_equal(out.image[:, 5:-5, 5:-5, :], image)
    np.testing.assert_array_equal(out.target[:, 5:-5, 5:-5, :], target)
    border = np.ones(out.image.shape, bool)
    border[:, 5:-5, 5:-5, :] = False
    assert np.all(out.image[border] == image.min()) and np.all(out.target[border] == 0)
    mr = SimpleNamespace(normalization_schemes=["ZScoreNormalization"], transpose_forward=(0, 1, 2),
                         spacing=(1.0, 1.0, 1.0))
    assert add_air_margin(case, mr, margin_mm=10) is case
