"""The runner's in-memory image: a numpy array plus its physical grid.

Axis convention: ``array`` is indexed ``[k, j, i]`` (slowest axis first), exactly what
``SimpleITK.GetArrayFromImage`` and Slicer's ``slicer.util.arrayFromVolume`` return, so no
layer has to transpose. ``spacing``/``origin`` are in ``(i, j, k)`` order and ``direction`` is a
3x3 matrix whose columns are the i, j, k axes in LPS patient coordinates (SimpleITK/DICOM).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidImageError

Vec3 = Tuple[float, float, float]


@dataclass
class Image:
    array: np.ndarray
    spacing: Vec3 = (1.0, 1.0, 1.0)
    origin: Vec3 = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    # -- geometry -------------------------------------------------------------------------------
    @property
    def shape(self) -> Tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    def ijk_to_lps(self) -> np.ndarray:
        """4x4 matrix mapping (i, j, k, 1) voxel indices to LPS millimetres."""
        m = np.eye(4)
        m[:3, :3] = self.direction @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m

    def ijk_to_ras(self) -> np.ndarray:
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.ijk_to_lps()

    @classmethod
    def from_ijk_to_ras(cls, array: np.ndarray, ijk_to_ras: np.ndarray) -> "Image":
        """Build from a Slicer-style IJK-to-RAS matrix (spacing folded into the columns)."""
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(ijk_to_ras, dtype=np.float64)
        cols = lps[:3, :3]
        spacing = np.linalg.norm(cols, axis=0)
        if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
            raise InvalidImageError(f"The image grid has zero or invalid spacing {_fmt(spacing)}.")
        return cls(array, tuple(spacing), tuple(lps[:3, 3]), cols / spacing)

    def same_grid(self, other: "Image", atol: float = 1e-4) -> bool:
        return self.shape == other.shape and np.allclose(self.ijk_to_lps(), other.ijk_to_lps(), atol=atol)

    def with_array(self, array: np.ndarray) -> "Image":
        """A new image on the same grid with other voxel values (e.g. labels for this image)."""
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} does not match grid {self.array.shape}")
        return Image(array, self.spacing, self.origin, self.direction.copy())

    # -- SimpleITK ------------------------------------------------------------------------------
    def to_sitk(self) -> sitk.Image:
        img = sitk.GetImageFromArray(np.ascontiguousarray(self.array), isVector=False)
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(tuple(self.direction.flatten()))
        return img

    @classmethod
    def from_sitk(cls, img: sitk.Image) -> "Image":
        if img.GetNumberOfComponentsPerPixel() != 1:
            raise InvalidImageError(
                f"The image has {img.GetNumberOfComponentsPerPixel()} components per voxel "
                "(colour or vector image); a single-channel CT or MR volume is needed."
            )
        dim = img.GetDimension()
        if dim != 3:
            raise InvalidImageError(f"The image is {dim}D; a 3D volume is needed.")
        return cls(
            sitk.GetArrayFromImage(img),
            img.GetSpacing(),
            img.GetOrigin(),
            np.array(img.GetDirection()).reshape(3, 3),
        )


def _fmt(values) -> str:
    """(0.0, -1.5, nan) rather than numpy's (np.float64(0.0), ...) in user-facing messages."""
    return "(" + ", ".join(f"{float(v):g}" for v in values) + ")"


def validate_image(image: Image, *, name: str = "The input image") -> None:
    """Refuse images no model can use, with a message that names the problem."""
    arr = image.array
    if arr.ndim != 3:
        raise InvalidImageError(f"{name} is {arr.ndim}D; a 3D volume is needed.")
    if 0 in arr.shape:
        raise InvalidImageError(f"{name} is empty (shape {arr.shape}).")
    if min(arr.shape) < 2:
        raise InvalidImageError(f"{name} has a single slice along one axis (shape {arr.shape}); a 3D volume is needed.")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidImageError(f"{name} has non-numeric voxels ({arr.dtype}).")
    sp = np.asarray(image.spacing)
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InvalidImageError(f"{name} has zero, negative or invalid spacing {_fmt(sp)} mm.")
    if not np.all(np.isfinite(image.direction)) or abs(abs(np.linalg.det(image.direction)) - 1) > 1e-3:
        raise InvalidImageError(f"{name} has an invalid (non-orthonormal) direction matrix.")
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        if not finite.all():
            n_bad = int(arr.size - np.count_nonzero(finite))
            raise InvalidImageError(f"{name} contains {n_bad} NaN or infinite voxel(s).")
