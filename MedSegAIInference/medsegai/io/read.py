"""Reading CT/MR volumes from NIfTI, NRRD, MHA and DICOM series folders with SimpleITK."""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import List, Tuple

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidImageError
from .dicom_checks import check_slice_geometry, check_unreadable_files
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
    series_folder = Path(files[0]).parent
    check_unreadable_files(series_folder, files)
    check_slice_geometry(series_folder, files)
    # GDCM sorts by ImagePositionPatient and derives the slice spacing from positions, not from
    # SliceThickness (which lies in some series, e.g. the TotalSegmentator DICOM example).
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOff()
    return reader.Execute()


_NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8",
                 1280: "u8"}


def _check_nifti(path: Path) -> None:
    """What SimpleITK's NIfTI reader (niftilib) lets through silently, read from the file itself:

    * a truncated file (a cut download): niftilib fills the missing voxels with 0 and the image
      looks whole;
    * zero spacing in ``pixdim`` without an sform: niftilib sets it to 1 mm, so the geometry is wrong;
    * NaN/Inf voxels in a float file: niftilib reads them as 0.

    The voxel data is streamed once (never a second copy of the volume). Files this parser does not
    understand (NIfTI headers it cannot parse, unusual data types) are left to SimpleITK.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        try:
            hdr = fh.read(540)
        except gzip.BadGzipFile:
            return  # not gzip at all (a mislabelled file): SimpleITK's own error says it cannot be read
        except (EOFError, OSError) as exc:
            raise InvalidImageError(f"Image {path.name} is truncated or corrupt ({exc}).") from None
        for e in "<>":
            size = int(np.frombuffer(hdr[:4], e + "i4")[0]) if len(hdr) >= 4 else 0
            if size == 348 and len(hdr) >= 348:
                dtype_code = int(np.frombuffer(hdr[70:72], e + "i2")[0])
                dims = np.frombuffer(hdr[40:56], e + "i2").astype(np.int64)
                pixdim = np.frombuffer(hdr[76:108], e + "f4").astype(np.float64)
                offset = int(np.frombuffer(hdr[108:112], e + "f4")[0])
                sform_code = int(np.frombuffer(hdr[254:256], e + "i2")[0])
                minimum_offset = 352
                break
            if size == 540 and len(hdr) >= 540:
                dtype_code = int(np.frombuffer(hdr[12:14], e + "i2")[0])
                dims = np.frombuffer(hdr[16:80], e + "i8")
                pixdim = np.frombuffer(hdr[104:168], e + "f8")
                offset = int(np.frombuffer(hdr[168:176], e + "i8")[0])
                sform_code = int(np.frombuffer(hdr[348:352], e + "i4")[0])
                minimum_offset = 544
                break
        else:
            return
        if not 1 <= dims[0] <= 7 or dtype_code not in _NIFTI_DTYPES:
            return
        spatial = pixdim[1:min(int(dims[0]), 3) + 1]
        if sform_code == 0 and (not np.all(np.isfinite(spatial)) or np.any(spatial <= 0)):
            raise InvalidImageError(
                f"Image {path.name} has zero, negative or invalid spacing {_fmt(spatial)} mm in its header "
                "(pixdim, with no sform to take the geometry from).")
        dtype = np.dtype(e + _NIFTI_DTYPES[dtype_code])
        expected = int(np.prod(np.maximum(dims[1:dims[0] + 1], 1)))
        try:
            fh.seek(max(offset, minimum_offset))
            found, bad = 0, 0
            chunk = (16 << 20) // dtype.itemsize
            while found < expected:
                buf = fh.read(min(chunk, expected - found) * dtype.itemsize)
                if not buf:
                    break
                vals = np.frombuffer(buf[: len(buf) // dtype.itemsize * dtype.itemsize], dtype)
                if dtype.kind == "f":
                    bad += int(vals.size - np.count_nonzero(np.isfinite(vals)))
                found += vals.size
        except (EOFError, OSError, zlib.error) as exc:  # gzip: the compressed stream ends early or is corrupt
            raise InvalidImageError(f"Image {path.name} is truncated or corrupt: its compressed data ends early "
                                    f"({exc}).") from None
    if found < expected:
        raise InvalidImageError(f"Image {path.name} is truncated: it holds {found} of its {expected} voxels.")
    if bad:
        raise InvalidImageError(
            f"Image {path.name} contains {bad} NaN or infinite voxel(s) (SimpleITK would have read them as 0).")


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def read_image(path: str | os.PathLike, *, validate: bool = True) -> Image:
    """Load a 3D image file or DICOM series folder; raises InvalidImageError with the reason."""
    p = Path(path)
    if not p.exists():
        raise InvalidImageError(f"Input not found: {p}")
    if validate and p.is_file() and p.name.lower().endswith((".nii", ".nii.gz")):
        _check_nifti(p)
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
