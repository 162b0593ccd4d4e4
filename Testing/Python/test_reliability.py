"""Body-region estimate and reliability warnings, on real CTs and MRs from the shared data folder.

The data folder has no CT of the chest alone; the thorax case is the part of Pancreas-CT-CB_001
above the diaphragm domes (slices 100-133; both domes lie at slices 100-110 in a coronal view),
a real sub-volume with its own geometry.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from medsegai.body_region import (ABDOMEN_PELVIS, BODY_REGIONS_KEY, HEAD_NECK, REGIONS, THORAX, UNKNOWN,
                                  estimate_body_regions, superior_axis)
from medsegai.io.image import Image
from medsegai.io.read import read_image
from medsegai.reliability import declared_body_regions, reliability_warnings

REPO = Path(__file__).resolve().parents[2]
DEMO_PLANS = REPO / "Resources/Models/medsegai_ct_demo/MedSegAITrainer__nnUNetPlans__3d_fullres/plans.json"
DEMO = "medsegai_ct_demo"
CHEST_FROM_SLICE = 100
# A spread of OpenKBP cases: full head-to-upper-chest scans (pt_1, pt_17, pt_100) and ones with
# a field of view cropped to the face, neck and shoulders (pt_10, pt_130, pt_173).
KBP_CASES = ["pt_1", "pt_10", "pt_17", "pt_100", "pt_130", "pt_173"]


# ---- images ------------------------------------------------------------------------------------

def _sub_slices(image: Image, start: int) -> Image:
    """Slices ``start``.. along k, with the origin moved to the first kept slice."""
    origin = image.ijk_to_lps() @ np.array([0.0, 0.0, start, 1.0])
    return Image(image.array[start:].copy(), image.spacing, tuple(origin[:3]), image.direction.copy())


def _flipped(image: Image, axis: int) -> Image:
    """The same patient geometry stored with array ``axis`` reversed."""
    n = 2 - axis  # the ijk index of that array axis
    last = np.zeros(4)
    last[n], last[3] = image.array.shape[axis] - 1, 1.0
    direction = image.direction.copy()
    direction[:, n] *= -1
    return Image(np.flip(image.array, axis).copy(), image.spacing, tuple((image.ijk_to_lps() @ last)[:3]), direction)


def _permuted(image: Image, perm) -> Image:
    """The same geometry with the array axes reordered (new array axis m = old array axis perm[m])."""
    old_ijk = [2 - perm[2 - n] for n in range(3)]  # old ijk index of each new ijk index
    return Image(np.ascontiguousarray(image.array.transpose(perm)), tuple(image.spacing[c] for c in old_ijk),
                 image.origin, image.direction[:, old_ijk])


@pytest.fixture(scope="module")
def scans(data_dir):
    ts = data_dir / "ct" / "totalsegmentator-examples" / "tests" / "reference_files"
    pancreas = read_image(data_dir / "ct" / "pancreas-ct-cb001-dicom" / "Pancreas-CT-CB_001_CT_dicom")
    out = {
        "abdomen_pelvis_ct": read_image(ts / "example_ct.nii.gz"),
        "upper_abdomen_dicom": read_image(ts / "example_ct_dicom"),
        "chest_abdomen_ct": pancreas,
        "thorax_ct": _sub_slices(pancreas, CHEST_FROM_SLICE),
        "head_ct": read_image(data_dir / "ct" / "head-ct-invesalius" / "Cranium_ProMED_CT_0051.nii.gz"),
    }
    for case in KBP_CASES:
        out[case] = read_image(data_dir / "ct" / "openkbp-head-neck" / f"{case}_ct.nii.gz")
    return out


@pytest.fixture(scope="module")
def demo_regions():
    return declared_body_regions(json.loads(DEMO_PLANS.read_text()))


MR_FILES = [
    "ct/totalsegmentator-examples/tests/reference_files/example_mr_sm.nii.gz",
    "mri/brats-flair-edema/image_BraTS2021_01646_flair.nii.gz",
    "mri/pyradiomics/brain1_image.nrrd",
    "mri/monai-testing-data/test_0000_t2_tse_tra_4.nii.gz",
]


# ---- the estimate --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, region, at_least", [
    ("abdomen_pelvis_ct", ABDOMEN_PELVIS, 0.9),
    ("upper_abdomen_dicom", ABDOMEN_PELVIS, 0.9),
    ("chest_abdomen_ct", ABDOMEN_PELVIS, 0.6),
    ("thorax_ct", THORAX, 0.8),
    ("head_ct", HEAD_NECK, 0.95),
] + [(case, HEAD_NECK, 0.6) for case in KBP_CASES])
def test_region_estimate_on_real_ct(scans, name, region, at_least):
    r = estimate_body_regions(scans[name])
    assert r is not None
    print(f"{name}: {r.summary}")
    assert r.main_region == region
    assert r.fraction_of_body([region]) >= at_least, r.summary
    assert len(r.labels) == scans[name].shape[r.axis]
    assert abs(sum(r.fractions.values()) - 1) < 1e-9


def test_chest_abdomen_scan_has_the_chest_above_the_abdomen(scans):
    # Pancreas-CT-CB_001's DICOM header is trustworthy: the lungs are at its superior end.
    r = estimate_body_regions(scans["chest_abdomen_ct"])
    sup = np.asarray(r.superior_mm)
    labels = np.asarray(r.labels)
    assert 0.15 <= r.fraction_of_body([THORAX]) <= 0.45, r.summary
    assert sup[labels == THORAX].min() > sup[labels == ABDOMEN_PELVIS].max()
    assert r.summary.index("thorax") < r.summary.index("abdomen and pelvis")


def test_all_openkbp_cases_are_head_and_neck(data_dir):
    """Every case, not a chosen few: at most 3 of 170 may be misjudged or give no answer."""
    wrong = []
    for path in sorted((data_dir / "ct" / "openkbp-head-neck").glob("pt_*_ct.nii.gz")):
        r = estimate_body_regions(read_image(path))
        if r is None or r.main_region != HEAD_NECK:
            wrong.append(f"{path.name}: {None if r is None else r.summary}")
    print(f"{len(wrong)} OpenKBP case(s) not judged head and neck:", *wrong, sep="\n  ")
    assert len(wrong) <= 3


@pytest.mark.parametrize("rel", MR_FILES)
def test_mr_gives_no_region_claim(data_dir, demo_regions, rel):
    image = read_image(data_dir / rel)
    assert estimate_body_regions(image) is None
    assert reliability_warnings(image, demo_regions, model_name=DEMO) == []


def test_modality_hint_and_empty_images(scans):
    assert estimate_body_regions(scans["thorax_ct"], modality="MR") is None
    assert estimate_body_regions(scans["thorax_ct"], modality="ct") is not None
    air = Image(np.full((20, 64, 64), -1000, np.int16), (5.0, 5.0, 5.0))
    assert estimate_body_regions(air) is None
    # An unrescaled CT (air 0, water 1000) is not in HU: no claim.
    raw = scans["abdomen_pelvis_ct"]
    assert estimate_body_regions(raw.with_array(raw.array + 1024)) is None


@pytest.mark.parametrize("name", ["chest_abdomen_ct", "thorax_ct", "pt_17", "abdomen_pelvis_ct"])
def test_reoriented_copies_give_the_same_answer(scans, name):
    image = scans[name]
    ref = estimate_body_regions(image)
    ref_labels = np.asarray(ref.labels)
    si = ref.axis
    variants = {
        "flip superior-inferior": (_flipped(image, si), lambda lab: lab[::-1]),
        "flip in-plane": (_flipped(image, (si + 1) % 3), lambda lab: lab),
        "axes (k,j,i)->(j,k,i)": (_permuted(image, (1, 0, 2)), lambda lab: lab),
        "axes (k,j,i)->(i,j,k)": (_permuted(image, (2, 1, 0)), lambda lab: lab),
    }
    for what, (img, back) in variants.items():
        r = estimate_body_regions(img)
        assert r is not None, what
        assert img.shape[r.axis] == image.shape[si], what
        assert superior_axis(img) == r.axis
        agree = np.mean(back(np.asarray(r.labels)) == ref_labels)
        assert agree >= 0.95, f"{what}: {agree:.2f} ({r.summary} vs {ref.summary})"
        for region in REGIONS:
            assert abs(r.fraction_of_body([region]) - ref.fraction_of_body([region])) <= 0.05, what
        assert sorted(r.superior_mm) == pytest.approx(sorted(ref.superior_mm), abs=1e-3), what


def test_flipped_copy_describes_the_same_patient(scans):
    image = scans["pt_17"]
    flip = _flipped(image, 0)
    perm = _permuted(image, (1, 0, 2))
    k, j, i = 3, 40, 70
    p = image.ijk_to_lps() @ np.array([i, j, k, 1.0])
    assert np.allclose(flip.ijk_to_lps() @ np.array([i, j, image.shape[0] - 1 - k, 1.0]), p)
    assert flip.array[image.shape[0] - 1 - k, j, i] == image.array[k, j, i]
    assert np.allclose(perm.ijk_to_lps() @ np.array([i, k, j, 1.0]), p)
    assert perm.array[j, k, i] == image.array[k, j, i]


def test_estimator_time_on_the_largest_ct(scans):
    """Printed, not asserted: the figure depends on the machine and its load."""
    image = scans["chest_abdomen_ct"]
    # The largest CT here has 134 slices of 3 mm; the same scan resampled to 300 slices of 1.34 mm
    # (nearest slice) stands in for a typical 512 x 512 x 300 CT.
    fine = np.rint(np.linspace(0, image.shape[0] - 1, 300)).astype(int)
    long_scan = Image(image.array[fine], (*image.spacing[:2], image.spacing[2] * (image.shape[0] - 1) / 299),
                      image.origin, image.direction)
    for img, what in ((image, "Pancreas-CT-CB_001"), (long_scan, "Pancreas-CT-CB_001 resampled to 300 slices")):
        estimate_body_regions(img)
        t0 = time.perf_counter()
        r = estimate_body_regions(img)
        ms = (time.perf_counter() - t0) * 1000
        print(f"\nbody-region estimate: {ms:.0f} ms on {img.shape} ({what}): {r.summary}")
        assert r.main_region == ABDOMEN_PELVIS


# ---- warnings ------------------------------------------------------------------------------------

def test_demo_model_declares_abdomen_pelvis(demo_regions):
    assert demo_regions == [ABDOMEN_PELVIS]


def test_region_warning_on_thorax_not_on_abdomen(scans, demo_regions):
    thorax = reliability_warnings(scans["thorax_ct"], demo_regions, model_name=DEMO)
    assert len(thorax) == 1, thorax
    assert "thorax" in thorax[0] and DEMO in thorax[0] and "unreliable" in thorax[0]
    print(thorax[0])
    for name in ("abdomen_pelvis_ct", "upper_abdomen_dicom", "chest_abdomen_ct"):
        assert reliability_warnings(scans[name], demo_regions, model_name=DEMO) == [], name
    head = reliability_warnings(scans["pt_17"], demo_regions, model_name=DEMO)
    assert len(head) == 1 and "head and neck" in head[0], head


def test_region_check_is_skipped_when_nothing_can_be_checked(scans):
    thorax = scans["thorax_ct"]
    for declared in (None, [], ["whole_body"], ["abdomen_pelvis", "whole_body"], ["lower_limbs"]):
        assert reliability_warnings(thorax, declared, model_name=DEMO) == [], declared
    assert reliability_warnings(thorax, [THORAX]) == []
    assert reliability_warnings(thorax, ["chest"]) == []
    assert reliability_warnings(thorax, "abdomen_pelvis")  # a bare string is one region
    assert reliability_warnings(None, [ABDOMEN_PELVIS]) == []


def test_declared_body_regions_reads_plans():
    assert declared_body_regions({}) is None
    assert declared_body_regions({BODY_REGIONS_KEY: []}) is None
    assert declared_body_regions({BODY_REGIONS_KEY: None}) is None
    assert declared_body_regions({BODY_REGIONS_KEY: "thorax"}) == ["thorax"]
    assert declared_body_regions({BODY_REGIONS_KEY: ["thorax", "abdomen_pelvis"]}) == ["thorax", "abdomen_pelvis"]


def _confidence(flags, empty_flagged=0):
    conf = {f"s{n}": {"soft_dice": 0.3 if f else 0.9, "mean_uncertainty": 0.1, "voxels": 100, "flagged": int(f)}
            for n, f in enumerate(flags)}
    conf.update({f"empty{n}": {"soft_dice": 0.0, "mean_uncertainty": 0.0, "voxels": 0, "flagged": 1}
                 for n in range(empty_flagged)})
    return conf


@pytest.mark.parametrize("flags, empty, expected", [
    ([1] * 12 + [0] * 3, 0, "12 of 15 segments are flagged low-confidence: check them before use."),
    ([1, 1, 1, 0, 0], 0, "3 of 5 segments are flagged low-confidence: check them before use."),
    ([1, 1, 0, 0], 0, None),          # exactly half: no warning
    ([1, 0, 0, 0, 0], 0, None),
    ([1], 0, None),                   # one segment is too few to call "most"
    ([1, 1, 0, 0, 0], 5, None),       # segments with no voxels do not count
    ([], 3, None),
])
def test_confidence_rule_fires_only_past_half(flags, empty, expected):
    got = reliability_warnings(None, None, _confidence(flags, empty))
    assert got == ([expected] if expected else [])


def test_both_warnings_region_first(scans, demo_regions):
    got = reliability_warnings(scans["thorax_ct"], demo_regions, _confidence([1, 1, 1, 0]), model_name=DEMO)
    assert len(got) == 2 and "thorax" in got[0] and got[1].startswith("3 of 4 segments")


def test_precomputed_estimate_is_used(scans, demo_regions):
    r = estimate_body_regions(scans["thorax_ct"])
    assert reliability_warnings(None, demo_regions, regions=r, model_name=DEMO) == \
        reliability_warnings(scans["thorax_ct"], demo_regions, model_name=DEMO)


# ---- the trainer records the region -------------------------------------------------------------

def test_train_body_region_option_writes_plans(tmp_path, monkeypatch):
    from medsegai.training import cli as train_cli
    from medsegai.training import loop
    from medsegai.training.plans_writer import BODY_REGION_CHOICES, set_body_regions

    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    for region in BODY_REGION_CHOICES:
        assert parser.parse_args(["train", "-i", "x", "-o", "y", "--body-region", region]).body_region == [region]
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "-i", "x", "-o", "y", "--body-region", "legs"])

    folder = tmp_path / "out" / "MedSegAITrainer__nnUNetPlans__3d_fullres"

    def fake_train(opts, log=print):  # the loop writes plans.json; the option is applied after it
        folder.mkdir(parents=True)
        (folder / "plans.json").write_text(json.dumps({"dataset_name": "x"}, indent=1))
        return SimpleNamespace(model_folder=folder, validation={})

    monkeypatch.setattr(loop, "train", fake_train)
    args = parser.parse_args(["train", "-i", str(tmp_path), "-o", str(tmp_path / "out"),
                              "--body-region", "abdomen_pelvis"])
    assert args.func(args) == 0
    plans = json.loads((folder / "plans.json").read_text())
    assert plans[BODY_REGIONS_KEY] == ["abdomen_pelvis"] and plans["dataset_name"] == "x"
    assert declared_body_regions(plans) == ["abdomen_pelvis"]

    # Without the option an existing declaration (a resumed run) is left alone.
    (folder / "plans.json").write_text(json.dumps({BODY_REGIONS_KEY: ["thorax"]}))
    monkeypatch.setattr(loop, "train", lambda opts, log=print: SimpleNamespace(model_folder=folder, validation={}))
    args = parser.parse_args(["train", "-i", str(tmp_path), "-o", str(tmp_path / "out")])
    assert args.func(args) == 0
    assert json.loads((folder / "plans.json").read_text())[BODY_REGIONS_KEY] == ["thorax"]

    assert set_body_regions({}, ["thorax", "thorax"]) == {BODY_REGIONS_KEY: ["thorax"]}
    with pytest.raises(ValueError):
        set_body_regions({}, ["legs"])
    assert UNKNOWN not in BODY_REGION_CHOICES


# -- wired into the runner: the result, the CLI and the worker say it ---------------------------------

def test_demo_model_on_a_thorax_warns_in_the_result_and_the_cli(scans, tmp_path, capsys):
    from medsegai import Predictor
    from medsegai.cli import main
    from medsegai.io.write import write_image

    predictor = Predictor(model="medsegai_ct_demo", device="cpu")
    thorax = predictor.predict(scans["thorax_ct"])
    assert len(thorax.warnings) >= 1 and "thorax" in thorax.warnings[0]
    assert "medsegai_ct_demo" in thorax.warnings[0] and thorax.warnings[0] in thorax.notes
    assert predictor.predict(scans["abdomen_pelvis_ct"]).warnings == []

    path = write_image(scans["thorax_ct"], tmp_path / "thorax.nii.gz")
    assert main(["segment", "-i", str(path), "-o", str(tmp_path / "out"), "--device", "cpu", "-q", "--ml"]) == 0
    err = capsys.readouterr().err
    assert "warning: This scan appears to show the thorax" in err  # also with --quiet

