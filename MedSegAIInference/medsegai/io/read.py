"""Reading CT/MR volumes from NIfTI, NRRD, MHA and DICOM series folders with SimpleITK."""
from __future__ import annotations

import os
from pathlib import Path

import SimpleITK as sitk

from ..errors import InvalidImageError
from .image import Image, validate_image

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def _read_dicom_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series_ids = reader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise InvalidImageError(f"No DICOM series found in folder {folder}.")
    # The largest series wins: folders often carry a scout or a dose report beside the CT.
    best = max(series_ids, key=lambda s: len(reader.GetGDCMSeriesFileNames(str(folder), s)))
    files = reader.GetGDCMSeriesFileNames(str(folder), best)
    if len(files) < 2:
        raise InvalidImageError(f"The DICOM series in {folder} has a single slice; a 3D volume is needed.")
    # GDCM sorts by ImagePositionPatient and derives the slice spacing from positions, not from
    # SliceThickness (which lies in some series, e.g. the TotalSegmentator DICOM example).
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOff()
    return reader.Execute()


def read_image(path: str | os.PathLike, *, validate: bool = True) -> Image:
    """Load a 3D image file or DICOM series folder; raises InvalidImageError with the reason."""
    p = Path(path)
    if not p.exists():
        raise InvalidImageError(f"Input not found: {p}")
    try:
        if p.is_dir():
            img = _read_dicom_series(p)
        else:
            img = sitk.ReadImage(str(p))
    except InvalidImageError:
        raise
    except RuntimeError as exc:  # SimpleITK reports every reader failure as RuntimeError
        first = str(exc).strip().splitlines()
        detail = next((ln for ln in first if "ERROR" in ln or "Unable" in ln), first[0] if first else "")
        raise InvalidImageError(f"Cannot read {p} as an image: {detail.strip()}") from None
    if img.GetDimension() == 4 and img.GetSize()[3] == 1:
        img = img[:, :, :, 0]  # a 4D file holding one volume is a 3D image in disguise
    image = Image.from_sitk(img)
    if validate:
        validate_image(image, name=f"Image {p.name}")
    return image
