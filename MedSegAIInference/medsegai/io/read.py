"""Reading CT/MR volumes from NIfTI, NRRD, MHA and DICOM series folders with SimpleITK."""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidImageError
from .dicom_checks import check_slice_geometry, check_unreadable_files
from .dicom_series_select import SeriesInfo, choose_series, find_series
from .header_checks import check_claimed_size, check_fits_in_memory, check_metaimage_spacing
from .image import Image, validate_image

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def read_dicom_series(folder: Path, series_uid: Optional[str] = None) -> Tuple[sitk.Image, SeriesInfo, List[SeriesInfo]]:
    """(volume, the series read, the other series found) for a folder holding one or more series.

    The series is chosen by rule (see ``dicom_series_select``) or by ``series_uid``; its slices are
    checked (unreadable, missing, duplicated, uneven, tilted, mixed orientation) before stacking.
    """
    series = find_series(folder)
    if not series:
        raise InvalidImageError(f"No DICOM series found in folder {folder} (nor in its subfolders).")
    chosen, others = choose_series(series, series_uid, where=str(folder))
    files = chosen.files
    if len(files) < 2:
        raise InvalidImageError(f"The DICOM series {chosen.uid} in {folder} has a single slice; a 3D volume is needed.")
    for series_folder in dict.fromkeys(Path(f).parent for f in files):
        # Files beside the series that are DICOM yet unreadable may be its lost slices; other series' files are not.
        own = [f for f in files if Path(f).parent == series_folder]
        other_files = [f for s in others for f in s.files if Path(f).parent == series_folder]
        check_unreadable_files(series_folder, own + other_files)
    check_slice_geometry(Path(files[0]).parent, files)
    # Files in slice order along the normal (find_series sorted them); GDCM derives the slice spacing
    # from the positions, not from SliceThickness (which lies in some series, e.g. the TotalSegmentator
    # DICOM example).
    _check_series_size(files, f"{Path(files[0]).parent.name}/ (series {chosen.uid})")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOff()
    return reader.Execute(), chosen, others


def _check_series_size(files: List[str], name: str) -> None:
    """Rows x Columns x slices from the first header against the free memory (a header can lie)."""
    first = sitk.ImageFileReader()
    first.SetFileName(files[0])
    try:
        first.ReadImageInformation()
    except RuntimeError:
        return  # the series read reports it
    columns, rows = first.GetSize()[:2]
    check_fits_in_memory(name, (columns, rows, len(files)), 4)  # GDCM returns int16..float32 voxels


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
                if hdr[344:348] not in (b"n+1\0", b"ni1\0"):
                    # niftilib reads it as Analyze 7.5, whose orientation is a guess: wrong anatomy, no error
                    raise InvalidImageError(f"Image {path.name} has no NIfTI magic in its header (a damaged file, "
                                            "or an Analyze file renamed); its orientation cannot be trusted.")
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
        check_fits_in_memory(path.name, np.maximum(dims[1:dims[0] + 1], 1), dtype.itemsize)
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


def read_image(path: str | os.PathLike, *, validate: bool = True, series_uid: Optional[str] = None) -> Image:
    """Load a 3D image file or DICOM series folder; raises InvalidImageError with the reason.

    A folder with several series: ``series_uid`` picks one, otherwise the rule of
    :func:`~medsegai.io.dicom_series_select.choose_series` (CT/MR, most slices)."""
    p = Path(path)
    if not p.exists():
        raise InvalidImageError(f"Input not found: {p}")
    if validate and p.is_file():
        if p.name.lower().endswith((".nii", ".nii.gz")):
            _check_nifti(p)  # its own header parse checks the claimed size before streaming the voxels
        else:
            check_claimed_size(p)  # before any voxel is read: a header may claim more than memory holds
            if p.name.lower().endswith((".mha", ".mhd")):
                check_metaimage_spacing(p)
    try:
        if p.is_dir():
            img = read_dicom_series(p, series_uid)[0]
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
