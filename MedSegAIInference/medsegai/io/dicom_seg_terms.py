"""Segment codes between Slicer's terminology entry string (what SegmentInfo carries) and DICOM.

One parser for both directions, so the codes a SEG gets are exactly those the .seg.nrrd gets, and a
SEG read back yields the same entry string.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pydicom.sr.coding import Code as CodedConcept  # highdicom takes these; pydicom is a core dependency

from ..terminology import ANATOMIC_CONTEXT_NAME, CONTEXT_NAME


@dataclass(frozen=True)
class SegmentCodes:
    category: CodedConcept
    type: CodedConcept
    type_modifier: Optional[CodedConcept] = None  # laterality (left/right)
    region: Optional[CodedConcept] = None
    region_modifier: Optional[CodedConcept] = None


def _code(text: str) -> Optional[CodedConcept]:
    parts = text.split("^")
    if len(parts) < 3 or not parts[0] or not parts[1]:
        return None
    return CodedConcept(parts[1], parts[0], "^".join(parts[2:]))


def codes_from_entry(entry: str) -> Optional[SegmentCodes]:
    """The codes of a ``TerminologyEntry`` string; None when it has no category and type code."""
    fields = (entry or "").split("~")
    if len(fields) < 3:
        return None
    category, type_ = _code(fields[1]), _code(fields[2])
    if category is None or type_ is None:
        return None
    get = lambda n: _code(fields[n]) if len(fields) > n else None  # noqa: E731
    return SegmentCodes(category, type_, get(3), get(5), get(6))


def _serialize(code) -> str:
    return f"{code.scheme_designator}^{code.value}^{code.meaning}" if code is not None else "^^"


def entry_from_codes(category, type_, type_modifier=None, region=None, region_modifier=None) -> str:
    """A ``TerminologyEntry`` string from DICOM codes (pydicom/highdicom code objects or None)."""
    return "~".join([CONTEXT_NAME, _serialize(category), _serialize(type_), _serialize(type_modifier),
                     ANATOMIC_CONTEXT_NAME, _serialize(region), _serialize(region_modifier)])


__all__ = ["SegmentCodes", "codes_from_entry", "entry_from_codes"]
