"""Which DICOM series of a folder (tree) to segment, and in which slice order.

Folders exported from a PACS or TCIA hold more than the CT: a scout, a dose report, a second
reconstruction, an earlier SEG. GDCM's series ids split a series by more than its
SeriesInstanceUID and know nothing of modality, so the choice is made here from the headers
(read by GDCM, without pixel data): image series only, CT/MR first, then the most slices.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InvalidImageError

# Objects that are not a stack of image slices, whatever their slice count.
NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "PR", "KO", "REG", "DOC"}
PREFERRED_MODALITIES = ("CT", "MR")


@dataclass
class SeriesInfo:
    uid: str
    modality: str
    description: str
    number: Optional[int]
    study_uid: str = ""
    files: List[str] = field(default_factory=list)  # slice order once sorted (along the slice normal)
    _positions: List[Optional[np.ndarray]] = field(default_factory=list, repr=False)
    _orientation: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def is_image_stack(self) -> bool:
        return self.modality not in NON_IMAGE_MODALITIES

    def summary(self) -> str:
        desc = f" '{self.description}'" if self.description else ""
        return f"{self.uid} ({self.modality or '?'}, {len(self.files)} file(s){desc})"

    def sort_slices(self) -> None:
        """Order the files along the slice normal (what GDCM does), so file names never decide it."""
        if self._orientation is None or any(p is None for p in self._positions):
            return  # check_slice_geometry names the file without a position
        normal = np.cross(self._orientation[:3], self._orientation[3:6])
        order = np.argsort([float(p @ normal) for p in self._positions], kind="stable")
        self.files = [self.files[i] for i in order]
        self._positions = [self._positions[i] for i in order]


class _Header(dict):
    """The few tags the choice needs, read by GDCM (SimpleITK, a core dependency; pydicom is optional)."""


_GDCM_TAGS = {"SeriesInstanceUID": "0020|000e", "StudyInstanceUID": "0020|000d", "Modality": "0008|0060",
              "SeriesDescription": "0008|103e", "SeriesNumber": "0020|0011", "ImagePositionPatient": "0020|0032",
              "ImageOrientationPatient": "0020|0037"}


def _header(path: Path):
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO("GDCMImageIO")
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None  # not DICOM (README, thumbnail) or unreadable: check_unreadable_files names such slices
    out = _Header()
    for name, tag in _GDCM_TAGS.items():
        if reader.HasMetaDataKey(tag):
            value = reader.GetMetaData(tag).strip()
            if name in ("ImagePositionPatient", "ImageOrientationPatient"):
                try:
                    value = [float(v) for v in value.split("\\")]
                except ValueError:
                    value = None
            out[name] = value
    return out


def find_series(root: Path, max_depth: int = 4) -> List[SeriesInfo]:
    """Every series in ``root`` and up to ``max_depth`` folder levels below it (PACS/TCIA archives nest
    the series below patient and study folders)."""
    by_uid: Dict[str, SeriesInfo] = {}
    level = [root]
    for _ in range(max_depth + 1):
        for folder in level:
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                ds = _header(path)
                if ds is None or "SeriesInstanceUID" not in ds:
                    continue
                uid = str(ds["SeriesInstanceUID"])
                info = by_uid.get(uid)
                if info is None:
                    number = ds.get("SeriesNumber")
                    info = by_uid[uid] = SeriesInfo(uid, str(ds.get("Modality", "") or ""),
                                                    str(ds.get("SeriesDescription", "") or ""),
                                                    int(number) if str(number or "").strip().isdigit() else None,
                                                    str(ds.get("StudyInstanceUID", "") or ""))
                info.files.append(str(path))
                pos, ori = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
                info._positions.append(np.array([float(v) for v in pos]) if pos and len(pos) == 3 else None)
                if info._orientation is None and ori and len(ori) == 6:
                    info._orientation = np.array([float(v) for v in ori])
        level = [c for d in level for c in sorted(d.iterdir()) if c.is_dir()]
        if not level:
            break
    for info in by_uid.values():
        info.sort_slices()
    return list(by_uid.values())


def choose_series(series: Sequence[SeriesInfo], series_uid: Optional[str] = None,
                  where: str = "") -> Tuple[SeriesInfo, List[SeriesInfo]]:
    """(the series to segment, the others). ``series_uid`` picks one; otherwise the rule: image
    series only, CT or MR before other modalities, then the most slices."""
    where = f" in {where}" if where else ""
    if series_uid is not None:
        chosen = [s for s in series if s.uid == series_uid]
        if not chosen:
            listing = "; ".join(s.summary() for s in series) or "none"
            raise InvalidImageError(f"No DICOM series with SeriesInstanceUID {series_uid}{where} (found: {listing}).")
        if not chosen[0].is_image_stack:
            raise InvalidImageError(f"Series {series_uid}{where} is a {chosen[0].modality} object, not an image "
                                    "series to segment.")
        return chosen[0], [s for s in series if s.uid != series_uid]
    images = [s for s in series if s.is_image_stack]
    if not images:
        listing = "; ".join(s.summary() for s in series)
        raise InvalidImageError(f"No DICOM image series found{where}" + (f" (only {listing})." if listing else "."))
    best = max(images, key=lambda s: (s.modality in PREFERRED_MODALITIES, len(s.files)))
    return best, [s for s in series if s is not best]


def others_note(chosen: SeriesInfo, others: Sequence[SeriesInfo]) -> Optional[str]:
    """One sentence for the user when the folder held more than the series segmented."""
    if not others:
        return None
    return (f"The folder holds {len(others) + 1} DICOM series; segmenting {chosen.summary()}. Others: "
            + "; ".join(s.summary() for s in others) + ". Choose another with --series UID.")


__all__ = ["SeriesInfo", "find_series", "choose_series", "others_note"]
