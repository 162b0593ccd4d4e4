"""Recognising segments the user changed after MedSegAI wrote them.

Each segment MedSegAI writes carries a checksum of its voxels (tag ``MedSegAI.MaskChecksum``).
A segment whose checksum no longer matches, or that has none (made by the user or another
tool), counts as edited and is never overwritten without the caller saying so.
"""
from __future__ import annotations

import hashlib
from typing import Dict, List, Optional, Sequence

import numpy as np
import vtk
from vtk.util import numpy_support

CHECKSUM_TAG = "MedSegAI.MaskChecksum"


def _layer(segmentation_node, segment_id):
    """(label array [k, j, i] of the segment's layer, extent start (i, j, k), image-to-world 4x4,
    the layer's address); segments written together share one layer."""
    image = segmentation_node.GetBinaryLabelmapInternalRepresentation(segment_id)
    m = vtk.vtkMatrix4x4()
    if image is None or image.GetPointData().GetScalars() is None:
        return np.zeros((0, 0, 0), np.uint8), (0, 0, 0), np.eye(4), None
    image.GetImageToWorldMatrix(m)
    ext = image.GetExtent()
    dims = (ext[5] - ext[4] + 1, ext[3] - ext[2] + 1, ext[1] - ext[0] + 1)
    matrix = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    if min(dims) <= 0:
        return np.zeros((0, 0, 0), np.uint8), (0, 0, 0), matrix, None
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims)
    return array, (ext[0], ext[2], ext[4]), matrix, image.GetAddressAsString("vtkObject")


def internal_mask(segmentation_node, segment_id):
    """(mask [k, j, i] bool, extent start (i, j, k), image-to-world 4x4) of one segment's internal labelmap."""
    array, start, matrix, _ = _layer(segmentation_node, segment_id)
    value = segmentation_node.GetSegmentation().GetSegment(segment_id).GetLabelValue()
    return array == value, start, matrix


def _box(array: np.ndarray, value: int):
    """The tight box of the voxels equal to ``value`` (slices k, j, i), or None. Projections, not
    np.nonzero: nonzero on a full-size CT took 0.15 s per segment (bench_gui_handoff.py)."""
    if array.size == 0:
        return None
    mask = array == value
    ks = np.flatnonzero(mask.any(axis=(1, 2)))
    if not ks.size:
        return None
    sub = mask[ks[0]:ks[-1] + 1]
    js = np.flatnonzero(sub.any(axis=(0, 2)))
    is_ = np.flatnonzero(sub.any(axis=(0, 1)))
    return slice(ks[0], ks[-1] + 1), slice(js[0], js[-1] + 1), slice(is_[0], is_[-1] + 1)


def _boxes(array: np.ndarray, values: Sequence[int]) -> Dict[int, Optional[tuple]]:
    """The boxes of several values of one layer in one pass (scipy's find_objects), the same
    boxes as :func:`_box`; without scipy, one value at a time."""
    try:
        from scipy import ndimage
    except ImportError:
        ndimage = None
    if ndimage is None or array.size == 0 or array.dtype.kind not in "ui" or not values:
        return {v: _box(array, v) for v in values}
    found = ndimage.find_objects(array, max_label=max(values))
    return {v: (found[v - 1] if v > 0 else _box(array, v)) for v in values}


def _digest(array, value: int, box, start, matrix) -> str:
    """Independent of how Slicer crops or shares the labelmap: hashes the occupied voxels' box."""
    h = hashlib.sha1()
    h.update(np.round(matrix[:3, :3], 5).tobytes())
    if box is None:
        return "empty:" + h.hexdigest()[:16]
    crop = array[box] == value
    # Absolute IJK of the box corner (k, j, i), so a shifted copy of the same shape differs.
    corner = (box[0].start + start[2], box[1].start + start[1], box[2].start + start[0])
    origin = matrix[:3, :3] @ np.array(corner[::-1], float) + matrix[:3, 3]
    h.update(np.round(origin, 3).tobytes())
    h.update(np.array(crop.shape, np.int64).tobytes())
    h.update(np.packbits(crop).tobytes())
    return h.hexdigest()


def mask_checksum(segmentation_node, segment_id) -> str:
    return checksums(segmentation_node, [segment_id])[segment_id]


def checksums(segmentation_node, segment_ids: Sequence[str]) -> Dict[str, str]:
    """Checksums of several segments; those sharing a layer cost one pass over it together."""
    segmentation = segmentation_node.GetSegmentation()
    by_layer: Dict[object, list] = {}
    for segment_id in segment_ids:
        array, start, matrix, address = _layer(segmentation_node, segment_id)
        value = int(segmentation.GetSegment(segment_id).GetLabelValue())
        by_layer.setdefault(address or segment_id, [array, start, matrix, []])[3].append((segment_id, value))
    out = {}
    for array, start, matrix, members in by_layer.values():
        boxes = _boxes(array, sorted({v for _, v in members}))
        for segment_id, value in members:
            out[segment_id] = _digest(array, value, boxes[value], start, matrix)
    return out


def edited_segments(segmentation_node, segment_ids: Sequence[str]) -> List[str]:
    """Those of ``segment_ids`` whose voxels changed since MedSegAI wrote them, or that it did not write."""
    segmentation = segmentation_node.GetSegmentation()
    stamped = {}
    for segment_id in segment_ids:
        tag = vtk.mutable("")
        segment = segmentation.GetSegment(segment_id)
        if segment is not None and segment.GetTag(CHECKSUM_TAG, tag):
            stamped[segment_id] = str(tag)
    now = checksums(segmentation_node, list(stamped))
    return [s for s in segment_ids if s not in stamped or stamped[s] != now[s]]


def is_edited(segmentation_node, segment_id) -> bool:
    return bool(edited_segments(segmentation_node, [segment_id]))


def stamp(segmentation_node, segment_ids) -> None:
    """Record the checksum of each of ``segment_ids`` (one id or several)."""
    ids = [segment_ids] if isinstance(segment_ids, str) else list(segment_ids)
    segmentation = segmentation_node.GetSegmentation()
    for segment_id, digest in checksums(segmentation_node, ids).items():
        segmentation.GetSegment(segment_id).SetTag(CHECKSUM_TAG, digest)
