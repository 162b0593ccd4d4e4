"""Uncertainty through ``medsegai.segment`` on a crop of real CT, with nnU-Net-planned model folders.

Each test checks a property that fails if the method is wrong: labels identical to a run
without uncertainty, maps on the input grid in 0..1 and not all zero, maps that differ between
methods, spread that sits where the passes disagree, and refusals before any network pass.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import medsegai
from medsegai.io.image import Image
from medsegai.io.read import read_image
from medsegai import RunRequestError
from medsegai.uncertainty import NoDropoutError, SingleFoldError
from medsegai.uncertainty.measures import entropy_terms, normalise_entropy

CROP = (slice(4, 28), slice(20, 84), slice(25, 97))  # abdomen of example_ct_sm, 24 x 64 x 72 voxels


@pytest.fixture(scope="module")
def ct(ts_ref) -> Image:
    img = read_image(ts_ref / "example_ct_sm.nii.gz")
    ijk0 = np.array([CROP[2].start, CROP[1].start, CROP[0].start, 1.0])
    origin = (img.ijk_to_lps() @ ijk0)[:3]
    return Image(np.ascontiguousarray(img.array[CROP]), img.spacing, tuple(origin), img.direction)


@pytest.fixture(scope="module")
def dropout_two_fold_model(nnunet_plans, tmp_path_factory):
    """Two folds, dropout after every conv, mirroring allowed on one axis (two forward passes per tile keep CI quick)."""
    from model_factory import shrink_plans, write_model_folder

    plans, dataset = nnunet_plans
    plans = shrink_plans(plans, patch=(32, 64, 64))
    kw = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    kw["dropout_op"] = "torch.nn.Dropout3d"
    kw["dropout_op_kwargs"] = {"p": 0.2, "inplace": True}
    return write_model_folder(tmp_path_factory.mktemp("dropout"), json.loads(json.dumps(plans)), dataset,
                              trainer="nnUNetTrainer", folds=(0, 1), mirror_axes=(0,))


def _run(ct, model, **kw):
    return medsegai.segment(ct, model=model, device="cpu", threads=1, **kw)


def _tiles(events):
    return [e for e in events if e.message.startswith("tile")]


def _check_map(result, image):
    u = result.uncertainty
    assert u is not None and u.same_grid(image) and u.array.dtype == np.float32
    assert np.isfinite(u.array).all() and u.array.min() >= 0.0 and u.array.max() <= 1.0
    assert u.array.max() > 0.05, "a map of (near) zeros"
    present = {s.name for s in result.present_segments()}
    assert present and set(result.segment_confidence) == present
    for vals in result.segment_confidence.values():
        assert 0.0 <= vals["soft_dice"] <= 1.0 and 0.0 <= vals["mean_uncertainty"] <= 1.0
        assert vals["flagged"] in (0, 1) and vals["voxels"] > 0


def test_entropy_keeps_labels_and_probabilities_and_matches_them(ct, small_model):
    plain = _run(ct, small_model, return_probabilities=True)
    events = []
    res = _run(ct, small_model, return_probabilities=True, uncertainty="entropy", progress=events.append)
    np.testing.assert_array_equal(res.labels.array, plain.labels.array)
    np.testing.assert_array_equal(res.probabilities, plain.probabilities)
    assert res.uncertainty_method == "entropy"
    _check_map(res, ct)
    # No extra network pass: the tile count is that of one prediction.
    tiles = [e.message for e in events if e.stage == "predict" and e.message.startswith("tile")]
    assert tiles and tiles[-1].endswith("/" + tiles[-1].split("/")[-1]) and len(set(tiles)) == len(tiles)
    # The input is on the model's 3 mm grid here, so the map is the entropy of the returned probabilities.
    p = res.probabilities.astype(np.float32)
    import torch

    expected = normalise_entropy(entropy_terms(torch.from_numpy(p)), p.shape[0]).numpy()
    np.testing.assert_allclose(res.uncertainty.array, expected, atol=5e-3)
    # Soft Dice Confidence from the same probabilities and labels.
    for s in res.present_segments():
        mask = res.labels.array == s.value
        sdc = 2 * p[s.value][mask].sum() / (mask.sum() + p[s.value].sum())
        assert res.segment_confidence[s.name]["soft_dice"] == pytest.approx(sdc, abs=2e-3)
        assert res.segment_confidence[s.name]["mean_uncertainty"] == pytest.approx(
            float(res.uncertainty.array[mask].mean()), abs=1e-5)


def test_tta_differs_from_entropy_and_keeps_labels(ct, small_model):
    plain = _run(ct, small_model)
    ent = _run(ct, small_model, uncertainty="entropy")
    tta = _run(ct, small_model, uncertainty="tta", uncertainty_passes=4, return_probabilities=True)
    np.testing.assert_array_equal(tta.labels.array, plain.labels.array)
    # The probabilities returned are the passes' mean: a distribution per voxel, and the one the
    # Soft Dice Confidence was computed from.
    p = tta.probabilities.astype(np.float32)
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-2)
    for s in tta.present_segments():
        mask = tta.labels.array == s.value
        sdc = 2 * p[s.value][mask].sum() / (mask.sum() + p[s.value].sum())
        assert tta.segment_confidence[s.name]["soft_dice"] == pytest.approx(sdc, abs=2e-3)
    _check_map(tta, ct)
    assert tta.uncertainty_method == "tta"
    assert not np.allclose(tta.uncertainty.array, ent.uncertainty.array, atol=0.05)
    # More flips than the three axes allow: every combination is used and the result says so.
    many = _run(ct, small_model, uncertainty="tta", uncertainty_passes=12)
    assert any("used 8 passes, not 12" in n for n in many.notes)


def test_requests_the_model_cannot_honour_fail_before_any_network_pass(ct, small_model):
    for method, error, text in (("mcdropout", NoDropoutError, "no(ne)? .*dropout|has none"),
                                ("ensemble", SingleFoldError, "only fold 0")):
        events = []
        with pytest.raises(error, match=text):
            _run(ct, small_model, uncertainty=method, progress=events.append)
        assert not _tiles(events), f"{method}: the network ran before the refusal"
    # Option errors are the run request's, found before the image is read.
    with pytest.raises(RunRequestError, match="use entropy, tta, mcdropout, ensemble"):
        _run(ct, small_model, uncertainty="bayes")
    with pytest.raises(RunRequestError, match="at least 2 passes"):
        _run(ct, small_model, uncertainty="tta", uncertainty_passes=1)


def test_mcdropout_on_a_model_with_dropout(ct, dropout_two_fold_model):
    plain = _run(ct, dropout_two_fold_model, folds=[0])
    mc = _run(ct, dropout_two_fold_model, folds=[0], uncertainty="mcdropout", uncertainty_passes=3)
    np.testing.assert_array_equal(mc.labels.array, plain.labels.array)  # dropout off for the labels
    _check_map(mc, ct)
    again = _run(ct, dropout_two_fold_model, folds=[0], uncertainty="mcdropout", uncertainty_passes=3)
    np.testing.assert_array_equal(mc.uncertainty.array, again.uncertainty.array)  # seeded masks
    ent = _run(ct, dropout_two_fold_model, folds=[0], uncertainty="entropy")
    assert not np.allclose(mc.uncertainty.array, ent.uncertainty.array, atol=0.05)


def test_ensemble_spread_sits_where_the_folds_disagree(ct, dropout_two_fold_model):
    both = _run(ct, dropout_two_fold_model)  # nnU-Net's ensemble of the two folds
    ens = _run(ct, dropout_two_fold_model, uncertainty="ensemble")
    np.testing.assert_array_equal(ens.labels.array, both.labels.array)
    _check_map(ens, ct)
    f0 = _run(ct, dropout_two_fold_model, folds=[0]).labels.array
    f1 = _run(ct, dropout_two_fold_model, folds=[1]).labels.array
    disagree = f0 != f1
    assert disagree.any() and (~disagree).any()
    u = ens.uncertainty.array
    assert u[disagree].mean() > 3 * u[~disagree].mean()


def test_totalsegmentator_mode_keeps_its_labels(ct, small_model):
    plain = _run(ct, small_model, mode="totalseg")
    res = _run(ct, small_model, mode="totalseg", uncertainty="entropy")
    np.testing.assert_array_equal(res.labels.array, plain.labels.array)
    _check_map(res, ct)


def test_too_little_memory_is_a_clear_error(ct, small_model, monkeypatch):
    from medsegai.uncertainty import UncertaintyMemoryError, memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 1024 * 1024)
    events = []
    with pytest.raises(UncertaintyMemoryError, match="needs about"):
        _run(ct, small_model, uncertainty="tta", progress=events.append)
    assert not _tiles(events)
