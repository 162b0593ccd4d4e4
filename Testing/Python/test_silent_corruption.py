"""Inputs that SimpleITK reads without complaint into a wrong image: each is now a clear error naming the
file and the problem, through the Python API and the CLI, and nothing is written."""
from __future__ import annotations

import gzip
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from medsegai.cli import main
from medsegai.errors import InvalidImageError
from medsegai.io.read import read_image

PANCREAS = Path("ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom")


def _refused(path: Path, words: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(InvalidImageError, match=words):
        read_image(path)
    out = tmp_path / "out"
    assert main(["segment", "-i", str(path), "-o", str(out), "--device", "cpu", "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("medsegai: error: ") and re.search(words, err[-1]), err
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()


def test_truncated_nifti_gz_is_refused(ts_ref, tmp_path, capsys):
    data = (ts_ref / "example_ct.nii.gz").read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) // 3])  # what an interrupted download leaves
    _refused(cut, "cut.nii.gz is truncated", tmp_path, capsys)


def test_truncated_uncompressed_nifti_is_refused(ts_ref, tmp_path, capsys):
    raw = gzip.open(ts_ref / "example_ct_sm.nii.gz").read()
    cut = tmp_path / "cut.nii"
    cut.write_bytes(raw[: len(raw) - 5000])
    _refused(cut, r"cut.nii is truncated: it holds \d+ of its \d+ voxels", tmp_path, capsys)


def test_zero_pixdim_without_sform_is_refused(ts_ref, tmp_path, capsys):
    raw = bytearray(gzip.open(ts_ref / "example_ct_sm.nii.gz").read())
    raw[80:84] = struct.pack("<f", 0.0)  # pixdim[1]: the i spacing
    raw[252:256] = struct.pack("<hh", 0, 0)  # qform_code, sform_code: nothing else says the geometry
    bad = tmp_path / "zero_spacing.nii.gz"
    bad.write_bytes(gzip.compress(bytes(raw)))
    _refused(bad, r"zero_spacing.nii.gz has zero, negative or invalid spacing \(0, 3, 3\)", tmp_path, capsys)


@pytest.fixture
def series(data_dir, tmp_path):
    folder = tmp_path / "series"
    shutil.copytree(data_dir / PANCREAS, folder)
    return folder


def test_dicom_series_with_a_truncated_slice_names_it(series, tmp_path, capsys):
    victim = series / "1-060.dcm"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    _refused(series, "1-060.dcm in .* cannot be read", tmp_path, capsys)


def test_dicom_series_with_a_missing_slice_names_the_gap(series, tmp_path, capsys):
    (series / "1-060.dcm").unlink()
    _refused(series, "a slice is missing between 1-061.dcm and 1-059.dcm", tmp_path, capsys)


def test_dicom_series_with_a_duplicated_slice(series, tmp_path, capsys):
    shutil.copy(series / "1-060.dcm", series / "copy-of-60.dcm")
    with pytest.raises(InvalidImageError, match="two slices at the same position|cannot be read"):
        read_image(series)


def test_whole_series_still_reads_with_its_real_spacing(data_dir, ts_ref):
    image = read_image(data_dir / PANCREAS)
    assert image.array.shape == (134, 512, 512)
    np.testing.assert_allclose(image.spacing[2], 3.0, atol=1e-3)
    # The header's SliceThickness says 3 mm, the positions 2 mm apart: the positions win.
    np.testing.assert_allclose(read_image(ts_ref / "example_ct_dicom").spacing[2], 2.0, atol=1e-3)
