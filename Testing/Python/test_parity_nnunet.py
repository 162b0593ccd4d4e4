"""Our labels against nnU-Net v2's own predictor: same model folder, same real CT (exact mode)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import medsegai
from medsegai.io import read_image
from model_factory import shrink_plans, write_model_folder
from nnunet_reference import nnunet_predict
from parity_support import assert_parity


@pytest.fixture(scope="module")
def ct_sm(ts_ref):
    return read_image(ts_ref / "example_ct_sm.nii.gz")


def test_parity_small_model_real_ct(small_model, ct_sm):
    ref = nnunet_predict(small_model, ct_sm.array, ct_sm.spacing[::-1])
    res = medsegai.segment(ct_sm, model=small_model, device="cpu", mode="nnunet")
    assert res.labels.same_grid(ct_sm)
    assert_parity(ref, res.labels.array)


def test_old_plans_format_gives_identical_labels(nnunet_plans, small_model, ct_sm, tmp_path):
    plans, dataset = nnunet_plans
    old = write_model_folder(tmp_path, shrink_plans(plans, patch=(32, 64, 64)), dataset, old_format=True)
    assert "architecture" not in json.loads((old / "plans.json").read_text())["configurations"]["3d_fullres"]
    a = medsegai.segment(ct_sm, model=small_model, device="cpu").labels.array
    b = medsegai.segment(ct_sm, model=old, device="cpu").labels.array
    np.testing.assert_array_equal(a, b)


def test_parity_resampling_two_folds_and_mirroring(nnunet_plans, ts_ref, tmp_path):
    """Input at 3 mm, model at 2 mm: cubic resampling in, linear scores out; fold ensemble; mirror TTA."""
    plans, dataset = nnunet_plans
    small = shrink_plans(plans, patch=(16, 48, 48), features=(16, 16, 16), spacing=(2.0, 2.0, 2.0))
    folder = write_model_folder(tmp_path, small, dataset, folds=(0, 1), mirror_axes=(2,), trainer="nnUNetTrainer")
    img = read_image(ts_ref / "example_ct_sm.nii.gz")
    img = medsegai.Image(np.ascontiguousarray(img.array[8:24, 30:78, 40:88]), img.spacing, img.origin, img.direction)
    ref = nnunet_predict(folder, img.array, img.spacing[::-1], folds=(0, 1))
    res = medsegai.segment(img, model=folder, device="cpu", mode="nnunet")
    assert_parity(ref, res.labels.array)


def test_parity_anisotropic_separate_z(nnunet_plans, ts_ref, tmp_path):
    """Model spacing 6 x 1.5 x 1.5 mm (ratio 4 > 3): nnU-Net resamples z separately, both ways."""
    plans, dataset = nnunet_plans
    small = shrink_plans(plans, patch=(16, 64, 64), features=(16, 16, 16), spacing=(6.0, 1.5, 1.5))
    folder = write_model_folder(tmp_path, small, dataset)
    img = read_image(ts_ref / "example_ct_sm.nii.gz")
    crop = img.array[:, 20:80, 30:90]
    img = medsegai.Image(np.ascontiguousarray(crop), img.spacing, img.origin, img.direction)
    ref = nnunet_predict(folder, img.array, img.spacing[::-1])
    res = medsegai.segment(img, model=folder, device="cpu", mode="nnunet")
    assert_parity(ref, res.labels.array)


def test_parity_lps_mr_input(small_model, ts_ref):
    """An LPS-oriented MR volume: labels land on the input's own grid, in its own voxel order."""
    img = read_image(ts_ref / "example_mr_sm.nii.gz")
    ref = nnunet_predict(small_model, img.array, img.spacing[::-1])
    res = medsegai.segment(img, model=small_model, device="cpu", mode="nnunet")
    assert res.labels.same_grid(img)
    assert_parity(ref, res.labels.array)
