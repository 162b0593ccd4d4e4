"""Runner label map -> segmentation node: one segment per structure, label values, names,
colours and terminology kept, on the input's geometry; an existing node is updated without
losing the user's edits, and left exactly as it was if anything fails."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from medsegai.io.image import Image
from medsegai.io.segments import SegmentInfo

from . import segment_edits
from .errors import EditedSegmentsError, InputError

ON_EDITED = ("error", "keep", "replace")
SOURCE_TAG = "MedSegAI.Source"


@dataclass
class SegmentationUpdate:
    node: object
    created_node: bool
    written: List[str] = field(default_factory=list)
    kept_edited: List[str] = field(default_factory=list)


def oriented_image_from_labels(labels: Image) -> "slicer.vtkOrientedImageData":
    array = np.ascontiguousarray(labels.array)
    if array.ndim != 3:
        raise InputError(f"The label map is {array.ndim}D; a 3D label map is needed.")
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"The label map has non-integer voxels ({array.dtype}).")
    if array.max(initial=0) <= 255 and array.min(initial=0) >= 0:
        array = array.astype(np.uint8, copy=False)
    elif array.min(initial=0) >= 0 and array.max(initial=0) <= 65535:
        array = array.astype(np.uint16, copy=False)
    image = slicer.vtkOrientedImageData()
    k, j, i = array.shape
    image.SetDimensions(i, j, k)
    scalars = numpy_support.numpy_to_vtk(array.ravel(), deep=True)
    image.GetPointData().SetScalars(scalars)
    image.SetImageToWorldMatrix(slicer.util.vtkMatrixFromArray(labels.ijk_to_ras()))
    return image


def _edited_conflicts(node, names: Sequence[str]) -> List[str]:
    seg = node.GetSegmentation()
    ids = {seg.GetSegmentIdBySegmentName(name): name for name in names}
    ids.pop("", None)
    return [ids[i] for i in segment_edits.edited_segments(node, list(ids))]


def write_segments(
    scene,
    labels: Image,
    segments: Sequence[SegmentInfo],
    *,
    reference_volume=None,
    segmentation_node=None,
    node_name: str = "Segmentation",
    only_present: bool = True,
    on_edited: str = "error",
    source: str = "",
) -> SegmentationUpdate:
    """Write ``labels`` into ``segmentation_node`` (a new node when None).

    ``on_edited``: what to do with same-named segments the user changed since MedSegAI wrote
    them (or made themselves): ``error`` raises EditedSegmentsError before changing anything,
    ``keep`` leaves them as they are, ``replace`` overwrites them. Other segments of an
    existing node are never touched.
    """
    if on_edited not in ON_EDITED:
        raise ValueError(f"on_edited must be one of {ON_EDITED}")
    if segmentation_node is not None and not segmentation_node.IsA("vtkMRMLSegmentationNode"):
        raise InputError(f"'{segmentation_node.GetName()}' is not a segmentation node.")
    values = [s.value for s in segments]
    if len(set(values)) != len(values) or any(v <= 0 for v in values):
        raise InputError("Segment label values must be unique and positive.")
    names = [s.name for s in segments]
    if len(set(names)) != len(names):
        raise InputError("Segment names must be unique.")
    present = set(np.unique(labels.array).tolist())
    wanted = [s for s in segments if (s.value in present or not only_present)]

    kept: List[str] = []
    if segmentation_node is not None:
        conflicts = _edited_conflicts(segmentation_node, [s.name for s in wanted])
        if conflicts and on_edited == "error":
            raise EditedSegmentsError(conflicts)
        if on_edited == "keep":
            kept = conflicts
    to_write = [s for s in wanted if s.name not in kept]

    # The shared layer holds only what becomes a segment here: skipped labels must not linger
    # as hidden voxels inside it.
    keep_values = np.array(sorted(s.value for s in to_write), dtype=labels.array.dtype)
    layer = np.where(np.isin(labels.array, keep_values), labels.array, 0)
    image = oriented_image_from_labels(labels.with_array(layer))

    created = segmentation_node is None
    node = segmentation_node
    snapshot = None
    if created:
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(node_name))
    else:
        snapshot = slicer.vtkSegmentation()
        snapshot.DeepCopy(node.GetSegmentation())
    try:
        was_modifying = node.StartModify()
        try:
            _replace_segments(node, image, to_write, source)
        finally:
            node.EndModify(was_modifying)
        if created:
            node.CreateDefaultDisplayNodes()
        if reference_volume is not None:
            if created or node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()) is None:
                node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
            if created:
                node.SetAndObserveTransformNodeID(reference_volume.GetTransformNodeID())
    except Exception:
        if created:
            scene.RemoveNode(node)
        else:
            node.GetSegmentation().DeepCopy(snapshot)
        raise
    return SegmentationUpdate(node, created, [s.name for s in to_write], kept)


def _replace_segments(node, image, segments: Sequence[SegmentInfo], source: str) -> None:
    segmentation = node.GetSegmentation()
    labelmap_name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    if segmentation.GetNumberOfSegments() == 0:
        segmentation.SetSourceRepresentationName(labelmap_name)
    elif segmentation.GetSourceRepresentationName() != labelmap_name:
        raise InputError(f"'{node.GetName()}' is not stored as a binary labelmap; choose another output segmentation.")
    for info in segments:
        old_id = segmentation.GetSegmentIdBySegmentName(info.name)
        if old_id:
            segmentation.RemoveSegment(old_id)
    term_tag = slicer.vtkSegment.GetTerminologyEntryTagName()
    added = []
    for info in segments:
        segment = slicer.vtkSegment()
        segment.SetName(info.name)
        segment.SetColor(*info.color)
        segment.SetLabelValue(int(info.value))
        segment.AddRepresentation(labelmap_name, image)
        if info.terminology:
            segment.SetTag(term_tag, info.terminology)
        if source:
            segment.SetTag(SOURCE_TAG, source)
        segment_id = info.name if segmentation.GetSegment(info.name) is None else \
            segmentation.GenerateUniqueSegmentID(info.name)
        if not segmentation.AddSegment(segment, segment_id):
            raise RuntimeError(f"Slicer refused the segment '{info.name}'.")
        added.append(segment_id)
    segment_edits.stamp(node, added)  # after all are added: they share one layer, hashed in one pass


def segments_in_node(segmentation_node) -> List[SegmentInfo]:
    """What a segmentation node holds, as SegmentInfo (label value, name, colour, terminology)."""
    seg = segmentation_node.GetSegmentation()
    term_tag = slicer.vtkSegment.GetTerminologyEntryTagName()
    out = []
    for n in range(seg.GetNumberOfSegments()):
        s = seg.GetNthSegment(n)
        tag = vtk.mutable("")
        term = str(tag) if s.GetTag(term_tag, tag) else ""
        out.append(SegmentInfo(int(s.GetLabelValue()), s.GetName(), tuple(s.GetColor()), term))
    return out
