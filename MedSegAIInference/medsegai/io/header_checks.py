"""Checks on an image file's header before any voxel is read.

A header can claim a volume far larger than the computer's memory (a damaged file, or one made to
exhaust it: a few MB of gzip can claim 128 GiB of zeros). SimpleITK would try to allocate and fill
it, and the run would swap or be killed instead of saying why; the header alone says it cannot fit.
MetaImage headers may also carry a negative ElementSpacing, which ITK silently turns into a
mirrored direction: the README promises that zero or negative spacing is refused.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidImageError
from ..system_memory import available_ram_bytes

_BITS = re.compile(r"(\d+)-bit")


def _fmt_gib(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB"


def check_fits_in_memory(name: str, size, bytes_per_voxel: int) -> None:
    """Refuse a volume of ``size`` voxels that could not be held in the free memory even once."""
    needed = float(np.prod([float(s) for s in size])) * bytes_per_voxel
    free = available_ram_bytes()
    if free is not None and needed > free:
        dims = "x".join(str(int(s)) for s in size)
        raise InvalidImageError(
            f"Image {name} claims {dims} voxels ({_fmt_gib(needed)}), more than this computer's free memory "
            f"({_fmt_gib(free)}); the file is damaged or not a CT/MR volume.")


def check_claimed_size(path: Path) -> None:
    """The header's size against the free memory; headers SimpleITK cannot parse are left to the read."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return  # the full read reports what is wrong with it
    bits = _BITS.search(sitk.GetPixelIDValueAsString(reader.GetPixelID()))
    per_component = int(bits.group(1)) // 8 if bits else 8
    check_fits_in_memory(path.name, reader.GetSize(), per_component * max(1, reader.GetNumberOfComponents()))


def check_metaimage_spacing(path: Path) -> None:
    """A MetaImage (.mha/.mhd) header with a zero or negative ElementSpacing or ElementSize."""
    with open(path, "rb") as fh:
        head = fh.read(16384)
    for line in head.split(b"\n"):
        key, sep, value = line.partition(b"=")
        key = key.strip()
        if key == b"ElementDataFile":
            break  # the voxels start after this line
        if sep and key in (b"ElementSpacing", b"ElementSize"):
            try:
                values = [float(v) for v in value.split()]
            except ValueError:
                continue  # unparsable: SimpleITK's read reports it
            if any(not np.isfinite(v) or v <= 0 for v in values):
                shown = ", ".join(f"{v:g}" for v in values)
                raise InvalidImageError(f"Image {path.name} has zero, negative or invalid spacing ({shown}) in its "
                                        f"header ({key.decode()}).")
