"""Per-segment confidence stored on the segments themselves (tags), read back for the statistics
table, and the jump to the least confident segment.

Tags travel with the segmentation node (saved in .seg.nrrd), so the scores stay attached to
the segments they describe. Mean uncertainty is recomputed from the map inside the segment as it
is now; Soft Dice Confidence needs the model's probabilities and describes the segment as the
model produced it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import slicer
import vtk

from .errors import InputError

TAG_SDC = "MedSegAI.SoftDiceConfidence"
TAG_MEAN_UNC = "MedSegAI.MeanUncertainty"
TAG_FLAGGED = "MedSegAI.LowConfidence"
TAG_METHOD = "MedSegAI.UncertaintyMethod"
from medsegai.run_request import DEFAULT_CONFIDENCE_THRESHOLD  # noqa: E402 - one definition


@dataclass(frozen=True)
class SegmentConfidence:
    segment_id: str
    name: str
    soft_dice: float
    mean_uncertainty: float
    flagged: bool


def write_confidence_tags(segmentation_node, confidence: Mapping[str, Mapping[str, float]], method: str,
                          threshold: float = DEFAULT_CONFIDENCE_THRESHOLD) -> Dict[str, str]:
    """Tag each segment named in ``confidence``; returns {segment name: segment id} of those tagged."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise InputError(f"The confidence threshold must be between 0 and 1, got {threshold}.")
    seg = segmentation_node.GetSegmentation()
    tagged = {}
    for name, vals in confidence.items():
        sid = seg.GetSegmentIdBySegmentName(name)
        if not sid:
            continue
        segment = seg.GetSegment(sid)
        sdc = float(vals["soft_dice"])
        segment.SetTag(TAG_SDC, f"{sdc:.6f}")
        segment.SetTag(TAG_MEAN_UNC, f"{float(vals.get('mean_uncertainty', float('nan'))):.6f}")
        segment.SetTag(TAG_FLAGGED, "1" if sdc < float(threshold) else "0")
        segment.SetTag(TAG_METHOD, method)
        tagged[name] = sid
    return tagged


def read_tag(segment, key: str) -> Optional[str]:
    """A segment tag, or None (VTK's Python wrapping returns it through a reference)."""
    holder = vtk.reference("")
    return str(holder) if segment.GetTag(key, holder) else None


def read_confidence(segmentation_node, threshold: Optional[float] = None) -> Dict[str, SegmentConfidence]:
    """{segment id: SegmentConfidence} for the segments that carry scores; ``threshold`` re-flags."""
    seg = segmentation_node.GetSegmentation()
    out = {}
    for n in range(seg.GetNumberOfSegments()):
        sid = seg.GetNthSegmentID(n)
        segment = seg.GetSegment(sid)
        sdc = read_tag(segment, TAG_SDC)
        if sdc is None:
            continue
        unc = read_tag(segment, TAG_MEAN_UNC)
        flagged = (float(sdc) < float(threshold)) if threshold is not None else read_tag(segment, TAG_FLAGGED) == "1"
        out[sid] = SegmentConfidence(sid, segment.GetName(), float(sdc), float(unc) if unc else math.nan, flagged)
    return out


def least_confident_segment(segmentation_node) -> Optional[str]:
    """Segment id with the lowest Soft Dice Confidence (ties: higher mean uncertainty), or None."""
    scores = read_confidence(segmentation_node)
    if not scores:
        return None
    return min(scores.values(), key=lambda s: (s.soft_dice, -(0.0 if math.isnan(s.mean_uncertainty)
                                                              else s.mean_uncertainty))).segment_id


def segment_center_ras(segmentation_node, segment_id: str, reference_volume) -> Tuple[float, float, float]:
    """Centre (RAS) of the segment's voxels on the reference grid, parent transforms applied."""
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, segment_id, reference_volume)
    idx = np.argwhere(mask > 0)
    if idx.size == 0:
        raise InputError(f"Segment '{segmentation_node.GetSegmentation().GetSegment(segment_id).GetName()}' is empty.")
    k, j, i = idx.mean(0)
    m = vtk.vtkMatrix4x4()
    reference_volume.GetIJKToRASMatrix(m)
    ras = np.array(m.MultiplyPoint((float(i), float(j), float(k), 1.0))[:3])
    transform = reference_volume.GetParentTransformNode()
    if transform is not None:
        to_world = vtk.vtkGeneralTransform()
        transform.GetTransformToWorld(to_world)
        ras = np.array(to_world.TransformPoint(ras))
    return tuple(float(v) for v in ras)


def jump_to_segment(scene, segmentation_node, segment_id: str, reference_volume) -> Tuple[float, float, float]:
    """Centre every slice view on the segment; returns the RAS point."""
    ras = segment_center_ras(segmentation_node, segment_id, reference_volume)
    for slice_node in scene.GetNodesByClass("vtkMRMLSliceNode") or []:
        slice_node.JumpSliceByCentering(*ras)
    return ras
