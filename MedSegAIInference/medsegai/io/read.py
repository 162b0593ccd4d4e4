"""Reading CT/MR volumes from NIfTI, NRRD, MHA and DICOM series folders with SimpleITK."""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidImageError
from .image import Image, validate_image

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def _series_in(folder: Path) -> List[Tuple[int, List[str]]]:
    """(number of files, file names) for each DICOM series directly in ``folder``."""
    reader = sitk.ImageSeriesReader()
    # GDCM prints "No Series were found" on stderr for folders without DICOM; our error says it better.
    warn = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        ids = reader.GetGDCMSeriesIDs(str(folder))
        out = []
        for s in ids:
            files = list(reader.GetGDCMSeriesFileNames(str(folder), s))
            out.append((len(files), files))
        return out
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warn)


def _read_dicom_series(folder: Path, max_depth: int = 3) -> sitk.Image:
    series = _series_in(folder)
    if not series:
        # Archives from TCIA/PACS nest the series below patient/study folders: look a few levels down.
        level = [folder]
        for _ in range(max_depth):
            level = [c for d in level for c in sorted(d.iterdir()) if c.is_dir()]
            series = [s for d in level for s in _series_in(d)]
            if series or not level:
                break
    if not series:
        raise InvalidImageError(f"No DICOM series found in folder {folder} (nor in its subfolders).")
    # The largest series wins: folders often carry a scout or a dose report beside the CT.
    n, files = max(series, key=lambda s: s[0])
    if n < 2:
        raise InvalidImageError(f"The DICOM series in {folder} has a single slice; a 3D volume is needed.")
    # GDCM sorts by ImagePositionPatient and derives the slice spacing from positions, not from
    # SliceThickness (which lies in some series, e.g. the TotalSegmentator DICOM example).
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOff()
    return reader.Execute()


_NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}


def _nifti_nonfinite_count(path: Path) -> Optional[int]:
    """NaN/Inf voxels in a float NIfTI file, counted from the raw data.

    SimpleITK's NIfTI reader (niftilib) silently replaces NaN and Inf by 0, so the loaded array
    can no longer tell; a NaN-corrupted export would be segmented as if it were clean. Returns
    None when the file is not a float NIfTI-1/2 single file this parser understands.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        hdr = fh.read(540)
        for e in "<>":
            size = int(np.frombuffer(hdr[:4], e + "i4")[0]) if len(hdr) >= 4 else 0
            if size == 348 and len(hdr) >= 348:
                dtype_code = int(np.frombuffer(hdr[70:72], e + "i2")[0])
                dims = np.frombuffer(hdr[40:56], e + "i2").astype(np.int64)
                offset = int(np.frombuffer(hdr[108:112], e + "f4")[0])
                break
            if size == 540 and len(hdr) >= 540:
                dtype_code = int(np.frombuffer(hdr[12:14], e + "i2")[0])
                dims = np.frombuffer(hdr[16:80], e + "i8")
                offset = int(np.frombuffer(hdr[168:176], e + "i8")[0])
                break
        else:
            return None
        if dtype_code not in _NIFTI_FLOAT_TYPES or not 1 <= dims[0] <= 7:
            return None
        dtype = np.dtype(e + _NIFTI_FLOAT_TYPES[dtype_code])
        remaining = int(np.prod(np.maximum(dims[1:dims[0] + 1], 1)))
        fh.seek(max(offset, 352 if size == 348 else 544))
        bad = 0
        chunk = (16 << 20) // dtype.itemsize  # stream: never a second copy of the whole volume
        while remaining > 0:
            buf = fh.read(min(chunk, remaining) * dtype.itemsize)
            if not buf:
                break
            vals = np.frombuffer(buf[: len(buf) // dtype.itemsize * dtype.itemsize], dtype)
            bad += int(vals.size - np.count_nonzero(np.isfinite(vals)))
            remaining -= vals.size
        return bad


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
        if p.is_file() and p.name.lower().endswith((".nii", ".nii.gz")) and image.array.dtype.kind == "f":
            try:
                bad = _nifti_nonfinite_count(p)
            except (OSError, EOFError, ValueError):
                bad = None  # SimpleITK read it; an unusual layout this check does not know is not an error
            if bad:
                raise InvalidImageError(
                    f"Image {p.name} contains {bad} NaN or infinite voxel(s) (SimpleITK would have read them as 0)."
                )
    return image
