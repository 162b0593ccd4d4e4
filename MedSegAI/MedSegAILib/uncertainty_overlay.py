"""The uncertainty map in the scene: a scalar volume on the input's exact grid, shown as a heat
overlay in the slice views' foreground layer, with its own colour table and a colour legend.

No Qt here: the widget only passes slider values in. Colour tables that Slicer loads from files
(Inferno, ...) are not there in every build, so the heat table is built here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import slicer
import vtk

from medsegai.io.image import Image

from .errors import InputError
from .volume_bridge import ijk_to_ras_matrix

COLOR_NODE_NAME = "MedSegAI Uncertainty"
MAP_TAG = "MedSegAI.UncertaintyMethod"  # attribute on the volume node: which method made it
DEFAULT_OPACITY = 0.5
DEFAULT_THRESHOLD = 0.1  # voxels below this stay transparent, so the CT shows where the model is sure


@dataclass(frozen=True)
class OverlaySettings:
    opacity: float = DEFAULT_OPACITY
    threshold: float = DEFAULT_THRESHOLD


def heat_color_node(scene):
    """A 256-entry black-red-yellow-white table for 0..1 (created once per scene)."""
    existing = scene.GetFirstNodeByName(COLOR_NODE_NAME)
    if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
        return existing
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", COLOR_NODE_NAME)
    node.SetTypeToUser()
    node.SetNumberOfColors(256)
    node.SetNamesInitialised(True)
    for n in range(256):
        t = n / 255.0
        r, g, b = min(1.0, 3 * t), min(1.0, max(0.0, 3 * t - 1)), min(1.0, max(0.0, 3 * t - 2))
        node.SetColor(n, f"{t:.2f}", r, g, b, 1.0)
    node.SetAttribute("Category", "MedSegAI")
    return node


def add_uncertainty_volume(scene, uncertainty: Image, reference_volume, method: str, name: Optional[str] = None,
                           settings: OverlaySettings = OverlaySettings(), colors_logic=None):
    """Add the map as a scalar volume on ``reference_volume``'s grid; returns the node.

    Refuses (scene untouched) when the map is not on the reference's grid: a shifted overlay would
    point the user at the wrong anatomy.
    """
    ref = Image.from_ijk_to_ras(slicer.util.arrayFromVolume(reference_volume), ijk_to_ras_matrix(reference_volume))
    if not uncertainty.same_grid(ref):
        raise InputError("The uncertainty map does not lie on the input volume's grid; it was not added.")
    arr = np.asarray(uncertainty.array, dtype=np.float32)
    if not np.isfinite(arr).all() or arr.min(initial=0) < 0 or arr.max(initial=0) > 1:
        raise InputError("The uncertainty map holds values outside 0..1; it was not added.")
    color = heat_color_node(scene)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode",
                                   scene.GenerateUniqueName(name or f"{reference_volume.GetName()} uncertainty"))
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras_matrix(reference_volume)))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(arr))
    node.SetAttribute(MAP_TAG, method)
    transform = reference_volume.GetParentTransformNode()
    if transform is not None:
        node.SetAndObserveTransformNodeID(transform.GetID())
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(color.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)  # the colours mean the same on every map
    display.SetInterpolate(False)
    set_overlay_threshold(node, settings.threshold)
    if colors_logic is not None:
        add_color_legend(node, colors_logic)
    return node


def set_overlay_threshold(volume_node, threshold: float) -> None:
    """Voxels whose uncertainty is below ``threshold`` are not drawn."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise InputError(f"The overlay threshold must be between 0 and 1, got {threshold}.")
    display = volume_node.GetDisplayNode()
    display.SetApplyThreshold(True)
    display.SetLowerThreshold(float(threshold))
    display.SetUpperThreshold(1.0)


def add_color_legend(volume_node, colors_logic):
    """Slicer's colour legend for the overlay in the slice views (title says the method)."""
    legend = colors_logic.AddDefaultColorLegendDisplayNode(volume_node)
    if legend is not None:
        legend.SetTitleText(f"Uncertainty ({volume_node.GetAttribute(MAP_TAG) or ''})")
        legend.SetVisibility(True)
    return legend


def show_overlay(scene, background_volume, uncertainty_volume, opacity: float = DEFAULT_OPACITY) -> int:
    """Put the map in every slice view's foreground over ``background_volume``; returns the view count."""
    if not 0.0 <= float(opacity) <= 1.0:
        raise InputError(f"The overlay opacity must be between 0 and 1, got {opacity}.")
    count = 0
    for comp in scene.GetNodesByClass("vtkMRMLSliceCompositeNode") or []:
        comp.SetBackgroundVolumeID(background_volume.GetID())
        comp.SetForegroundVolumeID(uncertainty_volume.GetID())
        comp.SetForegroundOpacity(float(opacity))
        count += 1
    return count


def set_overlay_opacity(scene, uncertainty_volume, opacity: float) -> int:
    """Change the opacity in the views that show this map; returns how many."""
    if not 0.0 <= float(opacity) <= 1.0:
        raise InputError(f"The overlay opacity must be between 0 and 1, got {opacity}.")
    count = 0
    for comp in scene.GetNodesByClass("vtkMRMLSliceCompositeNode") or []:
        if comp.GetForegroundVolumeID() == uncertainty_volume.GetID():
            comp.SetForegroundOpacity(float(opacity))
            count += 1
    return count
