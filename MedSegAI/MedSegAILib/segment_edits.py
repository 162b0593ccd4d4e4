"""Recognising segments the user changed after MedSegAI wrote them.

Each segment MedSegAI writes carries a checksum of its voxels (tag ``MedSegAI.MaskChecksum``).
A segment whose checksum no longer matches, or that has none (made by the user or another
tool), counts as edited and is never overwritten without the caller saying so.
"""
from __future__ import annotations

import hashlib

import numpy as np
import vtk
from vtk.util import numpy_support

CHECKSUM_TAG = "MedSegAI.MaskChecksum"


def internal_mask(segmentation_node, segment_id):
    """(mask [k, j, i] bool, extent start (i, j, k), image-to-world 4x4) of one segment's internal labelmap."""
    image = segmentation_node.GetBinaryLabelmapInternalRepresentation(segment_id)
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    m = vtk.vtkMatrix4x4()
    if image is None or image.GetPointData().GetScalars() is None:
        return np.zeros((0, 0, 0), bool), (0, 0, 0), np.eye(4)
    image.GetImageToWorldMatrix(m)
    ext = image.GetExtent()
    dims = (ext[5] - ext[4] + 1, ext[3] - ext[2] + 1, ext[1] - ext[0] + 1)
    if min(dims) <= 0:
        return np.zeros((0, 0, 0), bool), (0, 0, 0), np.eye(4)
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims)
    matrix = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    return array == segment.GetLabelValue(), (ext[0], ext[2], ext[4]), matrix


def mask_checksum(segmentation_node, segment_id) -> str:
    """Independent of how Slicer crops or shares the labelmap: hashes the occupied voxels' box."""
    mask, start, matrix = internal_mask(segmentation_node, segment_id)
    h = hashlib.sha1()
    h.update(np.round(matrix[:3, :3], 5).tobytes())
    nz = np.nonzero(mask)
    if len(nz[0]) == 0:
        return "empty:" + h.hexdigest()[:16]
    lo = [int(a.min()) for a in nz]
    hi = [int(a.max()) + 1 for a in nz]
    crop = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    # Absolute IJK of the box corner (k, j, i), so a shifted copy of the same shape differs.
    corner = (lo[0] + start[2], lo[1] + start[1], lo[2] + start[0])
    origin = matrix[:3, :3] @ np.array(corner[::-1], float) + matrix[:3, 3]
    h.update(np.round(origin, 3).tobytes())
    h.update(np.array(crop.shape, np.int64).tobytes())
    h.update(np.packbits(crop).tobytes())
    return h.hexdigest()


def is_edited(segmentation_node, segment_id) -> bool:
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    tag = vtk.mutable("")
    if segment is None or not segment.GetTag(CHECKSUM_TAG, tag):
        return True
    return str(tag) != mask_checksum(segmentation_node, segment_id)


def stamp(segmentation_node, segment_id) -> None:
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    segment.SetTag(CHECKSUM_TAG, mask_checksum(segmentation_node, segment_id))
