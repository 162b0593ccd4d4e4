"""Scalar volume node -> runner Image, with the exact IJK-to-RAS geometry and clear refusals."""
from __future__ import annotations

import numpy as np
import slicer
import vtk

from medsegai.io.image import Image

from .errors import InputError


def ijk_to_ras_matrix(volume_node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(m)
    return slicer.util.arrayFromVTKMatrix(m)


def check_input_volume(volume_node) -> None:
    """Raise InputError naming the problem when the node is not a single 3D scalar volume."""
    if volume_node is None:
        raise InputError("Select an input volume.")
    name = volume_node.GetName()
    if volume_node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputError(f"'{name}' is a label map; choose the CT or MR image as input.")
    if not volume_node.IsA("vtkMRMLScalarVolumeNode"):
        raise InputError(f"'{name}' is a {volume_node.GetClassName()}; a scalar CT or MR volume is needed.")
    image_data = volume_node.GetImageData()
    if image_data is None or image_data.GetNumberOfPoints() == 0:
        raise InputError(f"'{name}' holds no voxels.")
    components = image_data.GetNumberOfScalarComponents()
    if components != 1:
        raise InputError(
            f"'{name}' has {components} values per voxel (a colour, vector or 4D volume); "
            "choose a single 3D frame."
        )
    dims = image_data.GetDimensions()
    if min(dims) < 2:
        raise InputError(f"'{name}' is 2D ({dims[0]}x{dims[1]}x{dims[2]} voxels); a 3D volume is needed.")
    transform = volume_node.GetParentTransformNode()
    if transform is not None and not transform.IsTransformToWorldLinear():
        raise InputError(f"'{name}' is under a non-linear transform; harden or remove it first.")


def image_from_volume(volume_node) -> Image:
    """A copy of the voxels with the node's own IJK-to-RAS geometry (parent transforms excluded:
    the output segmentation goes under the same transform)."""
    check_input_volume(volume_node)
    array = np.array(slicer.util.arrayFromVolume(volume_node), copy=True)
    return Image.from_ijk_to_ras(array, ijk_to_ras_matrix(volume_node))
