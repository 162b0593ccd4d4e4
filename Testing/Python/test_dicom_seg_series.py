"""A DICOM folder with several series: the rule, --series, and series whose geometry is wrong."""
from __future__ import annotations

import shutil

import pydicom
import pytest

from dicom_seg_support import jpeg2000_series, pancreas_crop
from medsegai.cli import main
from medsegai.errors import InvalidImageError
from medsegai.io import read_image
from medsegai.io.dicom_series_select import find_series
from medsegai.io.read import read_dicom_series


@pytest.fixture(scope="module")
def mixed(data_dir, ts_ref, tmp_path_factory):
    """A pancreas crop (12 slices), the JPEG2000 series (20 slices) and a SEG, in one folder tree."""
    root = tmp_path_factory.mktemp("mixed")
    pancreas = pancreas_crop(data_dir, root / "a" / "pancreas", count=12)
    jpeg = jpeg2000_series(ts_ref, root / "b" / "jpeg2000")
    shutil.copy(data_dir / "dicom-seg/highdicom/data/test_files/seg_image_ct_binary.dcm", root / "a" / "seg.dcm")
    uid = lambda folder: str(pydicom.dcmread(str(next(folder.iterdir())), stop_before_pixels=True).SeriesInstanceUID)  # noqa: E731
    return root, uid(pancreas), uid(jpeg)


def test_the_rule_picks_the_ct_with_most_slices_and_names_the_others(mixed):
    root, pancreas, jpeg = mixed
    img, chosen, others = read_dicom_series(root)
    assert chosen.uid == jpeg and len(chosen.files) == 20 and img.GetSize()[2] == 20
    assert {o.uid for o in others} >= {pancreas} and any(o.modality == "SEG" for o in others)


def test_series_option_chooses_and_an_unknown_uid_lists_what_is_there(mixed, tmp_path, capsys):
    root, pancreas, jpeg = mixed
    image = read_image(root, series_uid=pancreas)
    assert image.shape[0] == 12
    with pytest.raises(InvalidImageError, match=f"No DICOM series with SeriesInstanceUID 1.2.3.*{jpeg}"):
        read_image(root, series_uid="1.2.3")
    seg_uid = next(s.uid for s in find_series(root) if s.modality == "SEG")
    with pytest.raises(InvalidImageError, match="is a SEG object, not an image series"):
        read_image(root, series_uid=seg_uid)
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", "-i", str(root), "--series", pancreas, "-o", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert f"segmenting {pancreas} (CT, 12 file(s)" in err and jpeg in err and "--series UID" in err
    assert read_image(out).same_grid(image)


@pytest.fixture
def crop(data_dir, tmp_path):
    return pancreas_crop(data_dir, tmp_path / "crop", count=8)


def _edit(folder, name, **changes):
    path = folder / name
    ds = pydicom.dcmread(str(path))
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(str(path))


def test_mixed_orientation_is_named(crop):
    files = find_series(crop)[0].files
    _edit(crop, files[3].split("/")[-1], ImageOrientationPatient=[1, 0, 0, 0, 0.9950042, -0.0998334])
    with pytest.raises(InvalidImageError, match="mixes slice orientations"):
        read_image(crop)


def test_gantry_tilt_is_named(crop):
    files = find_series(crop)[0].files
    for n, f in enumerate(files):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        _edit(crop, f.split("/")[-1], ImagePositionPatient=[x, y + 0.5 * n, z])  # a 10 degree tilt
    with pytest.raises(InvalidImageError, match="gantry tilt or sheared slices"):
        read_image(crop)


def test_uneven_spacing_is_named(crop):
    files = find_series(crop)[0].files
    ds = pydicom.dcmread(files[4], stop_before_pixels=True)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    _edit(crop, files[4].split("/")[-1], ImagePositionPatient=[x, y, z + 0.7])
    with pytest.raises(InvalidImageError, match="uneven slice spacing"):
        read_image(crop)
