"""DICOM SEG output with highdicom: one frame per source slice, so viewers and PACS link each frame to
the CT slice it was drawn on.

The label map arrives on the grid SimpleITK built from the series. Rather than trust that grid to
match the files (the TotalSegmentator 2.18 mirroring came from exactly such an assumption), each
source slice's own position and orientation is mapped to its index in the label volume, and any
mismatch is an error.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .. import __version__
from ..atomic import atomic_path
from ..errors import MedSegAIError
from .dicom_seg_terms import codes_from_entry
from .image import Image
from .segments import SegmentInfo

SEG_TYPES = ("BINARY", "LABELMAP")
MANUFACTURER = "MedSegAI"
# Positions are decimal strings rounded to ~0.01 mm; a slice more than this off the grid is not on it.
_POSITION_TOLERANCE_MM = 0.05


class DicomSegError(MedSegAIError):
    """A DICOM SEG cannot be written or read as asked (no source series, no code, geometry mismatch)."""


def highdicom():
    """highdicom, or a one-line error saying how to install it (it is the optional extra ``dicom``)."""
    try:
        import highdicom as hd
    except ImportError:
        raise DicomSegError("DICOM SEG needs the Python package highdicom: pip install 'medsegai[dicom]'") from None
    return hd


@dataclass(frozen=True)
class AlgorithmInfo:
    """What produced the segmentation, recorded in every segment's Algorithm Identification."""
    model_id: str
    weights_sha256: str = ""
    version: str = __version__

    def sequence(self):
        hd = highdicom()
        from pydicom.sr.codedict import codes

        params = {"model": self.model_id}
        if self.weights_sha256:
            params["weights_sha256"] = self.weights_sha256
        return hd.AlgorithmIdentificationSequence(name="MedSegAI", family=codes.cid7162.ArtificialIntelligence,
                                                  version=self.version, source="MedSegAI", parameters=params)


def load_source_datasets(files: Sequence[str]) -> list:
    """Source slice headers, without pixel data: a SEG references the slices, it does not copy them."""
    import pydicom

    return [pydicom.dcmread(str(f), stop_before_pixels=True) for f in files]


_REFERENCE_UIDS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")


def check_referenceable(sources: Sequence) -> None:
    """A SEG points at its source slices by UID: a series anonymised by blanking them cannot be referenced."""
    for ds in sources:
        missing = [k for k in _REFERENCE_UIDS if not str(ds.get(k, "") or "").strip()]
        if missing:
            name = Path(str(getattr(ds, "filename", "") or "?")).name
            raise DicomSegError(f"Source slice {name} has no {', '.join(missing)} (blanked by anonymisation?); a DICOM "
                                "SEG must reference its source slices by these UIDs.")


def frame_indices(labels: Image, sources: Sequence) -> List[int]:
    """For each source slice, its k index in ``labels``; raises if a slice is not one of the grid's planes."""
    direction, spacing = labels.direction, np.asarray(labels.spacing)
    n_k, n_j, n_i = labels.shape
    out: List[int] = []
    for ds in sources:
        name = getattr(ds, "filename", None) or ds.SOPInstanceUID
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        if not (np.allclose(iop[:3], direction[:, 0], atol=1e-4) and np.allclose(iop[3:], direction[:, 1], atol=1e-4)):
            raise DicomSegError(f"Source slice {Path(str(name)).name} has orientation {iop.round(4).tolist()}, not "
                                "the label map's rows and columns; the labels are not on this series' grid.")
        if (int(ds.Rows), int(ds.Columns)) != (n_j, n_i):
            raise DicomSegError(f"Source slice {Path(str(name)).name} is {ds.Rows}x{ds.Columns} pixels; the label map "
                                f"slices are {n_j}x{n_i}.")
        row_mm, col_mm = (float(v) for v in ds.PixelSpacing)  # DICOM: between rows (j), between columns (i)
        if not np.allclose([col_mm, row_mm], spacing[:2], rtol=1e-4, atol=1e-4):
            raise DicomSegError(f"Source slice {Path(str(name)).name} has pixel spacing {row_mm:g}x{col_mm:g} mm; the "
                                f"label map has {spacing[1]:g}x{spacing[0]:g} mm.")
        offset = np.array([float(v) for v in ds.ImagePositionPatient]) - np.asarray(labels.origin)
        ijk = direction.T @ offset / spacing
        k = int(round(ijk[2]))
        off_grid_mm = np.abs(np.concatenate([ijk[:2] * spacing[:2], [(ijk[2] - k) * spacing[2]]]))
        if not 0 <= k < n_k or off_grid_mm.max() > _POSITION_TOLERANCE_MM:
            raise DicomSegError(f"Source slice {Path(str(name)).name} at {offset.round(2).tolist()} mm from the label "
                                "map's origin is not one of its slices; the labels are not on this series' grid.")
        out.append(k)
    if sorted(out) != list(range(n_k)):
        raise DicomSegError(f"The {len(sources)} source slices do not cover the label map's {n_k} slices once each.")
    return out


def segment_descriptions(segments: Sequence[SegmentInfo], algorithm: AlgorithmInfo,
                         algorithm_type: str = "AUTOMATIC") -> list:
    """highdicom SegmentDescriptions numbered 1..N in the order given; every segment needs SNOMED codes.
    ``algorithm_type``: AUTOMATIC (a model's output) or SEMIAUTOMATIC (edited by a person, as in Slicer)."""
    hd = highdicom()

    algo = algorithm.sequence()
    out = []
    for number, seg in enumerate(segments, start=1):
        codes = codes_from_entry(seg.terminology)
        if codes is None:
            raise DicomSegError(f"Structure '{seg.name}' has no SNOMED CT category and type code, which DICOM SEG "
                                "requires; add it to medsegai/terminology/structures.csv.")
        desc = hd.seg.SegmentDescription(
            segment_number=number, segment_label=seg.name[:64], segmented_property_category=codes.category,
            segmented_property_type=codes.type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues[algorithm_type],
            algorithm_identification=algo, tracking_uid=hd.UID(), tracking_id=seg.name[:64],
            anatomic_regions=[codes.region] if codes.region is not None else None,
            display_color=hd.color.CIELabColor.from_rgb(*(int(round(c * 255)) for c in seg.color)))
        if codes.type_modifier is not None:
            # Laterality: highdicom has no argument for it; the attribute belongs in the segment item.
            m = codes.type_modifier
            desc.SegmentedPropertyTypeModifierCodeSequence = [hd.sr.CodedConcept(m.value, m.scheme_designator,
                                                                                 m.meaning)]
        out.append(desc)
    return out


def _present(labels: np.ndarray, segments: Sequence[SegmentInfo]) -> Tuple[List[SegmentInfo], np.ndarray]:
    """(segments present in ``labels``, lookup table label value -> segment number 1..N, 0 elsewhere)."""
    counts = np.bincount(labels.ravel(), minlength=max([s.value for s in segments], default=0) + 1)
    present = [s for s in sorted(segments, key=lambda s: s.value) if counts[s.value] > 0]
    unknown = sorted(set(np.flatnonzero(counts).tolist()) - {0} - {s.value for s in segments})
    if unknown:
        raise DicomSegError(f"The label map holds values {unknown[:10]} that no segment describes.")
    lut = np.zeros(len(counts), dtype=np.uint8 if len(present) < 256 else np.uint16)
    for number, s in enumerate(present, start=1):
        lut[s.value] = number
    return present, lut


def build_dicom_seg(labels: Image, segments: Sequence[SegmentInfo], source_files: Sequence[str], *,
                    algorithm: AlgorithmInfo, segmentation_type: str = "BINARY", workers: Optional[int] = None,
                    series_number: int = 900, series_description: str = "MedSegAI segmentation",
                    sources: Optional[list] = None, masks: Optional[np.ndarray] = None,
                    algorithm_type: str = "AUTOMATIC"):
    """A highdicom Segmentation of the non-empty ``segments`` of ``labels`` over ``source_files``.

    ``masks`` (BINARY only): segments that may overlap (a tumour inside its organ), as a boolean
    array (segment, k, j, i) in the order of ``segments``; ``labels`` then only gives the grid."""
    hd = highdicom()

    seg_type = segmentation_type.upper()
    if seg_type not in SEG_TYPES:
        raise DicomSegError(f"Unknown DICOM SEG type '{segmentation_type}' (use {', '.join(SEG_TYPES)}).")
    if not np.issubdtype(labels.array.dtype, np.integer) or labels.array.min() < 0:
        raise DicomSegError("A DICOM SEG needs a label map of non-negative whole numbers.")
    sources = sources if sources is not None else load_source_datasets(source_files)
    check_referenceable(sources)
    ks = frame_indices(labels, sources)
    if masks is not None:
        if seg_type != "BINARY":
            raise DicomSegError("Overlapping segments need a BINARY DICOM SEG; a LABELMAP holds one per voxel.")
        if masks.shape != (len(segments),) + tuple(labels.shape):
            raise DicomSegError(f"{masks.shape[0]} masks of shape {masks.shape[1:]} for {len(segments)} segments "
                                f"on a {tuple(labels.shape)} grid.")
        keep = [n for n in range(len(segments)) if masks[n].any()]
        present = [segments[n] for n in keep]
    else:
        present, lut = _present(labels.array, segments)
    if not present:
        raise DicomSegError("The segmentation is empty (no structure was found), so there is no DICOM SEG to write.")
    # A missing code fails before the pixel work.
    descriptions = segment_descriptions(present, algorithm, algorithm_type)
    # Frames in source order: frame f is drawn on sources[f].
    if masks is not None:
        pixels = np.moveaxis(masks[keep][:, ks], 0, -1).astype(np.uint8)  # (frames, rows, columns, segments)
    else:
        pixels = lut[labels.array[ks]]
    with warnings.catch_warnings():
        # Source patient names such as "Pancreas-CT-CB_001" are copied as they are; the warning helps nobody.
        warnings.filterwarnings("ignore", message=".*intended person name.*")
        return _segmentation(hd, sources, pixels, seg_type, descriptions, series_number, algorithm,
                             series_description, workers)


def _segmentation(hd, sources, pixels, seg_type, descriptions, series_number, algorithm, series_description,
                  workers):
    # workers only help where frames are compressed (highdicom encodes those in parallel); the default
    # uncompressed transfer syntax packs bits in one vectorised pass and warns if given workers.
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=seg_type,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name=algorithm.model_id[:64] or MANUFACTURER, software_versions=algorithm.version,
        device_serial_number="0", content_description=series_description[:64], content_label="MEDSEGAI",
        series_description=series_description[:64], workers=workers or 0)


def write_dicom_seg(labels: Image, segments: Sequence[SegmentInfo], source_files: Sequence[str],
                    path: str | os.PathLike, **options) -> Path:
    """Build the SEG (see :func:`build_dicom_seg`) and write it atomically to ``path``."""
    seg = build_dicom_seg(labels, segments, source_files, **options)
    with atomic_path(path) as tmp:
        seg.save_as(str(tmp), enforce_file_format=True)
    return Path(path)


__all__ = ["AlgorithmInfo", "DicomSegError", "SEG_TYPES", "build_dicom_seg", "frame_indices", "load_source_datasets",
           "segment_descriptions", "write_dicom_seg", "check_referenceable"]
