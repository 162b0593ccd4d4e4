"""TotalSegmentator mode and task logic: exact pipeline, label values, part merging, structure subsets."""
from __future__ import annotations

import numpy as np
import pytest

import medsegai
from medsegai.io import read_image
from parity_support import assert_parity
from totalseg_support import FAST, FASTEST, PARTS, make_task_model, total_class_map, totalseg_reference


@pytest.fixture(scope="module")
def weights_dir(nnunet_plans, tmp_path_factory):
    """A folder laid out like TOTALSEG_WEIGHTS_PATH: fast, fastest and the five parts (tiny networks)."""
    plans, dataset = nnunet_plans
    root = tmp_path_factory.mktemp("totalseg_weights")
    total = total_class_map()
    make_task_model(root, FAST, plans, dataset, total, (3.0, 3.0, 3.0), seed=1)
    make_task_model(root, FASTEST, plans, dataset, total, (6.0, 6.0, 6.0), seed=2, patch=(16, 32, 32))
    for n, (name, values) in enumerate(PARTS):
        # parts number their labels 1..N, as TotalSegmentator's part models do
        names = {i + 1: total[v] for i, v in enumerate(values)}
        make_task_model(root, name, plans, dataset, names, (3.0, 3.0, 3.0), seed=10 + n, background_bias=3.0)
    return root


def test_fast_task_matches_totalsegmentator_pipeline(weights_dir, ts_ref):
    path = ts_ref / "example_ct_sm.nii.gz"
    ref = totalseg_reference(next((weights_dir / FAST).iterdir()), path, (3.0, 3.0, 3.0))
    res = medsegai.segment(path, task="total", quality="fast", model=weights_dir, device="cpu")
    assert_parity(ref, res.labels.array)
    names = {s.value: s.name for s in res.segments}
    assert names[5] == "liver" and names[52] == "aorta" and len(names) == 117


def test_totalseg_mode_on_lps_image_with_resampling(weights_dir, ts_ref, tmp_path):
    """The real CT stored LPS (flipped voxel order): canonical reorientation, zoom to 6 mm and back,
    orientation undone — all as TotalSegmentator does it."""
    import SimpleITK as sitk

    src = sitk.ReadImage(str(ts_ref / "example_ct_sm.nii.gz"))
    lps = sitk.DICOMOrient(src, "LPS")
    path = tmp_path / "ct_lps.nii.gz"
    sitk.WriteImage(lps, str(path))
    folder = next((weights_dir / FASTEST).iterdir())
    ref = totalseg_reference(folder, path, (6.0, 6.0, 6.0))
    res = medsegai.segment(path, model=folder, mode="totalseg", tile_step=0.8, device="cpu")
    img = read_image(path)
    assert not np.allclose(img.direction, np.diag([-1, -1, 1]))  # really not RAS on disk
    assert res.labels.same_grid(img)
    assert_parity(ref, res.labels.array)


def test_normal_quality_merges_five_parts_later_part_wins(weights_dir, ts_ref):
    full = read_image(ts_ref / "example_ct_sm.nii.gz")
    img = medsegai.Image(np.ascontiguousarray(full.array[:, 20:80, 30:90]), full.spacing, full.origin, full.direction)
    res = medsegai.segment(img, task="total", quality="normal", model=weights_dir, device="cpu")
    total = total_class_map()
    by_name = {n: v for v, n in total.items()}
    expected = np.zeros(img.shape, np.uint8)
    for name, _values in PARTS:
        part = medsegai.segment(img, model=next((weights_dir / name).iterdir()), mode="totalseg", tile_step=0.8,
                                device="cpu")
        lut = np.zeros(256, np.uint8)
        for s in part.segments:
            lut[s.value] = by_name[s.name]
        mapped = lut[part.labels.array]
        expected = np.where(mapped > 0, mapped, expected)
    np.testing.assert_array_equal(res.labels.array, expected)
    present = set(np.unique(res.labels.array)) - {0}
    assert any(v >= 92 for v in present) and any(v < 25 for v in present)


def test_roi_subset_runs_only_needed_parts_and_keeps_only_requested(weights_dir, ts_ref):
    img = read_image(ts_ref / "example_ct_sm.nii.gz")
    events = []
    subset = ["liver", "aorta"]
    res = medsegai.segment(img, task="total", quality="normal", roi_subset=subset, model=weights_dir,
                           device="cpu", progress=events.append)
    assert {s.name for s in res.segments} == set(subset)
    assert set(np.unique(res.labels.array)) <= {0, 5, 52}
    started = [e.message for e in events if e.stage == "predict" and e.message.startswith("model ")]
    assert len(started) == 2, started  # organs and cardiac parts only
    assert any(e.stage == "crop" for e in events)


def test_roi_subset_typo_is_reported_with_suggestion(weights_dir, ts_ref):
    with pytest.raises(medsegai.MedSegAIError, match="did you mean liver"):
        medsegai.segment(ts_ref / "example_ct_sm.nii.gz", task="total", quality="fast", roi_subset=["livr"],
                         model=weights_dir, device="cpu")
