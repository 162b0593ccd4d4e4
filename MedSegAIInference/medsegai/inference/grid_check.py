"""Is the image's grid one a model can work on at its spacing?

A wrong spacing in a header (metres written as millimetres, micrometres as millimetres) turns a
small image into one of trillions of voxels at the model's spacing, or into less than one voxel:
numpy would fail to allocate terabytes, torch would fail on an empty tensor. Both are said here,
with the numbers, before any resampling.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InvalidImageError
from ..system_memory import available_ram_bytes

_BYTES_PER_VOXEL = 8  # the resamplers work in float64


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def check_model_grid(shape_kji: Sequence[int], spacing_kji: Sequence[float], model_spacing_kji: Sequence[float]) -> None:
    # Both tests hold whatever axis order the pipeline gives the model's spacing (canonical
    # reorientation may permute it): the smallest extent against the finest model spacing rounds
    # to zero voxels in any order, and the voxel count is a product.
    extent = [s * o for s, o in zip(shape_kji, spacing_kji)]
    new_shape = [e / n for e, n in zip(extent, model_spacing_kji)]
    spacing_ijk, model_ijk = _fmt(spacing_kji[::-1]), _fmt(model_spacing_kji[::-1])
    if min(extent) < 0.5 * min(model_spacing_kji):
        raise InvalidImageError(
            f"At the model's spacing {model_ijk} mm the image (spacing {spacing_ijk} mm) would be less than one "
            "voxel thick along an axis; its spacing is probably wrong.")
    needed = float(np.prod(new_shape)) * _BYTES_PER_VOXEL
    free = available_ram_bytes()
    if free is not None and needed > free:
        dims = "x".join(str(int(round(s))) for s in new_shape[::-1])
        raise InvalidImageError(
            f"At the model's spacing {model_ijk} mm the image (spacing {spacing_ijk} mm) would be {dims} voxels "
            f"({needed / 1024**3:.0f} GiB), more than the free memory; its spacing is probably wrong.")
