"""Describing the segments of a label map: value, name, colour, terminology."""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

RGB = Tuple[float, float, float]


@dataclass(frozen=True)
class SegmentInfo:
    value: int
    name: str
    color: RGB  # 0..1
    # Slicer terminology entry string (``TerminologyEntry`` tag), empty when no code is known.
    terminology: str = ""


def fallback_color(value: int) -> RGB:
    """A stable, well-spread colour for a label that has no recommended colour."""
    hue = (value * 0.618033988749895) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.65, 0.95)


def segments_from_names(label_names: Dict[int, str], lookup: Optional[callable] = None) -> List[SegmentInfo]:
    """Build SegmentInfo for every non-background label; ``lookup(name)`` may supply colour/terminology."""
    out = []
    for value in sorted(label_names):
        if value == 0:
            continue
        name = label_names[value]
        color, term = fallback_color(value), ""
        if lookup is not None:
            found = lookup(name)
            if found is not None:
                color, term = found
        out.append(SegmentInfo(int(value), name, tuple(float(c) for c in color), term))
    return out
