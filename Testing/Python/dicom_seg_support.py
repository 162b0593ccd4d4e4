"""Real DICOM series for the DICOM SEG tests, one per orientation the shared data holds."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk

PANCREAS = Path("ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom")


def jpeg2000_series(ts_ref: Path, dest: Path) -> Path:
    """TotalSegmentator's JPEG2000 series with the UIDs its anonymisation blanked put back (from the file
    meta, plus new study/series UIDs); pixel data (still JPEG2000) and geometry are untouched."""
    import pydicom
    from pydicom.uid import generate_uid

    dest.mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    for f in sorted((ts_ref / "example_ct_dicom").iterdir()):
        ds = pydicom.dcmread(str(f))
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID = ds.PatientID or "TS-EXAMPLE"
        ds.save_as(str(dest / f"{f.name}.dcm"), enforce_file_format=True)
    return dest


def pancreas_crop(data_dir: Path, dest: Path, first: int = 60, count: int = 12) -> Path:
    """``count`` neighbouring slices of the full-size pancreas CT series (its own files, copied)."""
    from medsegai.io.dicom_series_select import find_series

    (series,) = find_series(data_dir / PANCREAS)
    dest.mkdir(parents=True)
    for f in series.files[first:first + count]:
        shutil.copy(f, dest / Path(f).name)
    return dest


def derived_series(nifti: Path, dest: Path, modality: str) -> Path:
    from medsegai.cli import main

    assert main(["convert", str(nifti), "-o", str(dest), "--modality", modality, "-q"]) == 0
    return dest


def centroid_lps(volume, value: int) -> np.ndarray:
    """Centre of a label in patient LPS millimetres, from a highdicom Volume's own affine."""
    idx = np.argwhere(volume.array == value)
    assert len(idx), f"label {value} is absent"
    return (volume.affine @ np.append(idx.mean(axis=0), 1.0))[:3]


def labels_on(reference_image, labels_path: Path) -> np.ndarray:
    """A label file resampled (nearest, in patient space) onto a reference Image's grid."""
    ref = reference_image.to_sitk()
    lab = sitk.ReadImage(str(labels_path))
    return sitk.GetArrayFromImage(sitk.Resample(lab, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                sitk.sitkUInt8))
