"""Bad input: every case gives a MedSegAIError that names the problem, through the API and the CLI.

The CLI is driven in-process through ``medsegai.cli.main`` (an exception escaping it would be the
raw traceback a user sees), plus a few real subprocess runs to check stderr and the exit code.
"""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import medsegai
from medsegai import DeviceError, Image, InvalidImageError, InvalidModelError, MedSegAIError, RunRequestError
from medsegai.cli import main

# ---------------------------------------------------------------------------------------------
# inputs


@pytest.fixture(scope="module")
def ct_crop(ts_ref, tmp_path_factory) -> Path:
    """A real CT cropped to one network tile, so that a run that should fail cannot hide in work."""
    img = sitk.ReadImage(str(ts_ref / "example_ct_sm.nii.gz"))
    path = tmp_path_factory.mktemp("ct") / "ct_crop.nii.gz"
    sitk.WriteImage(img[30:94, 20:84, :], str(path))
    return path


def _text_as_nifti(d: Path) -> Path:
    p = d / "report.nii.gz"
    p.write_text("Patient: anonymous\nFindings: none\n" * 10)
    return p


def _gzipped_text_as_nifti(d: Path) -> Path:
    p = d / "zipped_report.nii.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("not a volume\n" * 50)
    return p


def _image_2d(d: Path) -> Path:
    p = d / "slice.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((32, 32), np.int16)), str(p))
    return p


def _image_4d(d: Path) -> Path:
    p = d / "dwi.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([sitk.Image(8, 8, 8, sitk.sitkInt16)] * 3), str(p))
    return p


def _one_slice(d: Path) -> Path:
    p = d / "thin.nrrd"
    sitk.WriteImage(sitk.Image(16, 16, 1, sitk.sitkInt16), str(p))
    return p


def _with_value(d: Path, value: float, name: str) -> Path:
    a = np.full((8, 9, 10), -100.0, np.float32)
    a[3, 4, 5] = value
    p = d / name
    sitk.WriteImage(sitk.GetImageFromArray(a), str(p))
    return p


def _empty_file(d: Path) -> Path:
    p = d / "empty.nii.gz"
    p.write_bytes(b"")
    return p


def _rgb_image(d: Path) -> Path:
    p = d / "photo.nrrd"
    sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkVectorUInt8, 3), str(p))
    return p


IMAGE_FILE_CASES = {
    # case: (builder, message that must appear)
    "text_renamed": (_text_as_nifti, r"Cannot read .*report\.nii\.gz as an image"),
    "gzipped_text": (_gzipped_text_as_nifti, r"Cannot read .*zipped_report\.nii\.gz"),
    "empty_file": (_empty_file, r"Cannot read .*empty\.nii\.gz"),
    "2d": (_image_2d, r"is 2D; a 3D volume is needed"),
    "4d": (_image_4d, r"is 4D; a 3D volume is needed"),
    "one_slice": (_one_slice, r"single slice"),
    "rgb": (_rgb_image, r"3 components per voxel"),
    "nan_nifti": (lambda d: _with_value(d, np.nan, "nan.nii.gz"), r"nan\.nii\.gz contains 1 NaN or infinite"),
    "inf_nifti": (lambda d: _with_value(d, np.inf, "inf.nii"), r"inf\.nii contains 1 NaN or infinite"),
    "nan_nrrd": (lambda d: _with_value(d, np.nan, "nan.nrrd"), r"nan\.nrrd contains 1 NaN or infinite"),
    "inf_mha": (lambda d: _with_value(d, -np.inf, "inf.mha"), r"inf\.mha contains 1 NaN or infinite"),
    "missing": (lambda d: d / "does_not_exist.nii.gz", r"Input not found: .*does_not_exist"),
}


def _grid(**kw) -> Image:
    return Image(np.zeros((8, 8, 8), np.int16), **kw)


IMAGE_OBJECT_CASES = {
    "zero_spacing": (lambda: _grid(spacing=(1.0, 0.0, 1.0)), r"zero, negative or invalid spacing \(1, 0, 1\)"),
    "negative_spacing": (lambda: _grid(spacing=(-0.8, 0.8, 2.0)), r"spacing \(-0\.8, 0\.8, 2\)"),
    "nan_spacing": (lambda: _grid(spacing=(1.0, 1.0, float("nan"))), r"invalid spacing \(1, 1, nan\)"),
    "empty_array": (lambda: Image(np.zeros((0, 8, 8), np.int16)), r"empty \(shape \(0, 8, 8\)\)"),
    "2d_array": (lambda: Image(np.zeros((8, 8), np.int16)), r"is 2D"),
    "nan_voxels": (lambda: Image(np.where(np.eye(8)[None].repeat(8, 0) > 0, np.nan, 0.0)), r"64 NaN or infinite"),
    "singular_direction": (lambda: _grid(direction=np.diag([1.0, 1.0, 0.0])), r"direction matrix"),
}


@pytest.mark.parametrize("case", sorted(IMAGE_FILE_CASES))
def test_bad_image_file_api(case, small_model, tmp_path):
    build, msg = IMAGE_FILE_CASES[case]
    path = build(tmp_path)
    with pytest.raises(InvalidImageError, match=msg):
        medsegai.segment(path, model=small_model, device="cpu")


@pytest.mark.parametrize("case", sorted(IMAGE_OBJECT_CASES))
def test_bad_image_object_api(case, small_model):
    build, msg = IMAGE_OBJECT_CASES[case]
    with pytest.raises(InvalidImageError, match=msg):
        medsegai.segment(build(), model=small_model, device="cpu")


def _cli(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_clean_failure(rc, err, msg, out_dir: Path):
    assert rc == 1, err
    assert "Traceback" not in err
    # progress lines may come first; the last line is the error, and it stands alone
    assert err.strip().splitlines()[-1].startswith("medsegai: error: "), err
    import re

    assert re.search(msg, err), err
    # no output at all: neither files nor the output folder itself
    assert not out_dir.exists() or not any(out_dir.rglob("*"))


@pytest.mark.parametrize("case", sorted(IMAGE_FILE_CASES))
def test_bad_image_file_cli(case, small_model, tmp_path, capsys):
    build, msg = IMAGE_FILE_CASES[case]
    path = build(tmp_path)
    out_dir = tmp_path / "out"
    rc, _out, err = _cli(["segment", "-i", path, "-o", out_dir, "--model", small_model, "--device", "cpu"], capsys)
    _assert_clean_failure(rc, err, msg, out_dir)


# ---------------------------------------------------------------------------------------------
# model folders


def _copy(small_model: Path, dest: Path) -> Path:
    target = dest / small_model.parent.name / small_model.name
    shutil.copytree(small_model, target)
    return target


def _drop(rel):
    def f(m: Path):
        (m / rel).unlink()
    return f


def _edit_plans(m: Path):
    p = json.loads((m / "plans.json").read_text())
    kw = p["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    kw["features_per_stage"] = [2 * f for f in kw["features_per_stage"]]
    (m / "plans.json").write_text(json.dumps(p))


def _extra_label(m: Path):
    d = json.loads((m / "dataset.json").read_text())
    d["labels"]["tumour"] = len(d["labels"])
    (m / "dataset.json").write_text(json.dumps(d))


def _truncate(m: Path):
    c = m / "fold_0" / "checkpoint_final.pth"
    data = c.read_bytes()
    c.write_bytes(data[: len(data) // 2])


def _empty_ckpt(m: Path):
    (m / "fold_0" / "checkpoint_final.pth").write_bytes(b"")


def _random_ckpt(m: Path):
    (m / "fold_0" / "checkpoint_final.pth").write_bytes(np.random.default_rng(1).bytes(4096))


def _no_weights(m: Path):
    torch.save({"trainer_name": "x", "current_epoch": 3}, m / "fold_0" / "checkpoint_final.pth")


def _broken_json(m: Path):
    (m / "dataset.json").write_text('{"labels": {"background": 0,')


def _stages_mismatch(m: Path):
    p = json.loads((m / "plans.json").read_text())
    p["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["n_stages"] = 7
    (m / "plans.json").write_text(json.dumps(p))


MODEL_CASES = {
    "no_plans": (_drop("plans.json"), r"missing plans\.json"),
    "no_dataset": (_drop("dataset.json"), r"missing dataset\.json"),
    "no_checkpoint": (_drop("fold_0/checkpoint_final.pth"), r"no fold_N/checkpoint_final\.pth"),
    "plans_mismatch": (_edit_plans, r"fold 0 .* does not match the network its plans describe: size mismatch"),
    "labels_mismatch": (_extra_label, r"does not match the network .*seg_layers"),
    "stages_mismatch": (_stages_mismatch, r"plans are inconsistent: features_per_stage has 4 entries, expected 7"),
    "truncated": (_truncate, r"checkpoint_final\.pth is corrupt or truncated"),
    "empty_checkpoint": (_empty_ckpt, r"checkpoint_final\.pth is empty \(0 bytes\)"),
    "random_bytes": (_random_ckpt, r"corrupt or not a PyTorch checkpoint"),
    "no_weights": (_no_weights, r"holds no network weights"),
    "broken_json": (_broken_json, r"dataset\.json is not valid JSON"),
}


@pytest.fixture(scope="module")
def tiny_image() -> Image:
    return Image(np.random.default_rng(0).integers(-200, 200, (16, 24, 24)).astype(np.int16), spacing=(3.0, 3.0, 3.0))


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_bad_model_folder_api(case, small_model, tmp_path, tiny_image):
    damage, msg = MODEL_CASES[case]
    m = _copy(small_model, tmp_path)
    damage(m)
    with pytest.raises(InvalidModelError, match=msg) as info:
        medsegai.segment(tiny_image, model=m, device="cpu")
    # the wrong file is named so the user knows which download to repeat
    assert str(m) in str(info.value) or case in ("stages_mismatch",)


@pytest.mark.parametrize("case", ["no_plans", "plans_mismatch", "truncated", "empty_checkpoint"])
def test_bad_model_folder_cli(case, small_model, tmp_path, ct_crop, capsys):
    damage, msg = MODEL_CASES[case]
    m = _copy(small_model, tmp_path)
    damage(m)
    out_dir = tmp_path / "out"
    rc, _o, err = _cli(["segment", "-i", ct_crop, "-o", out_dir, "--model", m, "--device", "cpu"], capsys)
    _assert_clean_failure(rc, err, msg, out_dir)


def test_missing_model_folder(tmp_path, tiny_image):
    with pytest.raises(MedSegAIError, match="not found|not installed"):
        medsegai.segment(tiny_image, model=tmp_path / "no_such_model", device="cpu")


# ---------------------------------------------------------------------------------------------
# options


OPTION_CASES = {
    "unknown_device": (dict(device="tpu"), ["--device", "tpu"], RunRequestError, r"Unknown device 'tpu'"),
    "zero_threads": (dict(threads=0), ["--threads", "0"], RunRequestError, r"threads must be at least 1"),
    "roi_typo": (dict(roi_subset=["livr"]), ["--roi-subset", "livr"], MedSegAIError,
                 r"Unknown structure\(s\) for this model: 'livr' \(did you mean liver\?\)"),
}
if not torch.cuda.is_available():
    OPTION_CASES["cuda_without_gpu"] = (dict(device="cuda"), ["--device", "cuda"], DeviceError,
                                        r"no CUDA GPU is available.*--device cpu")
else:
    OPTION_CASES["missing_gpu_index"] = (dict(device="cuda:99"), ["--device", "cuda:99"], DeviceError,
                                         r"GPU 99 does not exist")


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_bad_options_api(case, small_model, tiny_image):
    kw, _argv, exc, msg = OPTION_CASES[case]
    with pytest.raises(exc, match=msg):
        medsegai.segment(tiny_image, model=small_model, **kw)


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_bad_options_cli(case, small_model, tmp_path, ct_crop, capsys):
    _kw, argv, _exc, msg = OPTION_CASES[case]
    out_dir = tmp_path / "out"
    rc, _o, err = _cli(["segment", "-i", ct_crop, "-o", out_dir, "--model", small_model, *argv], capsys)
    _assert_clean_failure(rc, err, msg, out_dir)


def test_unknown_task_and_quality(tiny_image, tmp_path, ct_crop, capsys):
    with pytest.raises(MedSegAIError, match=r"Unknown task 'totl' \(known: .*total"):
        medsegai.segment(tiny_image, task="totl")
    with pytest.raises(MedSegAIError, match=r"Unknown quality 'slow'"):
        medsegai.segment(tiny_image, task="total", quality="slow")
    with pytest.raises(MedSegAIError, match=r"'livr' \(did you mean liver\?\)"):
        medsegai.segment(tiny_image, task="total", roi_subset=["livr"])
    rc, _o, err = _cli(["segment", "-i", ct_crop, "-o", tmp_path / "o", "-ta", "totl"], capsys)
    _assert_clean_failure(rc, err, r"Unknown task 'totl'", tmp_path / "o")


def test_output_path_is_a_file_cli(small_model, tmp_path, ct_crop, capsys):
    """An output 'folder' that is an existing file: a one-line error, not an OSError traceback."""
    blocker = tmp_path / "results"
    blocker.write_text("I am a file")
    rc, _o, err = _cli(["segment", "-i", ct_crop, "-o", blocker, "--model", small_model, "--device", "cpu",
                        "--ml", "-q"], capsys)
    assert rc == 1 and "Traceback" not in err and "results" in err
    assert blocker.read_text() == "I am a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


@pytest.mark.parametrize("case", ["text_renamed", "nan_nifti"])
def test_cli_subprocess_reports_without_traceback(case, small_model, tmp_path):
    """The installed entry point as a user runs it: exit code 1, one clear line on stderr."""
    build, msg = IMAGE_FILE_CASES[case]
    path = build(tmp_path)
    out_dir = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "medsegai.cli", "segment", "-i", str(path), "-o", str(out_dir),
                           "--model", str(small_model), "--device", "cpu"], capture_output=True, text=True,
                          timeout=120)
    _assert_clean_failure(proc.returncode, proc.stderr, msg, out_dir)
    assert proc.stdout == ""
