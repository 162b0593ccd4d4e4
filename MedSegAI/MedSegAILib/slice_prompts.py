"""Gestures drawn on a slice view -> the inputs the interactive Logic takes (no Qt).

A slice view reports world (RAS) points and its own orientation (the slice node's SliceToRAS);
a drag becomes a flat markups ROI in the slice's plane (``VolumeFrame.box`` makes it a 2D box on
the voxel slice under it), a painted stroke becomes voxels on the volume's grid. The ROI is not
added to the scene: a drag is a prompt, not a node the user has to delete afterwards.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import slicer

from .errors import InputError
from .prompt_geometry import VolumeFrame

DRAG_BOX_NAME = "box drawn on the slice"


def drag_box_roi(corner_a, corner_b, slice_to_ras) -> "slicer.vtkMRMLMarkupsROINode":
    """A flat ROI (not in any scene) spanning the rectangle between two world points on a slice,
    its axes those of the slice (``slice_to_ras``: 4x4 array or vtkMatrix4x4)."""
    m = _array(slice_to_ras)
    axes = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0)
    a, b = np.asarray(corner_a, float), np.asarray(corner_b, float)
    if a.shape != (3,) or b.shape != (3,) or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("A box needs two corner points (R, A, S).")
    extent = np.abs(axes.T @ (b - a))
    if extent[0] <= 0 or extent[1] <= 0:
        raise InputError("The box has no area: drag from one corner to the opposite one.")
    object_to_node = np.eye(4)
    object_to_node[:3, :3], object_to_node[:3, 3] = axes, (a + b) / 2
    roi = slicer.vtkMRMLMarkupsROINode()
    roi.SetName(DRAG_BOX_NAME)
    roi.SetAndObserveObjectToNodeMatrix(slicer.util.vtkMatrixFromArray(object_to_node))
    roi.SetSize(float(extent[0]), float(extent[1]), 0.0)
    return roi


def stroke_array(volume_node, ras_points, width_mm: float = 0.0, slice_to_ras=None
                 ) -> Tuple[np.ndarray, Tuple[int, int, int]]:
    """The voxels a painted stroke passes through: (uint8 crop [k, j, i] around them, its offset on the
    volume's grid), as ``addScribble`` takes it.

    The stroke is sampled at a quarter of the smallest voxel size, so a fast mouse movement (points
    far apart) still marks a connected line of voxels. ``width_mm`` > 0 paints with a round brush of
    that diameter in the slice's plane (``slice_to_ras``), as Slicer's Paint effect does; 0 marks
    the one-voxel line under the pointer."""
    frame = VolumeFrame(volume_node)
    pts = np.asarray(ras_points, float).reshape(-1, 3)
    if not len(pts):
        raise InputError("A scribble needs at least one point.")
    if not np.isfinite(width_mm) or width_mm < 0:
        raise InputError(f"The brush width must be 0 or more millimetres (got {width_mm}).")
    step = 0.25 * float(np.linalg.norm(frame.ijk_to_world[:3, :3], axis=0).min())
    samples = [pts[:1]]
    for p, q in zip(pts[:-1], pts[1:]):
        n = max(int(np.ceil(np.linalg.norm(q - p) / step)), 1)
        samples.append(p + (q - p) * (np.arange(1, n + 1)[:, None] / n))
    world = np.concatenate(samples)
    if width_mm > 0:
        if slice_to_ras is None:
            raise InputError("A brush wider than one voxel needs the slice's orientation.")
        ijk = _brush_voxels(frame, pts, world, width_mm / 2, _array(slice_to_ras), step)
    else:
        ijk = np.floor(frame.continuous_ijk(world) + 0.5).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(frame.shape[::-1])), axis=1)
    if not inside.any():
        raise InputError(f"The scribble is outside '{frame.name}'.")
    kji = ijk[inside][:, ::-1]
    lo = kji.min(axis=0)
    crop = np.zeros(tuple(kji.max(axis=0) - lo + 1), np.uint8)
    crop[tuple((kji - lo).T)] = 1
    return crop, tuple(int(v) for v in lo)


def _brush_voxels(frame, pts, world, radius, slice_to_ras, step) -> np.ndarray:
    """The voxels whose centres lie within ``radius`` mm of the stroke, on the slice's plane: candidates
    from a disc a voxel wider than the brush swept along the stroke, then kept by their centre's
    distance to the stroke's polyline (Slicer's Paint effect keeps voxel centres inside its brush too)."""
    axes = slice_to_ras[:3, :2] / np.linalg.norm(slice_to_ras[:3, :2], axis=0)
    reach = radius + float(np.linalg.norm(frame.ijk_to_world[:3, :3], axis=0).max())
    grid = np.arange(-reach, reach + 1e-9, 2 * step)
    du, dv = np.meshgrid(grid, grid, indexing="ij")
    disc = du ** 2 + dv ** 2 <= reach ** 2
    offsets = np.stack([du[disc], dv[disc]], axis=1) @ axes.T
    # Samples a voxel apart are enough for candidates: the disc is a voxel wider than the brush.
    voxel = float(np.linalg.norm(frame.ijk_to_world[:3, :3], axis=0).max())
    centres = world[:: max(1, int(voxel / step))]
    centres = np.concatenate([centres, world[-1:]])
    candidates = np.unique(np.floor(frame.continuous_ijk(
        (centres[:, None, :] + offsets[None]).reshape(-1, 3)) + 0.5).astype(int), axis=0)
    xyz = (frame.ijk_to_world @ np.c_[candidates, np.ones(len(candidates))].T)[:3].T
    nearest = np.full(len(candidates), np.inf)
    segments = [(p, q) for p, q in zip(pts[:-1], pts[1:])] or [(pts[0], pts[0])]
    for p, q in segments:
        d = q - p
        t = np.clip((xyz - p) @ d / max(float(d @ d), 1e-12), 0, 1)
        nearest = np.minimum(nearest, np.linalg.norm(xyz - (p + t[:, None] * d), axis=1))
    return candidates[nearest <= radius]


def _array(matrix) -> np.ndarray:
    if hasattr(matrix, "GetElement"):
        return slicer.util.arrayFromVTKMatrix(matrix)
    return np.asarray(matrix, float)
