"""Image writers: through ``medsegai.atomic``, so a crash or a cancel never leaves a half-written image."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import SimpleITK as sitk

from ..atomic import atomic_path
from .image import Image

__all__ = ["atomic_path", "write_sitk", "write_image"]


def _write_failed(path: Path, exc: RuntimeError) -> OSError:
    """SimpleITK reports a failed write (a full disk, most often) as a RuntimeError holding ITK's
    multi-line message: here it becomes the OSError every entry point shows as one line."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "ERROR" in ln or "failed" in ln or "error" in ln), lines[0] if lines else "")
    try:
        full = os.statvfs(path.parent).f_bavail * os.statvfs(path.parent).f_frsize < (1 << 20)
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, f"No space left on the disk to write {path.name} ({detail})", str(path))
    return OSError(errno.EIO, f"Cannot write {path.name} ({detail})", str(path))


def write_sitk(img: sitk.Image, path: str | os.PathLike, compress: bool = True) -> Path:
    with atomic_path(path) as tmp:
        try:
            sitk.WriteImage(img, str(tmp), useCompression=compress)
        except RuntimeError as exc:
            raise _write_failed(Path(path), exc) from None
    return Path(path)


def write_image(image: Image, path: str | os.PathLike, compress: bool = True) -> Path:
    return write_sitk(image.to_sitk(), path, compress)
