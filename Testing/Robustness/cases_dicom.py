"""DICOM series folders and DICOM SEG / seg.nrrd files: mixed series, missing or duplicated slices,
gantry tilt, compressed or mislabelled transfer syntax, no pixel data, header memory bombs."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom

from .cases_images import IMAGE_ENTRIES, base_ct
from .corpus import Inputs, case, data_dir, ts_ref

DICOM_ENTRIES = IMAGE_ENTRIES  # a folder: Slicer's DICOM browser is not the Logic's input
HIGHDICOM = "dicom-seg/highdicom/data/test_files"


def _series(d: Path) -> Path:
    """The real CT crop as a derived DICOM series (30 slices, 3 mm apart, uncompressed)."""
    from medsegai.io.dicom_series_write import write_dicom_series
    from medsegai.io.image import Image

    return write_dicom_series(Image.from_sitk(base_ct()), d / "series")


def _slices(folder: Path):
    return sorted(folder.glob("*.dcm"))


def _edit(path: Path, fn) -> None:
    ds = pydicom.dcmread(path)
    fn(ds)
    ds.save_as(path)


@case("dicom_missing_slice", "DICOM", DICOM_ENTRIES, fast=True, match=r"a slice is missing between")
def _(d):
    s = _series(d)
    _slices(s)[12].unlink()
    return Inputs(input=s)


@case("dicom_duplicated_slice", "DICOM", DICOM_ENTRIES, match=r"two slices at the same position")
def _(d):
    s = _series(d)
    _edit(_slices(s)[13], lambda ds: setattr(ds, "ImagePositionPatient", pydicom.dcmread(_slices(s)[12]).ImagePositionPatient))
    return Inputs(input=s)


@case("dicom_truncated_slice", "DICOM", DICOM_ENTRIES, match=r"cannot be read")
def _(d):
    s = _series(d)
    victim = _slices(s)[7]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return Inputs(input=s)


@case("dicom_uneven_spacing", "DICOM", DICOM_ENTRIES, match=r"uneven slice spacing")
def _(d):
    s = _series(d)

    def nudge(ds):
        p = [float(v) for v in ds.ImagePositionPatient]
        p[2] += 1.0  # one slice 1 mm off its place (3 mm spacing)
        ds.ImagePositionPatient = p
    _edit(_slices(s)[10], nudge)
    return Inputs(input=s)


@case("dicom_gantry_tilt", "DICOM", DICOM_ENTRIES, fast=True, match=r"gantry tilt")
def _(d):
    s = _series(d)
    for n, f in enumerate(_slices(s)):
        def tilt(ds, n=n):
            p = [float(v) for v in ds.ImagePositionPatient]
            p[1] += n * 3.0 * np.tan(np.radians(15))  # 15 degrees: each slice shifts in y
            ds.ImagePositionPatient = p
        _edit(f, tilt)
    return Inputs(input=s)


@case("dicom_mixed_orientation", "DICOM", DICOM_ENTRIES, match=r"mixes slice orientations")
def _(d):
    s = _series(d)
    _edit(_slices(s)[5], lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0, -1]))
    return Inputs(input=s)


@case("dicom_two_series_picks_the_ct", "DICOM (must succeed)", DICOM_ENTRIES, expect="ok",
      verify=lambda labels, inputs, reference: "" if labels.array.shape == (30, 64, 64)
      else f"read the wrong series: labels {labels.array.shape}")
def _(d):
    s = _series(d)
    # A second, smaller series in the same folder (pydicom's MR test file: one slice, another series)
    shutil.copy(data_dir() / "dicom/pydicom-testfiles/MR_small.dcm", s / "zz_other_series.dcm")
    return Inputs(input=s)


@case("dicom_no_pixel_data", "DICOM", DICOM_ENTRIES, fast=True, match=r"(pixel|cannot be read|No DICOM series)")
def _(d):
    s = _series(d)
    for f in _slices(s):
        _edit(f, lambda ds: delattr(ds, "PixelData"))
    return Inputs(input=s)


@case("dicom_one_slice_without_pixels", "DICOM", DICOM_ENTRIES, match=r"(pixel|cannot be read|missing)")
def _(d):
    s = _series(d)
    _edit(_slices(s)[9], lambda ds: delattr(ds, "PixelData"))
    return Inputs(input=s)


@case("dicom_mislabelled_rle", "DICOM (must succeed)", DICOM_ENTRIES, expect="ok",
      verify=lambda labels, inputs, reference: "" if labels.array.shape == (30, 64, 64) else f"labels {labels.array.shape}")
def _(d):
    s = _series(d)
    for f in _slices(s):
        # Says RLE Lossless, holds raw pixels (a broken converter): GDCM reads the pixels as they are. The UID
        # is patched in the bytes (pydicom refuses to write it), same length as the one it replaces.
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        ds.save_as(f, implicit_vr=False, little_endian=True)
        data = f.read_bytes()
        assert data.count(b"1.2.840.10008.1.2.1\0") == 1
        f.write_bytes(data.replace(b"1.2.840.10008.1.2.1\0", b"1.2.840.10008.1.2.5\0"))
    return Inputs(input=s)


# Not through the corpus server: 512x512x20 voxels exceed its 4 MB upload limit (a 413, rightly).
@case("dicom_jpeg2000_real", "DICOM (must succeed)", ("api", "cli", "worker", "batch"), expect="ok",
      verify=lambda labels, inputs, reference: "" if labels.array.shape == (20, 512, 512)
      and abs(labels.spacing[2] - 2.0) < 1e-3 else f"labels {labels.array.shape} spacing {labels.spacing}")
def _(d):
    # TotalSegmentator's example series: JPEG 2000 lossless, SliceThickness says 3 mm, positions 2 mm.
    s = d / "jpeg2000"
    shutil.copytree(ts_ref() / "example_ct_dicom", s)
    return Inputs(input=s)


@case("dicom_rows_bomb", "memory bomb", DICOM_ENTRIES, fast=True, time_limit_s=30,
      match=r"(claims|memory|cannot be read|Cannot read)")
def _(d):
    s = _series(d)
    for f in _slices(s):
        def huge(ds):
            ds.Rows, ds.Columns = 65535, 65535  # 8 GiB a slice, 240 GiB the series; the pixels stay 64x64
        _edit(f, huge)
    return Inputs(input=s)


@case("dicom_text_files", "DICOM", DICOM_ENTRIES, match=r"No DICOM series")
def _(d):
    s = d / "not_dicom"
    s.mkdir()
    for n in range(5):
        (s / f"IM{n:04d}.dcm").write_text("this is a scanned report, not DICOM\n")
    return Inputs(input=s)


@case("dicom_empty_folder", "DICOM", ("api", "cli", "worker", "server"), match=r"No DICOM series")
def _(d):
    s = d / "empty_study"
    s.mkdir()
    return Inputs(input=s)


# -- DICOM SEG and seg.nrrd as inputs of medsegai convert ------------------------------------------
def _seg_file() -> Path:
    return data_dir() / HIGHDICOM / "seg_image_ct_binary.dcm"


@case("dicom_seg_truncated", "DICOM SEG", ("api", "cli"), kind="convert", match=r"not a readable DICOM SEG")
def _(d):
    src = d / "seg.dcm"
    data = _seg_file().read_bytes()
    src.write_bytes(data[: len(data) // 2])
    return Inputs(input=src, output=d / "out.seg.nrrd")


@case("dicom_seg_random_bytes", "DICOM SEG", ("api", "cli"), kind="convert", fast=True,
      match=r"not a (readable )?DICOM SEG")
def _(d):
    src = d / "noise.dcm"
    src.write_bytes(b"\0" * 128 + b"DICM" + np.random.default_rng(3).bytes(5000))
    return Inputs(input=src, output=d / "out.nii.gz")


@case("dicom_seg_reference_missing", "DICOM SEG", ("cli",), kind="convert",
      match=r"(reference|series)")
def _(d):
    src = d / "seg.dcm"
    shutil.copy(_seg_file(), src)
    other = _series(d)  # a real series, but not the one the SEG references
    return Inputs(input=src, output=d / "out.seg.nrrd", reference=other)


@case("seg_nrrd_truncated", "seg.nrrd", ("api", "cli"), kind="convert", match=r"(truncated|Cannot read|cannot be read)")
def _(d):
    from medsegai.io.image import Image
    from medsegai.io.seg_nrrd import write_seg_nrrd
    from medsegai.io.segments import SegmentInfo

    labels = Image.from_sitk(base_ct())
    labels = labels.with_array((labels.array > 100).astype(np.uint8))
    src = write_seg_nrrd(labels, [SegmentInfo(1, "liver", (0.8, 0.4, 0.3))], d / "cut.seg.nrrd")
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    return Inputs(input=src, output=d / "out.dcm", reference=_series(d))


@case("seg_nrrd_is_text", "seg.nrrd", ("api", "cli"), kind="convert", match=r"Cannot read|cannot be read")
def _(d):
    src = d / "labels.seg.nrrd"
    src.write_text("label,name\n1,liver\n")
    return Inputs(input=src, output=d / "out.dcm", reference=_series(d))
