"""A derived DICOM series from a NIfTI/NRRD/MHA volume, so a DICOM SEG has source slices to reference.

A DICOM SEG without its source series is not viewable in a PACS; a volume that was never DICOM
(research NIfTI) gets a derived series written here, one slice per file, with the volume's exact
geometry (every orientation, RAS or LPS or oblique): store both in the PACS. The image type says
DERIVED\\SECONDARY so nobody mistakes it for the scanner's original.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidImageError
from .image import Image

_SOP_CLASS = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}


def write_dicom_series(image: Image, folder: str | os.PathLike, *, modality: str = "CT",
                       series_description: str = "MedSegAI derived series", patient_id: str = "ANONYMOUS") -> Path:
    """Write ``image`` as ``folder/slice_0000.dcm`` ...; returns the folder. Voxels are stored as int16
    (CT: Hounsfield units as they are; other values are rounded, and refused if they do not fit)."""
    if modality not in _SOP_CLASS:
        raise InvalidImageError(f"Unknown modality '{modality}' for a derived series (use CT or MR).")
    arr = image.array
    if arr.size and (np.nanmin(arr) < -32768 or np.nanmax(arr) > 32767):
        raise InvalidImageError("The image values do not fit the int16 pixels of a derived DICOM series.")
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise InvalidImageError(f"The folder {folder} for the derived DICOM series is not empty.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Written into a hidden folder beside the target and renamed at the end: never half a series.
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        _write_slices(image, tmp_dir, modality, series_description, patient_id)
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(tmp_dir, folder)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return folder


def _write_slices(image: Image, folder: Path, modality: str, series_description: str, patient_id: str) -> None:
    from pydicom.uid import generate_uid

    arr = image.array
    vol = image.with_array(np.rint(arr).astype(np.int16)).to_sitk()
    d = image.direction
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    now_date, now_time = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
    common = {
        "0008|0008": "DERIVED\\SECONDARY\\AXIAL", "0008|0016": _SOP_CLASS[modality], "0008|0060": modality,
        "0008|0020": now_date, "0008|0030": now_time, "0008|0021": now_date, "0008|0031": now_time,
        "0008|103e": series_description[:64], "0008|0070": "MedSegAI", "0010|0010": f"{patient_id}^",  # family name only, as DICOM PN spells it
        "0010|0020": patient_id, "0020|000d": study, "0020|000e": series, "0020|0052": frame,
        "0020|0010": "1", "0020|0011": "1", "0028|1052": "0", "0028|1053": "1",
        # Row direction (i) then column direction (j), in LPS: what DICOM and SimpleITK both use.
        "0020|0037": "\\".join(f"{v:.10g}" for v in (*d[:, 0], *d[:, 1])),
        "0018|0050": f"{image.spacing[2]:.10g}",
    }
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # our UIDs, not GDCM's fresh ones per file
    for k in range(vol.GetDepth()):
        sl = vol[:, :, k]
        for tag, value in common.items():
            sl.SetMetaData(tag, value)
        position = vol.TransformIndexToPhysicalPoint((0, 0, k))
        sl.SetMetaData("0020|0032", "\\".join(f"{v:.10g}" for v in position))
        sl.SetMetaData("0020|0013", str(k + 1))
        sl.SetMetaData("0008|0018", generate_uid())
        writer.SetFileName(str(folder / f"slice_{k:04d}.dcm"))
        writer.Execute(sl)


__all__ = ["write_dicom_series"]
