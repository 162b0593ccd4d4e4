"""Cases with some structures not contoured: unknown there, not background (the marginal loss)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training_support import make_training_folder, tiny_options


def _batch(seed=0, classes=4, shape=(6, 7, 8)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn((2, classes) + shape, generator=g)
    target = torch.randint(0, classes, (2,) + shape, generator=g)
    target[0, 0] = 255  # some unknown voxels
    return logits, target


def test_with_every_class_known_the_loss_is_cross_entropy_plus_monais_masked_dice():
    from monai.losses import MaskedDiceLoss

    from medsegai.training.loop import Loss
    from medsegai.training.preprocessing import IGNORE_INDEX

    logits, target = _batch()
    valid = target != IGNORE_INDEX
    ce = torch.nn.functional.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    t = torch.where(valid, target, torch.zeros_like(target))[:, None]
    dice = MaskedDiceLoss(include_background=False, to_onehot_y=True, softmax=True, batch=True, smooth_nr=1e-5,
                          smooth_dr=1e-5)(logits, t, mask=valid[:, None].float())
    assert float(Loss()(logits, target)) == pytest.approx(float(ce + dice), rel=1e-5)


def test_an_uncontoured_class_is_folded_into_background_for_its_case_only():
    from medsegai.training.loop import Loss

    logits, target = _batch(1)
    target[0][target[0] == 2] = 0  # case 0 has no contour of class 2: its class-2 voxels look like background
    known = torch.ones((2, 4), dtype=torch.bool)
    known[0, 2] = False
    # Moving probability between background and class 2 at case 0's background voxels changes
    # nothing when class 2 is unknown there: p(bg) + p(2) is what the label says.
    swapped = logits.clone()
    bg = target[0] == 0
    swapped[0, 0][bg], swapped[0, 2][bg] = logits[0, 2][bg], logits[0, 0][bg]
    loss = Loss()
    assert float(loss(swapped, target, known)) == pytest.approx(float(loss(logits, target, known)), rel=1e-6)
    # With class 2 known, the same swap is penalised or rewarded: the label does say background.
    assert float(loss(swapped, target)) != pytest.approx(float(loss(logits, target)), rel=1e-4)


def test_unlabelled_file_is_checked_against_the_cases(ts_ref, tmp_path):
    from medsegai.training.dataset import load_cases, load_label_map, load_unlabelled
    from medsegai.training.errors import TrainingDataError

    data = make_training_folder(ts_ref, tmp_path / "d", keep=(1, 5))  # spleen and liver contoured
    labels = load_label_map(data)
    cases = load_cases(data, labels)
    assert load_unlabelled(data, labels, cases) == {}  # no file: every case fully labelled
    (data / "unlabelled.json").write_text(json.dumps({"ct_sm": ["kidney_left", "gallbladder"]}))
    assert load_unlabelled(data, labels, cases) == {"ct_sm": [3, 4]}
    for bad, says in (({"ct_sm": ["livr"]}, "'livr', which is not a structure"),
                      ({"other": ["gallbladder"]}, "case 'other'"),
                      ({"ct_sm": ["liver"]}, "has voxels of it"),
                      ({"ct_sm": "liver"}, "must be a list")):
        (data / "unlabelled.json").write_text(json.dumps(bad))
        with pytest.raises(TrainingDataError, match=says):
            load_unlabelled(data, labels, cases)
    with pytest.raises(TrainingDataError, match="not found"):
        load_unlabelled(data, labels, cases, tmp_path / "missing.json")


def test_training_with_uncontoured_structures_runs_and_says_so(ts_ref, tmp_path):
    from medsegai.training import train

    data = make_training_folder(ts_ref, tmp_path / "d", keep=(1, 5))
    (data / "unlabelled.json").write_text(json.dumps({"ct_sm": ["gallbladder"]}))
    logs = []
    summary = train(tiny_options(data, tmp_path / "out", iterations=2), log=logs.append)
    assert any("lack some contours" in m for m in logs)
    assert np.isfinite(summary.final_loss)
