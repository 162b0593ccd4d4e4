"""An image as it travels to the server: a zip of the voxels (.npy, deflated) and a JSON member.

Not NIfTI: its header stores the geometry as float32, so a round trip would move the result's
grid by a rounding error and the remote files would differ from a local run's. Here the array
keeps its dtype and the spacing, origin and direction travel as float64 JSON. The .npy is read
with ``allow_pickle=False`` and its declared shape and size are checked before anything is
decompressed, so a crafted upload cannot run code or unpack into more memory than the limit.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..errors import InvalidImageError
from .protocol import ARRAY_MEMBER, META_MEMBER

COMPRESSION_LEVEL = 3  # deflate: about as small as level 9 on CT, several times faster
ALLOWED_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool")
DEFAULT_MAX_VOXELS = 2048 ** 3 // 4  # 2.1 G voxels: far beyond any CT, well below a zip bomb
_META_LIMIT = 1 << 20


def pack_image(image, target, extra: Optional[Dict[str, Any]] = None) -> int:
    """Write ``image`` (a medsegai.Image) and ``extra`` JSON into the zip file ``target``; returns its size."""
    arr = np.ascontiguousarray(image.array)
    if arr.dtype.name not in ALLOWED_DTYPES:
        arr = arr.astype(np.float32)
    meta = {"spacing": list(image.spacing), "origin": list(image.origin),
            "direction": np.asarray(image.direction, dtype=np.float64).ravel().tolist(), **(extra or {})}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESSION_LEVEL) as zf:
        zf.writestr(META_MEMBER, json.dumps(meta))
        with zf.open(ARRAY_MEMBER, "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, arr, allow_pickle=False)
    return Path(target).stat().st_size if not isinstance(target, io.IOBase) else target.tell()


def _open(path) -> zipfile.ZipFile:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidImageError(f"The uploaded image is not a MedSegAI image package ({exc}).") from None
    names = set(zf.namelist())
    if names != {ARRAY_MEMBER, META_MEMBER}:
        zf.close()
        raise InvalidImageError(f"The uploaded image package holds {sorted(names)}, expected "
                                f"{ARRAY_MEMBER} and {META_MEMBER}.")
    return zf


def read_meta(path, max_voxels: int = DEFAULT_MAX_VOXELS) -> Tuple[Dict[str, Any], Tuple[int, ...], str]:
    """(meta JSON, array shape, dtype name), checked without decompressing the voxels."""
    with _open(path) as zf:
        if zf.getinfo(META_MEMBER).file_size > _META_LIMIT:
            raise InvalidImageError("The uploaded image's metadata is too large.")
        try:
            meta = json.loads(zf.read(META_MEMBER).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, OSError) as exc:
            raise InvalidImageError(f"The uploaded image's metadata is not valid JSON ({exc}).") from None
        if not isinstance(meta, dict):
            raise InvalidImageError("The uploaded image's metadata is not a JSON object.")
        try:
            with zf.open(ARRAY_MEMBER) as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(fh)
        except (ValueError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InvalidImageError(f"The uploaded voxels cannot be read ({exc}).") from None
        declared = zf.getinfo(ARRAY_MEMBER).file_size
    if dtype.name not in ALLOWED_DTYPES or dtype.hasobject:
        raise InvalidImageError(f"The uploaded voxels have type {dtype}; send a numeric image.")
    if len(shape) != 3:
        raise InvalidImageError(f"The uploaded image is {len(shape)}D; a 3D volume is needed.")
    voxels = int(np.prod(shape))
    if voxels > max_voxels:
        raise InvalidImageError(f"The uploaded image has {voxels} voxels, more than this server takes ({max_voxels}).")
    if declared > voxels * dtype.itemsize + 4096:
        raise InvalidImageError("The uploaded voxels are larger than their declared shape.")
    if fortran:
        raise InvalidImageError("The uploaded voxels are in Fortran order; send C order.")
    _geometry(meta)
    return meta, tuple(int(n) for n in shape), dtype.name


def _geometry(meta: Dict[str, Any]):
    try:
        spacing = [float(v) for v in meta["spacing"]]
        origin = [float(v) for v in meta["origin"]]
        direction = np.asarray([float(v) for v in meta["direction"]], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise InvalidImageError("The uploaded image's geometry (spacing, origin, direction) is missing or "
                                "malformed.") from None
    if len(spacing) != 3 or len(origin) != 3 or direction.size != 9:
        raise InvalidImageError("The uploaded image's geometry needs 3 spacings, 3 origin values and a 3x3 direction.")
    return spacing, origin, direction.reshape(3, 3)


def unpack_image(path, max_voxels: int = DEFAULT_MAX_VOXELS):
    """(medsegai.Image, meta JSON) from an uploaded package; the image is validated."""
    from ..io.image import Image, validate_image

    meta, shape, _dtype = read_meta(path, max_voxels)
    spacing, origin, direction = _geometry(meta)
    with _open(path) as zf:
        try:
            with zf.open(ARRAY_MEMBER) as fh:
                arr = np.lib.format.read_array(fh, allow_pickle=False)
        except (ValueError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InvalidImageError(f"The uploaded voxels are corrupt or truncated ({exc}).") from None
    if arr.shape != shape:
        raise InvalidImageError(f"The uploaded voxels have shape {arr.shape}, not the declared {shape}.")
    image = Image(arr, tuple(spacing), tuple(origin), direction)
    validate_image(image, name="The uploaded image")
    return image, meta


def check_upload(path, max_voxels: int = DEFAULT_MAX_VOXELS) -> Tuple[Dict[str, Any], Tuple[int, ...]]:
    """(meta JSON, shape) of an upload whose voxels and geometry a run can use.

    The server calls this before it answers 202: an image with NaN voxels or zero spacing is refused
    with 400 at once rather than accepted as a job that can only fail later.
    """
    image, meta = unpack_image(path, max_voxels)
    return meta, tuple(image.array.shape)
