"""The shipped head-and-neck organ model (task head_neck_oar) on patients it never saw.

Quality floors here are sanity bounds well under the validation-split medians of the model card
(Testing/Benchmarks/eval_head_neck.py measures those): a test must fail on a broken model, a
mirrored input or a wrong orientation convention, not on a hard patient.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medsegai.datasets import openkbp

CASE = "pt_100"  # held out (Resources/Splits/openkbp_validation.json), all seven organs contoured
FLOORS = {"mandible": 0.55, "parotid_gland_left": 0.45, "parotid_gland_right": 0.45, "brainstem": 0.45,
          "spinal_cord": 0.5, "larynx": 0.3, "esophagus": 0.25}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / s if s else float("nan")


@pytest.fixture(scope="module")
def predictor():
    from medsegai import Predictor

    return Predictor(task="head_neck_oar", device="cpu")


@pytest.fixture(scope="module")
def case(data_dir):
    assert CASE in openkbp.validation_cases()
    return openkbp.read_case(data_dir, CASE)


@pytest.fixture(scope="module")
def result(predictor, case):
    return predictor.predict(case.image, uncertainty="entropy")


def _organ_dice(result, case, data_dir, labels=None):
    values = openkbp.organ_values(data_dir)
    by_name = {s.name: s.value for s in result.segments}
    pred = result.labels.array if labels is None else labels
    return {n: _dice(pred == by_name[n], case.organs == values[n]) for n in case.contoured}


def test_held_out_patient(result, case, data_dir):
    dice = _organ_dice(result, case, data_dir)
    print("Dice:", {k: round(v, 3) for k, v in dice.items()})
    low = {n: round(dice[n], 3) for n, floor in FLOORS.items() if dice[n] < floor}
    assert not low, f"below the sanity floors {FLOORS}: {low}"
    assert not result.warnings, result.warnings  # a head-and-neck CT is in the model's region


def test_organs_lie_where_anatomy_puts_them(result):
    """Right is right, anterior is anterior, head is up: in patient (RAS) coordinates, not array axes."""
    ras = result.labels.ijk_to_ras()
    by_name = {s.name: s.value for s in result.segments}

    def centroid(name):
        kji = np.argwhere(result.labels.array == by_name[name]).mean(axis=0)
        return (ras @ np.r_[kji[::-1], 1.0])[:3]

    right, left = centroid("parotid_gland_right"), centroid("parotid_gland_left")
    assert right[0] > left[0] + 40  # RAS +x is the patient's right; parotids lie ~8-10 cm apart
    assert centroid("mandible")[1] > centroid("spinal_cord")[1]  # +y anterior
    assert centroid("brainstem")[2] > centroid("spinal_cord")[2]  # +z superior


def test_another_resolution_and_storage_order_gives_the_same_organs(predictor, case, result, data_dir):
    """The same patient as another scanner might store it: sagittal-major axes, 2 x 2 x 3 mm."""
    src = case.image.to_sitk()
    reoriented = sitk.DICOMOrient(src, "IRA")  # same physical voxels, axes permuted and flipped
    size = [int(round(n * s / t)) for n, s, t in zip(reoriented.GetSize(), reoriented.GetSpacing(), (3.0, 2.0, 2.0))]
    scan = sitk.Resample(reoriented, size, sitk.Transform(), sitk.sitkLinear, reoriented.GetOrigin(), (3.0, 2.0, 2.0),
                         reoriented.GetDirection(), -1024.0, sitk.sitkInt16)
    from medsegai.io.image import Image

    other = predictor.predict(Image.from_sitk(scan))
    back = sitk.Resample(other.labels.to_sitk(), src, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    labels = sitk.GetArrayFromImage(back)
    first = _organ_dice(result, case, data_dir)
    again = _organ_dice(result, case, data_dir, labels)
    print("Dice, original grid:", {k: round(v, 3) for k, v in first.items()})
    print("Dice, reoriented 2x2x3 mm:", {k: round(v, 3) for k, v in again.items()})
    for name, floor in FLOORS.items():
        assert again[name] >= min(floor, first[name]) - 0.15, (name, first[name], again[name])
    by_name = {s.name: s.value for s in result.segments}
    agree = [_dice(labels == v, result.labels.array == v) for n, v in by_name.items() if n in FLOORS]
    assert np.mean(agree) > 0.7, agree


def test_confidence_per_organ(result):
    conf = result.segment_confidence
    assert set(FLOORS) <= set(conf)
    for name in FLOORS:
        assert 0.0 < conf[name]["soft_dice"] <= 1.0
    assert result.uncertainty is not None and result.uncertainty.array.shape == result.labels.array.shape


def test_an_abdominal_ct_gets_the_out_of_region_warning(predictor, ts_ref):
    res = predictor.predict(ts_ref / "example_ct_sm.nii.gz")
    assert any("head" in w.lower() for w in res.warnings), res.warnings


def test_cli_task_and_panel_choice(tmp_path, case, monkeypatch):
    from medsegai.cli import main

    src = tmp_path / "hn_ct.nii.gz"
    sitk.WriteImage(case.image.to_sitk(), str(src))
    out = tmp_path / "out"
    assert main(["segment", "-i", str(src), "-o", str(out), "--task", "head_neck_oar", "-d", "cpu"]) == 0
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(next(out.glob("*.nii.gz")))))
    assert set(np.unique(seg).tolist()) <= set(range(8)) and (seg == 7).sum() > 1000  # mandible found

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "MedSegAI"))
    from MedSegAILib.model_choices import load_choices

    choices, problem = load_choices()
    hn = [c for c in choices if c.task == "head_neck_oar"]
    assert problem is None and len(hn) == 1
    assert hn[0].title.startswith("Head and neck organs at risk")
    assert "parotid_gland_left" in hn[0].structures


def test_catalogue_structures_match_the_model(data_dir):
    from medsegai.resources import resource_path

    cat = json.loads(resource_path("Models", "catalog.json").read_text())
    entry = next(m for m in cat["models"] if m["id"] == "medsegai_head_neck_oar")
    ds = json.loads(next(resource_path("Models", "medsegai_head_neck_oar").rglob("dataset.json")).read_text())
    assert {s["name"]: s["value"] for s in entry["structures"]} == {k: v for k, v in ds["labels"].items() if v}
    assert {s["name"]: s["value"] for s in entry["structures"]} == openkbp.organ_values(data_dir)
