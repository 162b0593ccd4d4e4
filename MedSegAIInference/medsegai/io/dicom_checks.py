"""Checks of a DICOM series before it is stacked into a volume.

GDCM (through SimpleITK) silently drops a slice file it cannot parse, and stacks slices with a gap,
a duplicate, uneven spacing or a gantry tilt into a volume with one averaged spacing: the image
looks whole and its geometry is wrong. Each check here names the slice at fault instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidImageError

# Relative tolerance on the slice step: DICOM positions are decimal strings rounded to ~0.01 mm.
STEP_TOLERANCE = 0.01
STEP_ABS_TOLERANCE_MM = 0.02


def _is_dicom(path: Path) -> bool:
    """A DICOM Part 10 file (preamble + "DICM"), whatever its name."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _header(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """(ImagePositionPatient, ImageOrientationPatient) from the header only."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    position = np.array([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])
    orientation = np.array([float(v) for v in reader.GetMetaData("0020|0037").split("\\")])
    return position, orientation


def check_unreadable_files(folder: Path, series_files: Sequence[str]) -> None:
    """A DICOM file beside the series that the reader could not parse is a slice it would drop."""
    taken = {Path(f).resolve() for f in series_files}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.resolve() not in taken):
        if not _is_dicom(path):
            continue  # DICOMDIR-less folders often hold READMEs, thumbnails, ...
        try:
            _read_info(path)
        except RuntimeError:
            raise InvalidImageError(
                f"The DICOM file {path.name} in {folder} cannot be read (truncated or corrupt); the series "
                "would be missing that slice.") from None


def _read_info(path: Path) -> None:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()


def check_slice_geometry(folder: Path, files: Sequence[str]) -> None:
    """All slices share one orientation, lie on one line along its normal, evenly spaced, once each."""
    headers: List[Tuple[str, np.ndarray, np.ndarray]] = []
    for f in files:
        try:
            position, orientation = _header(f)
        except RuntimeError:
            raise InvalidImageError(
                f"The DICOM file {Path(f).name} in {folder} cannot be read (truncated or corrupt); the series "
                "would be missing that slice.") from None
        except ValueError:
            raise InvalidImageError(f"The DICOM file {Path(f).name} in {folder} has no readable slice position "
                                    "or orientation.") from None
        headers.append((Path(f).name, position, orientation))
    first = headers[0][2]
    for name, _, orientation in headers[1:]:
        if orientation.shape != first.shape or not np.allclose(orientation, first, atol=1e-4):
            raise InvalidImageError(f"The DICOM series in {folder} mixes slice orientations ({headers[0][0]} and "
                                    f"{name} differ); it cannot be stacked into one volume.")
    normal = np.cross(first[:3], first[3:6])
    order = sorted(headers, key=lambda h: float(h[1] @ normal))
    along = np.array([float(h[1] @ normal) for h in order])
    steps = np.diff(along)
    for (a, pa, _), (b, pb, _), step in zip(order, order[1:], steps):
        if step < STEP_ABS_TOLERANCE_MM:
            raise InvalidImageError(f"The DICOM series in {folder} has two slices at the same position "
                                    f"({a} and {b}, {float(pa @ normal):.2f} mm).")
    median = float(np.median(steps))
    tolerance = max(STEP_TOLERANCE * median, STEP_ABS_TOLERANCE_MM)
    for (a, pa, _), (b, pb, _), step in zip(order, order[1:], steps):
        if abs(step - median) > tolerance:
            what = (f"a slice is missing between {a} and {b}" if step > 1.5 * median
                    else f"uneven slice spacing between {a} and {b}")
            raise InvalidImageError(f"The DICOM series in {folder}: {what} ({step:.2f} mm apart; the other slices "
                                    f"are {median:.2f} mm apart).")
        offset = (pb - pa) - step * normal  # the in-plane shift from one slice to the next
        if np.linalg.norm(offset) > tolerance:
            raise InvalidImageError(f"The DICOM series in {folder} has a gantry tilt or sheared slices (from {a} to "
                                    f"{b} the slice shifts {np.linalg.norm(offset):.2f} mm in-plane); it cannot be "
                                    "stacked into a volume without resampling.")
