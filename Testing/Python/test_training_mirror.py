"""The left-right mirror with swapped labels (--mirror-lr): pairs, known flags, and the real axis."""
from __future__ import annotations

import numpy as np
import pytest

from medsegai.datasets import openkbp
from medsegai.training.errors import TrainingConfigError
from medsegai.training.loop import TrainOptions, _mirror_factory
from medsegai.training.preprocessing import IGNORE_INDEX
from medsegai.training.transforms import RandMirrorLeftRightd, left_right_permutation

NAMES = ["background", "brainstem", "parotid_gland_right", "parotid_gland_left", "left_kidney", "right_kidney"]


def test_pairs_are_found_by_suffix_and_prefix_and_singles_stay():
    perm = left_right_permutation(NAMES)
    assert perm.tolist() == [0, 1, 3, 2, 5, 4]
    assert left_right_permutation(["background", "liver", "spleen"]) is None


def test_flip_swaps_labels_and_known_flags_and_keeps_unknown():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 4, 5, 6)).astype(np.float32)
    target = np.zeros((1, 4, 5, 6), np.uint8)
    target[0, :, :, 0] = 2  # "right parotid" in the first column of the left-right axis
    target[0, 0, 0, 1] = IGNORE_INDEX
    known = np.array([True, True, True, False, True, True])
    t = RandMirrorLeftRightd(left_right_permutation(NAMES), axis=2, prob=1.0)
    out = t({"image": image, "target": target, "known": known, "name": "x"})
    assert np.array_equal(out["image"], image[..., ::-1])
    assert np.all(out["target"][0, :, :, -1] == 3)  # now the left one, on the other side
    assert out["target"][0, 0, 0, -2] == IGNORE_INDEX
    assert out["known"].tolist() == [True, True, False, True, True, True]  # left unknown -> right unknown
    assert out["name"] == "x"
    # Twice is the identity.
    again = t(out)
    assert np.array_equal(again["image"], image) and np.array_equal(again["target"], target)
    assert again["known"].tolist() == known.tolist()


def test_probability_zero_changes_nothing():
    item = {"image": np.ones((1, 2, 2, 2), np.float32), "target": np.zeros((1, 2, 2, 2), np.uint8)}
    assert RandMirrorLeftRightd(left_right_permutation(NAMES), axis=2, prob=0.0)(item) is item


def test_refused_without_pairs_or_without_canonical_orientation(tmp_path):
    o = TrainOptions(data_dir=tmp_path, output_dir=tmp_path, mirror_lr_p=0.5)

    class Config:
        transpose_forward = (0, 1, 2)

    with pytest.raises(TrainingConfigError, match="left/right pairs"):
        _mirror_factory(o, {"medsegai_input_orientation": "closest_canonical_ras"}, Config, ["background", "liver"],
                        RandMirrorLeftRightd, left_right_permutation)
    with pytest.raises(TrainingConfigError, match="canonical RAS"):
        _mirror_factory(o, {}, Config, NAMES, RandMirrorLeftRightd, left_right_permutation)
    off = TrainOptions(data_dir=tmp_path, output_dir=tmp_path)
    assert _mirror_factory(off, {}, Config, NAMES, RandMirrorLeftRightd, left_right_permutation) is None


def test_on_a_real_case_the_mirrored_left_parotid_lands_on_the_right_one(data_dir):
    """The axis the trainer flips is the patient's left-right one after its canonical reorientation."""
    from medsegai.inference.orientation import to_canonical

    case = openkbp.read_case(data_dir, "pt_101")  # a training case with both parotids
    values = openkbp.organ_values(data_dir)
    image, _ = to_canonical(case.image)
    label = to_canonical(case.image.with_array(case.organs))[0].array
    right, left = label == values["parotid_gland_right"], label == values["parotid_gland_left"]
    assert right.sum() > 100 and left.sum() > 100

    class Config:
        transpose_forward = (0, 1, 2)

    o = TrainOptions(data_dir=data_dir, output_dir=data_dir, mirror_lr_p=1.0)
    names = ["background", "parotid_gland_right", "parotid_gland_left"]
    mirror = _mirror_factory(o, {"medsegai_input_orientation": "closest_canonical_ras"}, Config, names,
                             RandMirrorLeftRightd, left_right_permutation)()
    target = np.zeros((1,) + label.shape, np.uint8)
    target[0][right], target[0][left] = 1, 2
    out = mirror({"image": image.array[None].astype(np.float32), "target": target})
    flipped_left = out["target"][0] == 1  # the mirrored left parotid, now labelled right
    dice = 2 * (flipped_left & right).sum() / (flipped_left.sum() + right.sum())
    assert dice > 0.4, dice  # the head is roughly symmetric; along any other axis the organs would miss
