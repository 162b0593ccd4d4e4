"""Reading a DICOM SEG (BINARY, FRACTIONAL or LABELMAP) into a label map with highdicom.

highdicom builds the volume from the frames' own positions (``get_volume``), so a SEG that omits empty
frames or lists them in any order comes out on a regular grid; :func:`read_dicom_seg` then resamples
it, nearest neighbour, onto the grid of a reference image (the source series) when one is given.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np
import SimpleITK as sitk

from .dicom_seg_terms import entry_from_codes
from .dicom_seg_write import DicomSegError, highdicom
from .image import Image
from .segments import SegmentInfo, fallback_color


@dataclass
class DicomSegLabels:
    labels: Image  # segment number n -> voxel value n
    segments: List[SegmentInfo]
    referenced_series_uids: List[str]
    notes: List[str] = field(default_factory=list)  # how overlaps or fractional values were resolved
    segmentation_type: str = "BINARY"

    def relabel(self, values_by_name: dict) -> "DicomSegLabels":
        """Label values from a name -> value table (e.g. a model's labels) instead of segment numbers."""
        missing = [s.name for s in self.segments if s.name not in values_by_name]
        if missing:
            raise DicomSegError(f"Segment(s) {', '.join(missing)} have no label value in the table given.")
        top = max([values_by_name[s.name] for s in self.segments], default=0)
        lut = np.zeros(max([s.value for s in self.segments], default=0) + 1, dtype=np.uint8 if top < 256 else np.uint16)
        segs = []
        for s in self.segments:
            lut[s.value] = values_by_name[s.name]
            segs.append(SegmentInfo(int(values_by_name[s.name]), s.name, s.color, s.terminology))
        return DicomSegLabels(self.labels.with_array(lut[self.labels.array]), segs, self.referenced_series_uids,
                              list(self.notes), self.segmentation_type)


def _segment_info(desc, number: int) -> SegmentInfo:
    color = fallback_color(number)
    if "RecommendedDisplayCIELabValue" in desc:
        import highdicom as hd

        rgb = hd.color.CIELabColor.from_dicom_value(desc.RecommendedDisplayCIELabValue).to_rgb(clip=True)  # dcmqi's colours may lie just outside sRGB
        color = tuple(float(c) / 255.0 for c in rgb)
    first = lambda seq: seq[0] if seq else None  # noqa: E731
    term = entry_from_codes(
        first(desc.get("SegmentedPropertyCategoryCodeSequence")), first(desc.get("SegmentedPropertyTypeCodeSequence")),
        first(desc.SegmentedPropertyTypeCodeSequence[0].get("SegmentedPropertyTypeModifierCodeSequence"))
        if "SegmentedPropertyTypeCodeSequence" in desc and desc.SegmentedPropertyTypeCodeSequence else None,
        first(desc.get("AnatomicRegionSequence")), None)
    if "SegmentedPropertyTypeModifierCodeSequence" in desc:  # where our writer and highdicom put laterality
        parts = term.split("~")
        mod = desc.SegmentedPropertyTypeModifierCodeSequence[0]
        parts[3] = f"{mod.CodingSchemeDesignator}^{mod.CodeValue}^{mod.CodeMeaning}"
        term = "~".join(parts)
    return SegmentInfo(number, str(desc.SegmentLabel), color, term)


def _volume_to_image(volume) -> Image:
    """highdicom Volume (array [slice, row, column], LPS affine) -> Image ([k, j, i], LPS direction)."""
    affine = np.asarray(volume.affine, dtype=np.float64)
    cols = affine[:3, [2, 1, 0]]  # i = column index, j = row index, k = slice index
    spacing = np.linalg.norm(cols, axis=0)
    return Image(np.ascontiguousarray(volume.array), tuple(spacing), tuple(affine[:3, 3]), cols / spacing)


def _overlap_counts(seg, numbers) -> dict:
    """Voxels each segment shares with a higher-numbered one (only computed when segments overlap)."""
    taken = None
    lost = {}
    for n in sorted(numbers, reverse=True):
        mask = seg.get_volume(segment_numbers=[n], combine_segments=True, skip_overlap_checks=True).array > 0
        if taken is None:
            taken = np.zeros_like(mask)
        lost[n] = int(np.count_nonzero(mask & taken))
        taken |= mask
    return lost


def _threshold_fractional(seg, numbers, dtype, notes: List[str]):
    """One label per voxel from fractional segments: fraction >= 0.5, the higher segment number winning."""
    volume = seg.get_volume(segment_numbers=numbers, combine_segments=False, rescale_fractional=True)
    fractions = volume.array  # [slice, row, column, segment]
    labels = np.zeros(fractions.shape[:3], dtype=dtype)
    for index, n in enumerate(numbers):
        labels[fractions[..., index] >= 0.5] = n
    notes.append("Fractional segments were turned into labels at a fraction of 0.5 or more.")
    return volume.with_array(labels, channels=None)


def resample_to(labels: Image, reference: Image) -> Image:
    """Nearest-neighbour resampling of a label map onto ``reference``'s grid (0 outside)."""
    if labels.same_grid(reference):
        return reference.with_array(labels.array)
    ref = reference.with_array(np.zeros(reference.shape, dtype=labels.array.dtype)).to_sitk()
    out = sitk.Resample(labels.to_sitk(), ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, ref.GetPixelID())
    return Image.from_sitk(out)


def read_dicom_seg(path: str | os.PathLike, reference: Optional[Image] = None,
                   reference_series_uid: Optional[str] = None) -> DicomSegLabels:
    """The SEG at ``path`` as one label map (value = segment number) with its segments' names, colours and
    codes; on ``reference``'s grid when given (then ``reference_series_uid``, if known, must be the series
    the SEG references). Overlapping segments: the higher segment number wins, and a note says where."""
    from pydicom.errors import InvalidDicomError

    hd = highdicom()
    p = Path(path)
    if not p.is_file():
        raise DicomSegError(f"DICOM SEG not found: {p}")
    try:
        seg = hd.seg.segread(str(p))
    except (InvalidDicomError, AttributeError, ValueError, KeyError, OSError) as exc:
        raise DicomSegError(f"{p.name} is not a readable DICOM SEG ({exc}).") from None
    refs = [str(s.SeriesInstanceUID) for s in seg.get("ReferencedSeriesSequence", [])]
    if reference_series_uid is not None and refs and reference_series_uid not in refs:
        raise DicomSegError(f"{p.name} references series {', '.join(refs)}, not the reference series "
                            f"{reference_series_uid}.")
    numbers = list(seg.segment_numbers)
    seg_type = str(seg.SegmentationType)
    notes: List[str] = []
    dtype = np.uint16 if max(numbers) > 255 else np.uint8
    try:
        if seg_type == "FRACTIONAL":
            volume = _threshold_fractional(seg, numbers, dtype, notes)
        else:
            volume = seg.get_volume(combine_segments=True, dtype=dtype)
    except RuntimeError:  # highdicom refuses to combine overlapping segments unless told how
        seg = hd.seg.segread(str(p))  # the failed combine leaves highdicom's frame index locked
        lost = {n: c for n, c in _overlap_counts(seg, numbers).items() if c}
        volume = seg.get_volume(combine_segments=True, skip_overlap_checks=True,
                                dtype=np.uint16 if max(numbers) > 255 else np.uint8)
        names = {n: str(seg.get_segment_description(n).SegmentLabel) for n in numbers}
        notes.append("Segments overlap; where they do, the higher-numbered segment was kept: "
                     + ", ".join(f"{names[n]} lost {c} voxel(s)" for n, c in sorted(lost.items())) + ".")
    labels = _volume_to_image(volume)
    if reference is not None:
        labels = resample_to(labels, reference)
    segments = [_segment_info(seg.get_segment_description(n), n) for n in numbers if n > 0]  # LABELMAP: 0 is background
    return DicomSegLabels(labels, segments, refs, notes, seg_type)




def reference_labels(path: str | os.PathLike, image: Image, values_by_name: Optional[dict] = None) -> np.ndarray:
    """A reference segmentation for evaluation, from a DICOM SEG or any label file, as an array on
    ``image``'s grid. A SEG's segments get ``values_by_name[name]`` (e.g. TotalSegmentator's values) when
    given, their segment numbers otherwise."""
    from .read import read_image

    p = Path(path)
    if p.is_file() and p.name.lower().endswith(".dcm"):
        seg = read_dicom_seg(p, reference=image)
        return (seg.relabel(values_by_name) if values_by_name else seg).labels.array
    return resample_to(read_image(p, validate=False), image).array


__all__ = ["DicomSegLabels", "read_dicom_seg", "reference_labels", "resample_to"]
