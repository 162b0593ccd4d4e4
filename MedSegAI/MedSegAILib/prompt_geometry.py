"""Prompts in Slicer's world coordinates -> the runner's voxel indices [k, j, i] of one volume.

World means RAS after every parent transform, as markups and the slice views report it, so a
volume under a (linear) transform is prompted where it is shown. Each conversion refuses a prompt
that misses the volume with a message in the user's terms, before anything is sent or changed.
NumPy and VTK only: this runs on Slicer's GUI thread, where SciPy may not be installed.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import slicer
import vtk

from .errors import InputError
from .volume_bridge import check_input_volume, ijk_to_ras_matrix

Box = Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]
_EPS = 1e-6  # a voxel centre exactly on a box face counts as inside


def node_to_world(node) -> np.ndarray:
    """4x4 from the node's own RAS to world RAS (identity without a parent transform)."""
    transform = node.GetParentTransformNode()
    if transform is None:
        return np.eye(4)
    if not transform.IsTransformToWorldLinear():
        raise InputError(f"'{node.GetName()}' is under a non-linear transform; harden or remove it first.")
    m = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(m)
    return slicer.util.arrayFromVTKMatrix(m)


class VolumeFrame:
    """One volume's voxel grid seen from the world: where a world point falls, in voxel indices."""

    def __init__(self, volume_node):
        check_input_volume(volume_node)
        self.node = volume_node
        self.name = volume_node.GetName()
        dims = volume_node.GetImageData().GetDimensions()
        self.shape = (dims[2], dims[1], dims[0])  # k, j, i: the runner's array order
        self.ijk_to_world = node_to_world(volume_node) @ ijk_to_ras_matrix(volume_node)
        self.world_to_ijk = np.linalg.inv(self.ijk_to_world)

    def continuous_ijk(self, points) -> np.ndarray:
        """(N, 3) continuous voxel coordinates (i, j, k) of world points (N, 3); voxel n spans n +- 0.5."""
        pts = np.asarray(points, float).reshape(-1, 3)
        if not np.isfinite(pts).all():
            raise InputError("A prompt point is not a finite position.")
        return (self.world_to_ijk @ np.c_[pts, np.ones(len(pts))].T).T[:, :3]

    def world_of_voxel(self, kji) -> np.ndarray:
        """World RAS of a voxel centre given as (k, j, i) (for tests and the panel)."""
        k, j, i = kji
        return (self.ijk_to_world @ np.array([i, j, k, 1.0]))[:3]

    def _sizes(self) -> str:
        k, j, i = self.shape
        return f"{i} x {j} x {k} voxels (i x j x k)"

    # -- prompts ------------------------------------------------------------------------------------
    def point(self, ras) -> Tuple[int, int, int]:
        """The voxel (k, j, i) whose centre is nearest to a world point."""
        pts = np.asarray(ras, float).reshape(-1)
        if pts.size != 3:
            raise InputError(f"A point is 3 numbers (R, A, S), got {np.asarray(ras).tolist()!r}.")
        ijk = np.floor(self.continuous_ijk(pts)[0] + 0.5).astype(int)
        kji = (int(ijk[2]), int(ijk[1]), int(ijk[0]))
        if not all(0 <= c < n for c, n in zip(kji, self.shape)):
            raise InputError(f"The point R {pts[0]:.1f}, A {pts[1]:.1f}, S {pts[2]:.1f} is outside '{self.name}': it "
                             f"falls on voxel i={ijk[0]}, j={ijk[1]}, k={ijk[2]}, and the volume has {self._sizes()}.")
        return kji

    def box(self, roi_node) -> Box:
        """The voxels whose centres lie inside a markups ROI, as ((k0, k1), (j0, j1), (i0, i1)), half-open,
        clipped to the volume. A flat ROI (no thickness) is a 2D box: one slice of the voxel axis closest
        to its normal, through its centre."""
        if roi_node is None or not roi_node.IsA("vtkMRMLMarkupsROINode"):
            what = "nothing" if roi_node is None else roi_node.GetClassName()
            raise InputError(f"A box prompt takes a markups ROI node, got {what}.")
        name = roi_node.GetName()
        if roi_node.GetNumberOfControlPoints() == 0:
            raise InputError(f"The ROI '{name}' has not been placed yet.")
        bounds = [0.0] * 6
        roi_node.GetObjectBounds(bounds)
        lo, hi = np.array(bounds[0::2]), np.array(bounds[1::2])
        corners = np.array([[(lo, hi)[a][0], (lo, hi)[b][1], (lo, hi)[c][2]]
                            for a in (0, 1) for b in (0, 1) for c in (0, 1)])
        to_world = slicer.util.arrayFromVTKMatrix(roi_node.GetObjectToWorldMatrix())
        world = (to_world @ np.c_[corners, np.ones(8)].T).T[:, :3]
        ijk = self.continuous_ijk(world)
        start = np.ceil(ijk.min(axis=0) - _EPS).astype(int)
        stop = np.floor(ijk.max(axis=0) + _EPS).astype(int) + 1
        centre = np.floor(ijk.mean(axis=0) + 0.5).astype(int)
        if np.min(hi - lo) <= _EPS:
            # Flat in the world but oblique to the voxels it would cut several slices: the user drew
            # it on one slice, so it becomes a 2D box on the slice of the most aligned voxel axis.
            axis = int(np.argmin(np.ptp(ijk, axis=0)))
            start[axis], stop[axis] = centre[axis], centre[axis] + 1
        for axis in range(3):  # thinner than a voxel: the slice through its centre
            if stop[axis] <= start[axis]:
                start[axis], stop[axis] = centre[axis], centre[axis] + 1
        size = np.array(self.shape[::-1])  # i, j, k
        clipped_start, clipped_stop = np.maximum(start, 0), np.minimum(stop, size)
        if np.any(clipped_stop <= clipped_start):
            raise InputError(f"The ROI '{name}' does not overlap '{self.name}' ({self._sizes()}; the ROI covers "
                             f"voxels i {start[0]}..{stop[0] - 1}, j {start[1]}..{stop[1] - 1}, "
                             f"k {start[2]}..{stop[2] - 1}).")
        return tuple((int(clipped_start[a]), int(clipped_stop[a])) for a in (2, 1, 0))

    def lasso(self, ras_points) -> Tuple[np.ndarray, Tuple[int, int, int]]:
        """A closed polygon drawn on one slice -> (filled uint8 crop [k, j, i] one voxel thick, offset).

        The slice is the one of the voxel axis along which the points vary least, through their mean
        (on an oblique volume a polygon drawn in a world-aligned view is projected onto it). Voxels
        whose centres lie inside the polygon are filled (even-odd rule); a polygon too thin to hold a
        voxel centre keeps the voxels under its points."""
        pts = _points_of(ras_points)
        if len(pts) < 3:
            raise InputError(f"A lasso needs at least 3 points, got {len(pts)}.")
        ijk = self.continuous_ijk(pts)
        axis = int(np.argmin(np.ptp(ijk, axis=0)))
        size = self.shape[::-1]  # i, j, k
        plane = int(np.floor(ijk[:, axis].mean() + 0.5))
        if not 0 <= plane < size[axis]:
            raise InputError(f"The lasso is outside '{self.name}': its slice {'ijk'[axis]}={plane} is not in "
                             f"0..{size[axis] - 1}.")
        u_axis, v_axis = [a for a in range(3) if a != axis]
        u, v = ijk[:, u_axis], ijk[:, v_axis]
        u0, u1 = max(int(np.ceil(u.min() - _EPS)), 0), min(int(np.floor(u.max() + _EPS)), size[u_axis] - 1)
        v0, v1 = max(int(np.ceil(v.min() - _EPS)), 0), min(int(np.floor(v.max() + _EPS)), size[v_axis] - 1)
        filled = np.zeros((0, 0), bool)
        if u1 >= u0 and v1 >= v0:
            filled = _fill_polygon(u, v, np.arange(u0, u1 + 1), np.arange(v0, v1 + 1))
        if not filled.any():
            ui, vi = np.floor(u + 0.5).astype(int), np.floor(v + 0.5).astype(int)
            keep = (ui >= 0) & (ui < size[u_axis]) & (vi >= 0) & (vi < size[v_axis])
            if not keep.any():
                raise InputError(f"The lasso does not overlap '{self.name}' ({self._sizes()}).")
            u0, u1, v0, v1 = ui[keep].min(), ui[keep].max(), vi[keep].min(), vi[keep].max()
            filled = np.zeros((u1 - u0 + 1, v1 - v0 + 1), bool)
            filled[ui[keep] - u0, vi[keep] - v0] = True
        return _place_plane(filled, axis, plane, (u_axis, u0), (v_axis, v0))

    def scribble(self, stroke) -> Tuple[np.ndarray, Tuple[int, int, int]]:
        """Strokes as a label map node (non-zero voxels, on any grid), an array on this volume's grid
        [k, j, i], or (crop, offset (k, j, i)) of such an array -> (uint8 crop around the strokes, offset).
        The crop form spares the GUI thread a full-size array for a stroke of a few voxels."""
        if isinstance(stroke, tuple) and len(stroke) == 2 and isinstance(stroke[0], np.ndarray):
            crop, offset = stroke
            offset = tuple(int(o) for o in offset)
            if crop.ndim != 3 or len(offset) != 3 or any(o < 0 or o + n > size for o, n, size in
                                                          zip(offset, crop.shape, self.shape)):
                raise InputError(f"A scribble crop must lie inside the volume's {tuple(self.shape)} voxels (k, j, i), "
                                 f"got shape {crop.shape} at offset {offset}.")
            return _crop(crop != 0, f"The scribble has no voxel inside '{self.name}'.", offset=offset)
        if isinstance(stroke, np.ndarray):
            if stroke.shape != tuple(self.shape):
                raise InputError(f"A scribble array must have the volume's shape {tuple(self.shape)} (k, j, i), "
                                 f"got {stroke.shape}.")
            mask = stroke != 0
        elif stroke is not None and hasattr(stroke, "IsA") and stroke.IsA("vtkMRMLVolumeNode"):
            mask = self._resampled(stroke)
        else:
            raise InputError(f"A scribble is a label map volume node or a numpy array on the volume's grid, "
                             f"got {type(stroke).__name__}.")
        return _crop(mask, f"The scribble has no voxel inside '{self.name}'.")

    def _resampled(self, labelmap_node) -> np.ndarray:
        image = labelmap_node.GetImageData()
        if image is None or image.GetNumberOfPoints() == 0:
            raise InputError(f"'{labelmap_node.GetName()}' holds no voxels.")
        array = slicer.util.arrayFromVolume(labelmap_node)
        to_world = node_to_world(labelmap_node) @ ijk_to_ras_matrix(labelmap_node)
        if array.shape == tuple(self.shape) and np.allclose(to_world, self.ijk_to_world, atol=1e-5):
            return array != 0
        # Another grid: each stroke voxel marks the volume voxel its centre falls in (strokes are sparse).
        kji = np.argwhere(array != 0)
        mask = np.zeros(self.shape, bool)
        if len(kji):
            world = (to_world @ np.c_[kji[:, ::-1], np.ones(len(kji))].T).T[:, :3]
            ijk = np.floor(self.continuous_ijk(world) + 0.5).astype(int)
            inside = np.all((ijk >= 0) & (ijk < np.array(self.shape[::-1])), axis=1)
            mask[ijk[inside, 2], ijk[inside, 1], ijk[inside, 0]] = True
        return mask


def _points_of(ras_points) -> np.ndarray:
    if hasattr(ras_points, "IsA") and ras_points.IsA("vtkMRMLMarkupsNode"):
        return np.asarray(slicer.util.arrayFromMarkupsControlPoints(ras_points, world=True), float).reshape(-1, 3)
    try:
        pts = np.asarray(ras_points, float)
    except (TypeError, ValueError):
        raise InputError("A lasso is a list of (R, A, S) points or a markups curve node.") from None
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"A lasso is a list of (R, A, S) points, got an array of shape {pts.shape}.")
    return pts


def _fill_polygon(u, v, us, vs) -> np.ndarray:
    """Which grid points (us x vs) lie inside the polygon (u, v), even-odd rule."""
    pu, pv = np.meshgrid(us.astype(float), vs.astype(float), indexing="ij")
    inside = np.zeros(pu.shape, bool)
    n = len(u)
    for a in range(n):
        u1, v1, u2, v2 = u[a], v[a], u[(a + 1) % n], v[(a + 1) % n]
        if v1 == v2:
            continue  # a horizontal edge never crosses a horizontal ray
        crosses = (v1 > pv) != (v2 > pv)
        inside ^= crosses & (pu < u1 + (pv - v1) * (u2 - u1) / (v2 - v1))
    return inside


def _place_plane(filled, axis, plane, u, v) -> Tuple[np.ndarray, Tuple[int, int, int]]:
    """A 2D mask over voxel axes u and v (indices 0=i, 1=j, 2=k) at index ``plane`` of ``axis`` -> a crop [k, j, i]."""
    ijk_shape, ijk_offset = [1, 1, 1], [plane, plane, plane]
    (u_axis, u0), (v_axis, v0) = u, v
    ijk_shape[u_axis], ijk_shape[v_axis] = filled.shape
    ijk_offset[u_axis], ijk_offset[v_axis] = u0, v0
    crop = np.expand_dims(filled, axis).reshape(ijk_shape)  # (i, j, k) order
    crop = np.ascontiguousarray(np.transpose(crop, (2, 1, 0))).astype(np.uint8)
    return _crop(crop.astype(bool), "The lasso is empty.", offset=tuple(int(o) for o in ijk_offset[::-1]))


def _crop(mask: np.ndarray, empty_message: str, offset=(0, 0, 0)) -> Tuple[np.ndarray, Tuple[int, int, int]]:
    axes = []
    for a in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(b for b in range(3) if b != a)))
        if not hit.size:
            raise InputError(empty_message)
        axes.append(slice(int(hit[0]), int(hit[-1]) + 1))
    crop = np.ascontiguousarray(mask[tuple(axes)]).astype(np.uint8)
    return crop, tuple(int(o) + s.start for o, s in zip(offset, axes))
