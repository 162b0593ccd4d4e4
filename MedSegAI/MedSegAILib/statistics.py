"""Per-segment statistics (volume in mL, intensity mean and standard deviation) from the scene.

Computed from the segmentation node as it is now, so the figures include the user's edits.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import slicer
import vtk
from medsegai.atomic import atomic_path

from .segment_edits import internal_mask
from .volume_bridge import ijk_to_ras_matrix

COLUMNS = ("Segment", "Voxels", "Volume [mL]", "Mean", "Standard deviation", "Confidence", "Mean uncertainty",
           "Low confidence")


@dataclass(frozen=True)
class SegmentStatistics:
    segment_id: str
    name: str
    voxels: int
    volume_ml: float
    mean: float  # NaN for an empty segment
    std: float
    # From an uncertainty run (segment tags): Soft Dice Confidence, mean uncertainty inside the
    # segment as it is now (NaN without a map), and the low-confidence flag.
    confidence: float = float("nan")
    mean_uncertainty: float = float("nan")
    flagged: bool = False

    def row(self) -> tuple:
        return (self.name, self.voxels, self.volume_ml, self.mean, self.std, self.confidence, self.mean_uncertainty,
                "yes" if self.flagged else "")


def _same_grid(seg_matrix: np.ndarray, volume_matrix: np.ndarray) -> Optional[np.ndarray]:
    """Voxel offset (i, j, k) of the segment's grid in the volume's grid, when they share axes."""
    if not np.allclose(seg_matrix[:3, :3], volume_matrix[:3, :3], atol=1e-5):
        return None
    offset = np.linalg.solve(volume_matrix[:3, :3], seg_matrix[:3, 3] - volume_matrix[:3, 3])
    if not np.allclose(offset, np.round(offset), atol=1e-3):
        return None
    return np.round(offset).astype(int)


def _mask_on_volume(segmentation_node, segment_id, volume_node, segmentations_logic) -> np.ndarray:
    shape = slicer.util.arrayFromVolume(volume_node).shape
    mask, start, matrix = internal_mask(segmentation_node, segment_id)
    offset = _same_grid(matrix, ijk_to_ras_matrix(volume_node))
    if offset is not None and segmentation_node.GetParentTransformNode() is volume_node.GetParentTransformNode():
        out = np.zeros(shape, bool)
        if mask.size == 0:
            return out
        lo = np.array(start)[::-1] + offset[::-1]  # (k, j, i) position of mask[0, 0, 0]
        src = [slice(max(0, -lo[a]), min(mask.shape[a], shape[a] - lo[a])) for a in range(3)]
        dst = [slice(max(0, lo[a]), max(0, lo[a]) + (s.stop - s.start)) for a, s in enumerate(src)]
        if all(s.stop > s.start for s in src):
            out[tuple(dst)] = mask[tuple(src)]
        return out
    # Other grids or transforms: let Slicer resample the segment onto the volume.
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment_id)
    scene = volume_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__medsegai_temp__")
    try:
        if not segmentations_logic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap, volume_node):
            raise RuntimeError(f"Could not resample segment '{segment_id}' onto the volume.")
        return slicer.util.arrayFromVolume(labelmap) > 0
    finally:
        display = labelmap.GetDisplayNode()
        if display is not None and display.GetColorNode() is not None and \
                display.GetColorNode().GetName().startswith("__medsegai_temp__"):
            scene.RemoveNode(display.GetColorNode())
        scene.RemoveNode(labelmap)


def segment_statistics(segmentation_node, volume_node, segmentations_logic,
                       segment_ids: Optional[Sequence[str]] = None, uncertainty_volume=None,
                       confidence_threshold: Optional[float] = None) -> List[SegmentStatistics]:
    """``uncertainty_volume``: a map on ``volume_node``'s grid, averaged inside each segment as it is now;
    ``confidence_threshold`` re-flags the segments (default: the flags stored by the run)."""
    from .uncertainty_scores import read_confidence

    scores = read_confidence(segmentation_node, confidence_threshold)
    unc_values = None
    if uncertainty_volume is not None:
        unc_values = slicer.util.arrayFromVolume(uncertainty_volume)
        if unc_values.shape != slicer.util.arrayFromVolume(volume_node).shape or not np.allclose(
                ijk_to_ras_matrix(uncertainty_volume), ijk_to_ras_matrix(volume_node), atol=1e-4):
            raise ValueError("The uncertainty map is not on the intensity volume's grid.")
    values = slicer.util.arrayFromVolume(volume_node)
    spacing = volume_node.GetSpacing()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    seg = segmentation_node.GetSegmentation()
    if segment_ids is None:
        segment_ids = [seg.GetNthSegmentID(n) for n in range(seg.GetNumberOfSegments())]
    out = []
    for sid in segment_ids:
        mask = _mask_on_volume(segmentation_node, sid, volume_node, segmentations_logic)
        inside = values[mask].astype(np.float64)
        n = int(inside.size)
        conf = scores.get(sid)
        mean_unc = conf.mean_uncertainty if conf is not None else float("nan")
        if unc_values is not None:
            mean_unc = float(unc_values[mask].mean()) if n else float("nan")
        out.append(SegmentStatistics(
            sid, seg.GetSegment(sid).GetName(), n, n * voxel_ml,
            float(inside.mean()) if n else float("nan"), float(inside.std()) if n else float("nan"),
            conf.soft_dice if conf is not None else float("nan"), mean_unc, bool(conf is not None and conf.flagged),
        ))
    return out


def statistics_to_table(scene, stats: Sequence[SegmentStatistics], table_node=None, name="MedSegAI statistics"):
    """Fill (or create) a table node: one row per segment, columns as in COLUMNS."""
    if table_node is None:
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    table = vtk.vtkTable()
    arrays = [vtk.vtkStringArray(), vtk.vtkIntArray(), vtk.vtkDoubleArray(), vtk.vtkDoubleArray(), vtk.vtkDoubleArray(),
              vtk.vtkDoubleArray(), vtk.vtkDoubleArray(), vtk.vtkStringArray()]
    for arr, col in zip(arrays, COLUMNS):
        arr.SetName(col)
        table.AddColumn(arr)
    table.SetNumberOfRows(len(stats))
    for r, s in enumerate(stats):
        for c, value in enumerate(s.row()):
            table.SetValue(r, c, vtk.vtkVariant(value))
    table_node.SetAndObserveTable(table)
    return table_node


def write_statistics_csv(stats: Sequence[SegmentStatistics], path) -> str:
    path = os.fspath(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for s in stats:
            w.writerow([s.name, s.voxels, f"{s.volume_ml:.6g}", f"{s.mean:.6g}", f"{s.std:.6g}",
                        f"{s.confidence:.6g}", f"{s.mean_uncertainty:.6g}", "yes" if s.flagged else ""])
    return path
