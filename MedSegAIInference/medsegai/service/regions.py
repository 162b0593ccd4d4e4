"""A 0/1 region of a mask as it travels on the worker channel: offset, shape and packed bits.

``{"offset": [k, j, i], "shape": [dk, dj, di], "bits": "<base64 of zlib(np.packbits(crop))>"}``, C order.
Packing the bits first makes zlib's input 8 times smaller, which is what keeps the GUI thread's
share of a prompt in milliseconds on a full-size CT. An empty region has shape [0, 0, 0]. The
same functions run in the worker and in Slicer, so both ends agree by construction.
"""
from __future__ import annotations

import base64
import zlib
from typing import Optional, Tuple

import numpy as np

Region = Tuple[slice, slice, slice]
EMPTY: Region = (slice(0, 0), slice(0, 0), slice(0, 0))


class RegionFormatError(ValueError):
    """A packed region that does not decode to what it claims (a caller's bug, not the user's)."""


def is_empty(region: Region) -> bool:
    return any(s.stop <= s.start for s in region)


def encode(values: np.ndarray, offset=(0, 0, 0)) -> dict:
    values = np.asarray(values)
    if values.ndim != 3:
        raise RegionFormatError(f"a region is 3D, got {values.ndim}D")
    if values.size == 0:
        return {"offset": [int(o) for o in offset], "shape": [0, 0, 0], "bits": ""}
    # packbits reads any non-zero uint8 as 1 and needs no bool copy (a copy tripled the cost).
    bits = np.packbits(values if values.dtype in (np.uint8, np.bool_) else values != 0, axis=None)
    return {"offset": [int(o) for o in offset], "shape": [int(n) for n in values.shape],
            "bits": base64.b64encode(zlib.compress(bits.tobytes(), 1)).decode("ascii")}


def encode_region(mask: np.ndarray, region: Region) -> dict:
    """The values of ``mask`` (the whole grid) inside ``region``."""
    if is_empty(region):
        return encode(np.zeros((0, 0, 0), np.uint8))
    return encode(mask[region], tuple(s.start for s in region))


def decode(packed: Optional[dict]) -> Tuple[np.ndarray, Tuple[int, int, int]]:
    """(uint8 0/1 crop [k, j, i], offset (k, j, i))."""
    if not isinstance(packed, dict):
        raise RegionFormatError(f"a region is an object with offset, shape and bits, got {type(packed).__name__}")
    try:
        offset = tuple(int(o) for o in packed["offset"])
        shape = tuple(int(n) for n in packed["shape"])
        text = packed["bits"]
    except (KeyError, TypeError, ValueError) as exc:
        raise RegionFormatError(f"malformed region: {exc}") from None
    if len(offset) != 3 or len(shape) != 3 or min(shape) < 0 or min(offset) < 0:
        raise RegionFormatError(f"malformed region: offset {offset}, shape {shape}")
    count = int(np.prod(shape))
    if count == 0:
        return np.zeros((0, 0, 0), np.uint8), offset
    try:
        raw = zlib.decompress(base64.b64decode(text, validate=True))
    except (ValueError, zlib.error) as exc:
        raise RegionFormatError(f"region bits cannot be decoded: {exc}") from None
    if len(raw) != (count + 7) // 8:
        raise RegionFormatError(f"region bits hold {len(raw) * 8} values, the shape {shape} needs {count}")
    values = np.unpackbits(np.frombuffer(raw, np.uint8), count=count).reshape(shape)
    return values, offset


def region_of(values: np.ndarray, offset) -> Region:
    if values.size == 0:
        return EMPTY
    return tuple(slice(int(o), int(o) + int(n)) for o, n in zip(offset, values.shape))
