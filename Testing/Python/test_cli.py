"""``medsegai`` command line: version, outputs per mode, preview, TotalSegmentator-style flags."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import medsegai
from medsegai.cli import build_parser, main
from medsegai.io import read_image, read_seg_nrrd


@pytest.fixture(scope="module")
def ct_crop(ts_ref, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ct") / "ct_crop.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(ts_ref / "example_ct_sm.nii.gz"))[30:94, 20:84, :], str(path))
    return path


def _run(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out, err


def test_version_subprocess():
    proc = subprocess.run([sys.executable, "-m", "medsegai.cli", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"medsegai {medsegai.__version__}"


@pytest.fixture(scope="module")
def folder_run(small_model, ct_crop, tmp_path_factory):
    """One full CLI run into a folder, with the preview (shared by the checks below)."""
    out_dir = tmp_path_factory.mktemp("cli") / "out"
    rc = main(["segment", "-i", str(ct_crop), "-o", str(out_dir), "--model", str(small_model), "--device", "cpu",
               "--preview", "-q"])
    assert rc == 0
    return out_dir


def test_folder_output_files(folder_run, ct_crop, small_model):
    names = sorted(p.name for p in folder_run.iterdir())
    assert names == ["masks", "segmentation.nii.gz", "segmentation.seg.nrrd", "segmentation_labels.csv",
                     "segmentation_preview.png"]
    image = read_image(ct_crop)
    labels = read_image(folder_run / "segmentation.nii.gz")
    assert labels.same_grid(image, atol=1e-4)  # the input's exact grid
    assert labels.array.dtype == np.uint8 and labels.array.max() > 0
    seg, segs = read_seg_nrrd(folder_run / "segmentation.seg.nrrd")
    np.testing.assert_array_equal(seg.array, labels.array)
    assert seg.same_grid(image, atol=1e-4)
    model_labels = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5, "stomach": 6,
                    "pancreas": 7}
    assert {s.name: s.value for s in segs} == model_labels
    assert all(len(s.color) == 3 and all(0 <= c <= 1 for c in s.color) for s in segs)
    with open(folder_run / "segmentation_labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["name"]: int(r["value"]) for r in rows} == model_labels
    masks = sorted(p.name for p in (folder_run / "masks").iterdir())
    assert masks == sorted(f"{n}.nii.gz" for n in model_labels)
    liver = read_image(folder_run / "masks" / "liver.nii.gz")
    np.testing.assert_array_equal(liver.array, (labels.array == 5).astype(np.uint8))


def test_preview_png(folder_run):
    from PIL import Image as PILImage

    with PILImage.open(folder_run / "segmentation_preview.png") as im:
        im.load()
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size[0] == 3 * 320 + 40  # three 320-pixel views side by side
        assert 300 < im.size[1] < 700
        arr = np.asarray(im)
    # not a blank canvas: the image panels carry grey levels and label colours
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 100


def test_ml_writes_no_masks(small_model, ct_crop, tmp_path, capsys):
    out, _err = _run(["segment", "-i", ct_crop, "-o", tmp_path / "o", "--model", small_model, "--device", "cpu",
                      "--ml"], capsys)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "segmentation.nii.gz", "segmentation.seg.nrrd", "segmentation_labels.csv"]
    assert "nifti:" in out and "device: cpu" in out


def test_file_output_writes_exactly_there(small_model, ct_crop, tmp_path, capsys):
    target = tmp_path / "results" / "case1.nii.gz"
    _run(["segment", "-i", ct_crop, "-o", target, "--model", small_model, "--device", "cpu", "-q"], capsys)
    assert [p.name for p in target.parent.iterdir()] == ["case1.nii.gz"]
    assert read_image(target).same_grid(read_image(ct_crop), atol=1e-4)


def test_failed_write_removes_partial_outputs(small_model, ct_crop, tmp_path, capsys):
    """A write failing half-way (here: 'masks' exists as a file) removes the files this run wrote
    and leaves what was there before."""
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    (out_dir / "masks").write_text("not a folder")
    (out_dir / "notes.txt").write_text("mine")
    rc = main(["segment", "-i", str(ct_crop), "-o", str(out_dir), "--model", str(small_model), "--device", "cpu",
               "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and "masks" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["masks", "notes.txt"]


def test_totalsegmentator_flags_parse():
    p = build_parser()
    a = p.parse_args(["segment", "-i", "ct.nii.gz", "-o", "out", "-ta", "total", "--fast", "-rs", "liver", "spleen",
                      "--ml", "-d", "cpu", "-nt", "2"])
    assert (a.task, a.fast, a.fastest, a.roi_subset, a.ml, a.device, a.threads) == (
        "total", True, False, ["liver", "spleen"], True, "cpu", 2)
    a = p.parse_args(["segment", "-i", "x", "-o", "y", "--fastest", "--roi_subset", "aorta", "--task", "total"])
    assert a.fastest and a.roi_subset == ["aorta"] and a.task == "total"
    a = p.parse_args(["segment", "-i", "x", "-o", "y", "--roi-subset", "aorta"])
    assert a.roi_subset == ["aorta"] and not a.fast and not a.ml
    with pytest.raises(SystemExit) as e:
        p.parse_args(["segment", "-i", "x", "-o", "y", "--fast", "--fastest"])
    assert e.value.code == 2


def test_fast_flag_reaches_the_pipeline(ct_crop, tmp_path, capsys):
    """--fast selects the 3 mm model of the task: with no weights installed in an empty folder the
    error names that model, which proves the flag was honoured."""
    rc = main(["segment", "-i", str(ct_crop), "-o", str(tmp_path / "o"), "-ta", "total", "--fast", "--model",
               str(tmp_path / "no_models"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "297" in err or "3mm" in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name, kind", [("seg.seg.nrrd", "seg_nrrd"), ("seg.nii.gz", "nifti"), ("seg.nii", "nifti"),
                                        ("seg.nrrd", "nrrd")])
def test_output_path_with_a_label_suffix_is_that_file(name, kind, folder_run, small_model, ct_crop, tmp_path, capsys):
    """A path ending in a label format is one file of that format, its side files beside it with its stem
    (an output path ending in .seg.nrrd used to become a folder of that name)."""
    out = tmp_path / "results" / name
    _run(["segment", "-i", ct_crop, "-o", out, "--model", small_model, "--device", "cpu", "--uncertainty", "entropy",
          "--preview", "-q"], capsys)
    assert out.is_file(), f"{out} is not a file"
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [name, "seg_uncertainty.nii.gz", "seg_confidence.csv", "seg_preview.png"])
    reference = read_image(folder_run / "segmentation.nii.gz")
    labels = read_seg_nrrd(out)[0] if kind == "seg_nrrd" else read_image(out)
    assert labels.same_grid(reference, atol=1e-4)
    np.testing.assert_array_equal(labels.array, reference.array)


def test_a_subcommand_missing_a_dependency_says_so_and_a_broken_one_raises(tmp_path, monkeypatch, capsys):
    import medsegai.cli as cli

    (tmp_path / "needs_dep.py").write_text("import a_package_that_is_not_installed\n")
    (tmp_path / "medsegai_broken_probe.py").write_text("import medsegai.no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", {"extra": "needs_dep"})
    assert main(["extra", "--flag"]) == 1
    assert "'medsegai extra' needs the Python package 'a_package_that_is_not_installed'" in capsys.readouterr().err
    # A missing module of our own is a bug: it must not be hidden as an optional part.
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", {"broken": "medsegai_broken_probe"})
    with pytest.raises(ModuleNotFoundError, match="medsegai.no_such_module"):
        build_parser()
