"""A DICOM SEG segment as the starting mask of an interactive session (e.g. a PACS result to correct)."""
from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np

from .errors import InteractiveError


def mask_from_dicom_seg(path: Union[str, os.PathLike], image, segment: Optional[Union[str, int]] = None) -> np.ndarray:
    """uint8 0/1 mask of one segment of the SEG at ``path`` on ``image``'s grid. ``segment`` is its label
    (name) or number; it may be left out when the SEG holds a single segment."""
    from ..io.dicom_seg_read import read_dicom_seg

    seg = read_dicom_seg(path, reference=image)
    names = [s.name for s in seg.segments]
    if segment is None:
        if len(seg.segments) != 1:
            raise InteractiveError(f"The SEG holds {len(names)} segments ({', '.join(names)}); name the one to edit.")
        chosen = seg.segments[0]
    else:
        found = [s for s in seg.segments if s.name == segment or (isinstance(segment, int) and s.value == segment)]
        if not found:
            raise InteractiveError(f"The SEG has no segment {segment!r} (it has {', '.join(names)}).")
        chosen = found[0]
    return (seg.labels.array == chosen.value).astype(np.uint8)


def set_mask_from_dicom_seg(session, path: Union[str, os.PathLike], segment: Optional[Union[str, int]] = None):
    """``session.set_mask`` with a SEG segment resampled onto the session's image; returns the changed region."""
    if session.image is None:
        raise InteractiveError("Set the image before loading a mask from a DICOM SEG.")
    return session.set_mask(mask_from_dicom_seg(path, session.image, segment))


__all__ = ["mask_from_dicom_seg", "set_mask_from_dicom_seg"]
