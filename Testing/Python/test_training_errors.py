"""Bad training input is refused with a clear message before any training starts."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from training_support import make_training_folder, tiny_options


def _train(opts):
    from medsegai.training import train

    return train(opts, log=lambda m: None)


def _nothing_written(out):
    assert not any(out.rglob("*.pth")), "training must not have started"


def test_empty_folder(tmp_path):
    from medsegai.training import TrainingDataError

    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "labels").mkdir()
    with pytest.raises(TrainingDataError, match="is empty"):
        _train(tiny_options(tmp_path / "data", tmp_path / "out"))
    _nothing_written(tmp_path)


def test_folder_without_layout(tmp_path):
    from medsegai.training import TrainingDataError

    (tmp_path / "data").mkdir()
    with pytest.raises(TrainingDataError, match="imagesTr/ \\+ labelsTr/"):
        _train(tiny_options(tmp_path / "data", tmp_path / "out"))


def test_missing_folder(tmp_path):
    from medsegai.training import TrainingDataError

    with pytest.raises(TrainingDataError, match="not found"):
        _train(tiny_options(tmp_path / "nope", tmp_path / "out"))


def test_label_without_image_and_image_without_label(ts_ref, tmp_path):
    from medsegai.training import TrainingDataError

    data = make_training_folder(ts_ref, tmp_path / "data")
    (data / "labels" / "ct_sm.nii.gz").rename(data / "labels" / "other.nii.gz")
    with pytest.raises(TrainingDataError, match="No label file for image"):
        _train(tiny_options(data, tmp_path / "out"))


def test_different_geometry(ts_ref, tmp_path):
    from medsegai.training import TrainingDataError

    data = make_training_folder(ts_ref, tmp_path / "data")
    p = data / "labels" / "ct_sm.nii.gz"
    lab = sitk.ReadImage(str(p))
    lab.SetSpacing((3.0, 3.0, 2.5))
    sitk.WriteImage(lab, str(p))
    with pytest.raises(TrainingDataError, match="geometry differs"):
        _train(tiny_options(data, tmp_path / "out"))
    _nothing_written(tmp_path)


def test_same_voxels_in_another_axis_order_are_accepted(ts_ref, tmp_path):
    """A label stored flipped (like TotalSegmentator's NIfTI beside its DICOM series) is the same grid."""
    from medsegai.training.dataset import LabelMap, Pair, load_case

    data = make_training_folder(ts_ref, tmp_path / "data")
    p = data / "labels" / "ct_sm.nii.gz"
    lab = sitk.ReadImage(str(p))
    flipped = sitk.Flip(lab, [False, True, False])  # same voxels, j axis reversed (origin moves)
    sitk.WriteImage(flipped, str(tmp_path / "flipped.nii.gz"))
    names = {0: "background", 1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "liver"}
    case = load_case(Pair("ct_sm", data / "images" / "ct_sm.nii.gz", tmp_path / "flipped.nii.gz"), LabelMap(names))
    assert np.array_equal(case.label, sitk.GetArrayFromImage(lab))


def test_label_value_missing_from_name_map(ts_ref, tmp_path):
    from medsegai.training import TrainingDataError

    data = make_training_folder(ts_ref, tmp_path / "data", keep=(1, 5, 6))  # 6 = stomach, not named
    with pytest.raises(TrainingDataError, match="label value\\(s\\) 6 are not in the label-name map"):
        _train(tiny_options(data, tmp_path / "out"))
    _nothing_written(tmp_path)


def test_name_map_problems(ts_ref, tmp_path):
    from medsegai.training import TrainingDataError

    data = make_training_folder(ts_ref, tmp_path / "data")
    for bad, msg in (({"liver": 5}, "'background' to 0"),
                     ({"background": 0, "spleen": 1, "liver": 5}, "no name for value"),
                     ({"background": 0, "a": 1, "b": 1}, "share value 1"),
                     ({"background": 0, "a": [1, 2]}, "non-negative integers")):
        (data / "labels.json").write_text(json.dumps(bad))
        with pytest.raises(TrainingDataError, match=msg):
            _train(tiny_options(data, tmp_path / "out"))
    (data / "labels.json").unlink()
    with pytest.raises(TrainingDataError, match="No label-name map"):
        _train(tiny_options(data, tmp_path / "out"))


def test_only_background(ts_ref, tmp_path):
    from medsegai.training import TrainingDataError

    data = make_training_folder(ts_ref, tmp_path / "data", keep=())
    with pytest.raises(TrainingDataError, match="only background"):
        _train(tiny_options(data, tmp_path / "out"))


def test_too_little_memory_for_the_patch(ts_ref, tmp_path):
    from medsegai.training import TrainingConfigError

    data = make_training_folder(ts_ref, tmp_path / "data")
    with pytest.raises(TrainingConfigError, match=r"needs about .* GiB of RAM, but only 0\.0 GiB"):
        _train(tiny_options(data, tmp_path / "out", memory_limit_gb=0.001))
    # Without a limit, a huge patch is refused against the memory that is actually free.
    with pytest.raises(TrainingConfigError, match="Use a smaller --patch"):
        _train(tiny_options(data, tmp_path / "out", patch=(1024, 1024, 1024)))
    _nothing_written(tmp_path)


def test_patch_not_divisible(ts_ref, tmp_path):
    from medsegai.training import TrainingConfigError

    data = make_training_folder(ts_ref, tmp_path / "data")
    with pytest.raises(TrainingConfigError, match="divisible by 4"):
        _train(tiny_options(data, tmp_path / "out", patch=(18, 32, 32)))


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    from medsegai.cli import main

    (tmp_path / "data").mkdir()
    rc = main(["train", "-i", str(tmp_path / "data"), "-o", str(tmp_path / "out")])
    assert rc == 1
    assert "medsegai: error:" in capsys.readouterr().err
