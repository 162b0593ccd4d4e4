"""A segmentation's segments, region by region, on the voxel grid of the volume being prompted.

The runner works on the volume's voxels, so a segment is edited only when its labelmap lies on
that same lattice (same axes and spacing, origins a whole number of voxels apart); anything else
is refused with what differs, rather than resampled behind the user's back. Reads take the
internal labelmaps as they are (shared layers included, one pass per layer); writes go through
Slicer's own ``SetBinaryLabelmapToSegment`` (remove, then add, both limited to the region), which
changes exactly that segment's voxels there and keeps Slicer's layer bookkeeping: a segment that
comes to overlap another is moved to a layer of its own by Slicer, not by us.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from .errors import InputError
from .prompt_geometry import VolumeFrame
from .volume_bridge import ijk_to_ras_matrix

Region = Tuple[slice, slice, slice]
LABELMAP = "Binary labelmap"


def _matrix(vtk_matrix) -> np.ndarray:
    return slicer.util.arrayFromVTKMatrix(vtk_matrix)


def _describe(matrix: np.ndarray, dims=None) -> str:
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    text = (f"spacing {', '.join(f'{s:.4g}' for s in spacing)} mm, origin "
            f"{', '.join(f'{o:.4g}' for o in matrix[:3, 3])}")
    if dims is not None:
        text += f", {dims[0]} x {dims[1]} x {dims[2]} voxels"
    return text


def lattice_offset(lattice: np.ndarray, other: np.ndarray) -> Optional[Tuple[int, int, int]]:
    """(i, j, k) of ``other``'s voxel (0, 0, 0) on ``lattice``, when both are the same lattice; else None."""
    t = np.linalg.inv(lattice) @ other
    shift = t[:3, 3]
    if np.allclose(t[:3, :3], np.eye(3), atol=1e-4) and np.allclose(shift, np.round(shift), atol=1e-3):
        return tuple(int(round(s)) for s in shift)
    return None


def region_extent(region: Region) -> List[int]:
    """VTK extent (i0, i1, j0, j1, k0, k1), inclusive, of a region (k, j, i)."""
    k, j, i = region
    return [i.start, i.stop - 1, j.start, j.stop - 1, k.start, k.stop - 1]


def union(a: Optional[Region], b: Optional[Region]) -> Optional[Region]:
    if a is None or any(s.stop <= s.start for s in a):
        return b
    if b is None or any(s.stop <= s.start for s in b):
        return a
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


class SegmentGrid:
    """One segmentation node seen on one volume's voxel grid (both in the scene, linear transforms)."""

    def __init__(self, segmentation_node, frame: VolumeFrame):
        if segmentation_node is None or not segmentation_node.IsA("vtkMRMLSegmentationNode"):
            raise InputError("Select a segmentation node.")
        self.node = segmentation_node
        self.segmentation = segmentation_node.GetSegmentation()
        self.frame = frame
        self.name = segmentation_node.GetName()
        between = vtk.vtkMatrix4x4()
        if not slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(
                frame.node.GetParentTransformNode(), segmentation_node.GetParentTransformNode(), between):
            raise InputError(f"'{frame.name}' and '{self.name}' are related by a non-linear transform; harden it "
                             "first.")
        # The volume's voxels in the segmentation's own coordinates, where its labelmaps live.
        self.lattice = _matrix(between) @ ijk_to_ras_matrix(frame.node)
        source = self.segmentation.GetSourceRepresentationName()
        if self.segmentation.GetNumberOfSegments() and source != LABELMAP:
            raise InputError(f"'{self.name}' is stored as {source!r}, not as a binary labelmap: convert it in "
                             "the Segmentations module (or the Segment Editor) first.")

    # -- geometry -----------------------------------------------------------------------------------
    def check_reference_geometry(self, fix_missing: bool = True) -> None:
        """Refuse a segmentation made on another grid; give one without a grid the volume's."""
        name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
        text = self.segmentation.GetConversionParameter(name)
        if not text:
            if fix_missing:
                extent = [0, self.frame.shape[2] - 1, 0, self.frame.shape[1] - 1, 0, self.frame.shape[0] - 1]
                self.segmentation.SetConversionParameter(name, slicer.vtkSegmentationConverter.SerializeImageGeometry(
                    slicer.util.vtkMatrixFromArray(self.lattice), extent))
            return
        m, extent = vtk.vtkMatrix4x4(), [0] * 6
        if not slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, m, extent):
            raise InputError(f"The reference geometry of '{self.name}' cannot be read.")
        reference = _matrix(m)
        if lattice_offset(self.lattice, reference) is None:
            dims = [extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1]
            k, j, i = self.frame.shape
            raise InputError(
                f"'{self.name}' is on another voxel grid than '{self.frame.name}': its reference geometry has "
                f"{_describe(reference, dims)}; '{self.frame.name}' has {_describe(self.lattice, (i, j, k))} (in "
                f"'{self.name}''s coordinates). Prompts edit segments on the volume's own voxels: choose the "
                f"segmentation made on '{self.frame.name}', or a new one.")

    def _layer(self, segment_id):
        """(array [k, j, i] or None, origin of array[0, 0, 0] on the volume grid (k, j, i), layer object)."""
        image = self.node.GetBinaryLabelmapInternalRepresentation(segment_id)
        if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
            return None, (0, 0, 0), image
        ext = image.GetExtent()
        dims = (ext[5] - ext[4] + 1, ext[3] - ext[2] + 1, ext[1] - ext[0] + 1)
        if min(dims) <= 0:
            return None, (0, 0, 0), image
        m = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(m)
        offset = lattice_offset(self.lattice, _matrix(m))
        if offset is None:
            segment = self.segmentation.GetSegment(segment_id)
            raise InputError(f"The segment '{segment.GetName()}' of '{self.name}' is stored on another voxel grid "
                             f"({_describe(_matrix(m), dims[::-1])}) than '{self.frame.name}' "
                             f"({_describe(self.lattice)}); it cannot be edited or protected voxel by voxel.")
        array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims)
        origin = (ext[4] + offset[2], ext[2] + offset[1], ext[0] + offset[0])
        return array, origin, image

    def check_segment(self, segment_id) -> None:
        self._layer(segment_id)

    # -- reading ------------------------------------------------------------------------------------
    def read(self, segment_id, region: Region) -> np.ndarray:
        return self.read_many([segment_id], region)[segment_id]

    def read_many(self, segment_ids: Iterable[str], region: Region) -> Dict[str, np.ndarray]:
        """Each segment's voxels (bool [k, j, i]) in ``region``; segments sharing a layer cost one crop."""
        shape = tuple(s.stop - s.start for s in region)
        crops: Dict[str, Optional[np.ndarray]] = {}
        out = {}
        for segment_id in segment_ids:
            array, origin, image = self._layer(segment_id)
            key = image.GetAddressAsString("vtkObject") if image is not None else segment_id
            if key not in crops:
                crops[key] = None if array is None else _crop_of(array, origin, region)
            crop = crops[key]
            value = self.segmentation.GetSegment(segment_id).GetLabelValue()
            out[segment_id] = np.zeros(shape, bool) if crop is None else crop == value
        return out

    def bounding_box(self, segment_id) -> Optional[Region]:
        """The segment's voxels' tight box on the volume grid (clipped to the volume), None when empty."""
        array, origin, _ = self._layer(segment_id)
        if array is None:
            return None
        value = self.segmentation.GetSegment(segment_id).GetLabelValue()
        box = []
        for axis in range(3):
            hit = np.flatnonzero((array == value).any(axis=tuple(a for a in range(3) if a != axis)))
            lo, hi = (hit[0] + origin[axis], hit[-1] + 1 + origin[axis]) if hit.size else (0, 0)
            lo, hi = max(lo, 0), min(hi, self.frame.shape[axis])
            if hi <= lo:
                return None
            box.append(slice(int(lo), int(hi)))
        return tuple(box)

    def stamp(self, segment_id) -> tuple:
        """Changes whenever the segment's voxels may have changed (its layer was modified or replaced)."""
        segment = self.segmentation.GetSegment(segment_id)
        image = self.node.GetBinaryLabelmapInternalRepresentation(segment_id)
        if segment is None:
            return ("missing",)
        return (segment.GetAddressAsString("vtkObject"), segment.GetLabelValue(),
                image.GetAddressAsString("vtkObject") if image is not None else None,
                image.GetMTime() if image is not None else None)

    # -- writing ------------------------------------------------------------------------------------
    def oriented(self, crop: np.ndarray, region: Region) -> "slicer.vtkOrientedImageData":
        """``crop`` (any scalar type) as an oriented image on the volume lattice at ``region``."""
        image = slicer.vtkOrientedImageData()
        image.SetExtent(*region_extent(region))
        image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.ascontiguousarray(crop).ravel(), deep=True))
        image.SetImageToWorldMatrix(slicer.util.vtkMatrixFromArray(self.lattice))
        return image

    def write(self, segment_id, region: Region, values: np.ndarray, old: Optional[np.ndarray] = None) -> None:
        """Make the segment's voxels in ``region`` exactly ``values``; nothing else changes."""
        values = np.asarray(values, bool)
        old = self.read(segment_id, region) if old is None else old
        logic, extent = slicer.vtkSlicerSegmentationsModuleLogic, region_extent(region)
        if (old & ~values).any():
            keep = np.where(values, 255, 0).astype(np.uint8)  # a minimum with 0 removes, with 255 keeps
            if not logic.SetBinaryLabelmapToSegment(self.oriented(keep, region), self.node, segment_id,
                                                    logic.MODE_MERGE_MIN, extent, False, []):
                raise RuntimeError(f"Slicer refused to remove voxels from segment {segment_id!r}.")
        if (values & ~old).any():
            if not logic.SetBinaryLabelmapToSegment(self.oriented(values.astype(np.uint8), region), self.node,
                                                    segment_id, logic.MODE_MERGE_MASK, extent, False, []):
                raise RuntimeError(f"Slicer refused to add voxels to segment {segment_id!r}.")

    def segment_ids(self) -> List[str]:
        return [self.segmentation.GetNthSegmentID(n) for n in range(self.segmentation.GetNumberOfSegments())]

    def visible(self, segment_ids: Sequence[str]) -> List[str]:
        display = self.node.GetDisplayNode()
        if display is None:
            return list(segment_ids)
        return [s for s in segment_ids if display.GetSegmentVisibility(s)]


def _crop_of(array: np.ndarray, origin, region: Region) -> np.ndarray:
    """``array`` (placed at ``origin``) read over ``region``; zero where it does not reach."""
    shape = tuple(s.stop - s.start for s in region)
    out = np.zeros(shape, array.dtype)
    src, dst = [], []
    for axis in range(3):
        lo = max(region[axis].start, origin[axis])
        hi = min(region[axis].stop, origin[axis] + array.shape[axis])
        if hi <= lo:
            return out
        src.append(slice(lo - origin[axis], hi - origin[axis]))
        dst.append(slice(lo - region[axis].start, hi - region[axis].start))
    out[tuple(dst)] = array[tuple(src)]
    return out
