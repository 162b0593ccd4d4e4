"""Image writers: through ``medsegai.atomic``, so a crash or a cancel never leaves a half-written image."""
from __future__ import annotations

import os
from pathlib import Path

import SimpleITK as sitk

from ..atomic import atomic_path
from .image import Image

__all__ = ["atomic_path", "write_sitk", "write_image"]


def write_sitk(img: sitk.Image, path: str | os.PathLike, compress: bool = True) -> Path:
    with atomic_path(path) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=compress)
    return Path(path)


def write_image(image: Image, path: str | os.PathLike, compress: bool = True) -> Path:
    return write_sitk(image.to_sitk(), path, compress)
