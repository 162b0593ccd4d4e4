"""DICOM SEG between Slicer's scene and files: export a segmentation over the DICOM series its volume
came from, import a SEG back onto a volume (MRML only, no Qt).

The SEG must reference the source images, so export needs their files. Slicer's DICOM module records
the SOP instance UIDs of a loaded series on the volume node (attribute ``DICOM.instanceUIDs``) and
finds their files with ``slicer.dicomDatabase.fileForInstance``. :class:`FolderIndex` answers the same
question from a folder of DICOM files (the console, or a Slicer without the DICOM database).
The pixel work and the codes are the runner's (``medsegai.io.dicom_seg_write`` / ``_read``), so a SEG
written here carries exactly the codes and colours of ``medsegai segment -o seg.dcm``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import slicer

from medsegai.errors import MedSegAIError
from medsegai.io.segments import SegmentInfo

from .errors import InputError
from .prompt_geometry import VolumeFrame
from .segment_regions import SegmentGrid
from .segmentation_bridge import SegmentationUpdate, segments_in_node, write_segments
from .volume_bridge import image_from_volume

INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"  # set by Slicer's DICOM scalar volume plugin


class FolderIndex:
    """SOP instance UID -> file for the DICOM files under a folder; the lookup ctkDICOMDatabase offers."""

    def __init__(self, folder):
        import pydicom

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"DICOM folder not found: {self.folder}")
        self._files: Dict[str, str] = {}
        for path in sorted(p for p in self.folder.rglob("*") if p.is_file()):
            try:
                ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
            except Exception:  # noqa: BLE001 - not DICOM (a README, a DICOMDIR's neighbours): skipped
                continue
            uid = str(getattr(ds, "SOPInstanceUID", "") or "")
            if uid:
                self._files.setdefault(uid, str(path))

    def fileForInstance(self, uid: str) -> str:  # noqa: N802 - ctkDICOMDatabase's name
        return self._files.get(str(uid), "")


def source_files(volume_node, database=None) -> List[str]:
    """The files of the DICOM series ``volume_node`` was loaded from, in the order Slicer recorded them."""
    uids = (volume_node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()
    if not uids:
        raise InputError(
            f"'{volume_node.GetName()}' was not loaded from DICOM (it has no {INSTANCE_UIDS_ATTRIBUTE}), so a DICOM "
            "SEG cannot reference its series: load the series through Slicer's DICOM module, or save as .seg.nrrd.")
    if database is None:
        database = getattr(slicer, "dicomDatabase", None)
        if database is None:
            raise InputError("Slicer's DICOM database is not open; give the folder of the source series instead.")
    files = [database.fileForInstance(uid) for uid in uids]
    missing = [uid for uid, f in zip(uids, files) if not f or not Path(f).is_file()]
    if missing:
        raise InputError(f"{len(missing)} of the {len(uids)} source images of '{volume_node.GetName()}' are not in the "
                         f"DICOM database or folder (first missing SOP instance {missing[0]}).")
    return files


def segment_masks(segmentation_node, volume_node, segment_ids: Optional[Sequence[str]] = None
                  ) -> Tuple[List[SegmentInfo], np.ndarray]:
    """The segments (all, or ``segment_ids`` in that order) as boolean masks (segment, k, j, i) on the
    volume's grid, and their names, colours and terminology."""
    seg = segmentation_node.GetSegmentation()
    ids = list(segment_ids) if segment_ids is not None else [seg.GetNthSegmentID(n)
                                                              for n in range(seg.GetNumberOfSegments())]
    unknown = [s for s in ids if seg.GetSegment(s) is None]
    if unknown:
        raise InputError(f"'{segmentation_node.GetName()}' has no segment '{unknown[0]}'.")
    if not ids:
        raise InputError(f"'{segmentation_node.GetName()}' has no segments to export.")
    info = {seg.GetNthSegmentID(n): s for n, s in enumerate(segments_in_node(segmentation_node))}
    # Read from the segmentation's own labelmaps (slicer.util's export helpers add nodes to the scene).
    grid = SegmentGrid(segmentation_node, VolumeFrame(volume_node))
    read = grid.read_many(ids, tuple(slice(0, n) for n in VolumeFrame(volume_node).shape))
    masks = np.stack([read[s] for s in ids])
    segments = [SegmentInfo(n + 1, info[s].name, info[s].color, info[s].terminology) for n, s in enumerate(ids)]
    return segments, masks


def export_dicom_seg(volume_node, segmentation_node, path, *, segment_ids: Optional[Sequence[str]] = None,
                     segmentation_type: str = "BINARY", database=None, series_description: str = "") -> List[str]:
    """Write the segmentation as a DICOM SEG at ``path`` over ``volume_node``'s source series; returns notes
    (empty segments left out). Every failure is an InputError before the file exists; the scene is only read."""
    from medsegai.io.dicom_seg_write import AlgorithmInfo, write_dicom_seg

    files = source_files(volume_node, database)
    segments, masks = segment_masks(segmentation_node, volume_node, segment_ids)
    empty = [s.name for s, m in zip(segments, masks) if not m.any()]
    grid = image_from_volume(volume_node)
    seg_type = segmentation_type.upper()
    options = dict(algorithm=AlgorithmInfo(model_id="3D Slicer segmentation (MedSegAI)"),
                   segmentation_type=seg_type, algorithm_type="SEMIAUTOMATIC",
                   series_description=series_description or f"{segmentation_node.GetName()} (MedSegAI)")
    try:
        if seg_type == "LABELMAP":
            overlap = int((masks.sum(axis=0) > 1).sum())
            if overlap:
                raise InputError(f"Segments overlap in {overlap} voxel(s); a LABELMAP DICOM SEG holds one segment "
                                 "per voxel: export as BINARY.")
            values = np.zeros(grid.shape, np.uint16 if len(segments) > 255 else np.uint8)
            for s, m in zip(segments, masks):
                values[m] = s.value
            write_dicom_seg(grid.with_array(values), segments, files, path, **options)
        else:
            write_dicom_seg(grid.with_array(np.zeros(grid.shape, np.uint8)), segments, files, path, masks=masks,
                            **options)
    except InputError:
        raise
    except MedSegAIError as exc:
        raise InputError(str(exc)) from None
    return [f"Empty segment(s) not written: {', '.join(empty)}."] if empty else []


def import_dicom_seg(scene, path, volume_node, *, segmentation_node=None, database=None
                     ) -> Tuple[SegmentationUpdate, List[str]]:
    """Read a DICOM SEG onto ``volume_node``'s grid into a segmentation node (a new one when None), with
    the SEG's names, colours and codes. When the volume came from DICOM, the SEG must reference its
    series. Returns the update and the reader's notes (how overlapping segments were resolved)."""
    from medsegai.io.dicom_seg_read import read_dicom_seg

    series_uid = None
    if volume_node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE):
        try:
            import pydicom

            first = source_files(volume_node, database)[0]
            series_uid = str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID)
        except InputError:
            series_uid = None  # the source files are not at hand: the geometry alone places the SEG
    try:
        seg = read_dicom_seg(path, reference=image_from_volume(volume_node), reference_series_uid=series_uid)
    except MedSegAIError as exc:
        raise InputError(str(exc)) from None
    update = write_segments(scene, seg.labels, seg.segments, reference_volume=volume_node,
                            segmentation_node=segmentation_node, node_name=Path(path).stem, source="DICOM SEG")
    return update, list(seg.notes)


def export_from_console(volume_node, segmentation_node, path, segmentIds=None, segmentationType="BINARY",
                        sourceFolder=None) -> List[str]:
    """The console's ``exportDicomSeg``: Slicer's DICOM database, or ``sourceFolder`` holding the series."""
    database = FolderIndex(sourceFolder) if sourceFolder else None
    return export_dicom_seg(volume_node, segmentation_node, path, segment_ids=segmentIds,
                            segmentation_type=segmentationType, database=database)


def import_from_console(scene, path, volume_node, segmentationNode=None, sourceFolder=None):
    """The console's ``importDicomSeg``: (segmentation node, notes)."""
    database = FolderIndex(sourceFolder) if sourceFolder else None
    update, notes = import_dicom_seg(scene, path, volume_node, segmentation_node=segmentationNode, database=database)
    return update.node, notes
