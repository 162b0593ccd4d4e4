"""Slicer's masking settings, as the Segment Editor holds them, applied to one prompt's region.

SlicerNNInteractive's users lost finished segments to a new one (its issues #86, #105) because it
wrote around these settings. Here every prompt goes through them: the editable area comes from
Slicer's own ``vtkMRMLSegmentationNode.GenerateEditMask`` (computed on the prompt's region only,
so a full-size CT costs nothing extra), with the intensity range when it is on (applied to the
volume being prompted, which is the source volume of an interactive session);
the overwrite mode says which other segments give up the voxels the prompt adds to the target.
Voxels the settings refuse keep their old value, as Slicer's effects do in "set" mode.

Where they are read from: the segment editor node passed in, else the Segment Editor module's
node in the scene (singleton tag ``SegmentEditor``), else the scene's default node of that class.
With none of these (a console session in a scene where the Segment Editor was never opened),
other segments are protected: they keep all their voxels and the target may overlap them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import slicer
from vtk.util import numpy_support

from .errors import InputError

EDITOR_SINGLETON_TAG = "SegmentEditor"
_EDITOR = "vtkMRMLSegmentEditorNode"

OVERWRITE = {"all": "OverwriteAllSegments", "visible": "OverwriteVisibleSegments", "none": "OverwriteNone"}
EDITABLE = {
    "everywhere": "EditAllowedEverywhere", "inside_all": "EditAllowedInsideAllSegments",
    "inside_visible": "EditAllowedInsideVisibleSegments", "outside_all": "EditAllowedOutsideAllSegments",
    "outside_visible": "EditAllowedOutsideVisibleSegments", "inside_segment": "EditAllowedInsideSingleSegment",
}


def _code(cls, name: str) -> int:
    return int(getattr(getattr(slicer, cls), name))


@dataclass(frozen=True)
class MaskingSettings:
    overwrite: str = "none"  # a key of OVERWRITE
    editable: str = "everywhere"  # a key of EDITABLE
    mask_segment_id: str = ""  # for editable == "inside_segment"
    intensity_range: Optional[Tuple[float, float]] = None  # editable only between these values
    source: str = "MedSegAI's default, as the scene has no Segment Editor settings"

    @property
    def mask_mode(self) -> int:
        return _code("vtkMRMLSegmentationNode", EDITABLE[self.editable])


def settings_from_node(editor_node, source: Optional[str] = None) -> MaskingSettings:
    overwrite = {_code(_EDITOR, v): k for k, v in OVERWRITE.items()}.get(editor_node.GetOverwriteMode(), "all")
    editable = {_code("vtkMRMLSegmentationNode", v): k for k, v in EDITABLE.items()}.get(
        editor_node.GetMaskMode(), "everywhere")
    intensity = None
    if editor_node.GetSourceVolumeIntensityMask():
        lo, hi = editor_node.GetSourceVolumeIntensityMaskRange()
        intensity = (float(lo), float(hi))
    return MaskingSettings(overwrite, editable, editor_node.GetMaskSegmentID() or "", intensity,
                           source or f"segment editor node '{editor_node.GetName() or editor_node.GetID()}'")


def current_settings(scene, editor_node=None) -> MaskingSettings:
    """The settings in force now (they are read at every prompt: the user may change them between two)."""
    if editor_node is not None:
        if not editor_node.IsA(_EDITOR):
            raise InputError(f"segmentEditorNode must be a {_EDITOR}, got {editor_node.GetClassName()}.")
        return settings_from_node(editor_node)
    if scene is not None:
        node = scene.GetSingletonNode(EDITOR_SINGLETON_TAG, _EDITOR)
        if node is not None:
            return settings_from_node(node, "the Segment Editor")
        default = scene.GetDefaultNodeByClass(_EDITOR)
        if default is not None:
            return settings_from_node(default, "the scene's default segment editor settings")
    return MaskingSettings()


def editable_mask(grid, target_id: str, region, settings: MaskingSettings) -> Optional[np.ndarray]:
    """Where in ``region`` the target may change (bool [k, j, i]); None: everywhere."""
    if settings.editable == "everywhere" and settings.intensity_range is None:
        return None
    shape = tuple(s.stop - s.start for s in region)
    reference = slicer.vtkOrientedImageData()
    reference.SetExtent(*_extent(region))
    reference.SetImageToWorldMatrix(slicer.util.vtkMatrixFromArray(grid.lattice))
    source, intensity = None, None
    if settings.intensity_range is not None:
        source = grid.oriented(np.array(slicer.util.arrayFromVolume(grid.frame.node)[region]), region)
        intensity = list(settings.intensity_range)
    out = slicer.vtkOrientedImageData()
    args = (source, intensity) if source is not None else ()
    ok = grid.node.GenerateEditMask(out, settings.mask_mode, reference, target_id, settings.mask_segment_id or "",
                                    *args)
    scalars = out.GetPointData().GetScalars() if ok else None
    if scalars is None:
        raise InputError(f"Slicer could not compute the editable area ({settings.editable.replace('_', ' ')}) "
                         f"of '{grid.name}'.")
    ext = out.GetExtent()
    if list(ext) != _extent(region):
        raise RuntimeError(f"GenerateEditMask returned extent {ext} for the region {_extent(region)}")
    # Slicer's mask is non-zero where editing is NOT allowed.
    return numpy_support.vtk_to_numpy(scalars).reshape(shape) == 0


def overwritten(grid, target_id: str, settings: MaskingSettings) -> List[str]:
    """The other segments that give up voxels the target gains."""
    others = [s for s in grid.segment_ids() if s != target_id]
    if settings.overwrite == "all":
        return others
    if settings.overwrite == "visible":
        return grid.visible(others)
    return []


def _extent(region) -> List[int]:
    k, j, i = region
    return [i.start, i.stop - 1, j.start, j.stop - 1, k.start, k.stop - 1]


def describe(settings: MaskingSettings, segmentation_node, target_id: str) -> str:
    """One plain sentence for the panel: what the next prompt will do to this segment and the others."""
    segmentation = segmentation_node.GetSegmentation()
    name = _name(segmentation, target_id)
    where = {
        "everywhere": "anywhere",
        "inside_all": "only inside other segments",
        "inside_visible": "only inside visible segments",
        "outside_all": "only outside all other segments",
        "outside_visible": "only outside visible segments",
        "inside_segment": (f"only inside '{_name(segmentation, settings.mask_segment_id)}'"
                           if settings.mask_segment_id and segmentation.GetSegment(settings.mask_segment_id)
                           else "nowhere (the editable area is 'inside a segment' but no segment is chosen)"),
    }[settings.editable]
    if settings.intensity_range is not None:
        lo, hi = settings.intensity_range
        where += f", where the intensity is between {lo:g} and {hi:g}"
    others = {
        "none": "other segments keep all their voxels (it may overlap them)",
        "visible": "visible segments give up the voxels it takes from them; hidden ones keep theirs (it may "
                   "overlap them)",
        "all": "any other segment gives up the voxels it takes from it",
    }[settings.overwrite]
    return (f"Prompts change '{name}' {where}; {others}. Undo restores every voxel a prompt changed, in every "
            f"segment. (Settings: {settings.source}.)")


def _name(segmentation, segment_id: str) -> str:
    segment = segmentation.GetSegment(segment_id) if segment_id else None
    return segment.GetName() if segment is not None else (segment_id or "?")
