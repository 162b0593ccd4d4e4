"""Structure names -> SNOMED CT terminology, recommended colours and GUI groups.

The table ``structures.csv`` (shipped inside this package) covers TotalSegmentator's ``total``
and ``total_mr`` label names. Codes come from public SNOMED CT mappings (the TotalSegmentator
project's SNOMED mapping and Slicer's terminology files); a structure whose code could not be
confirmed has an empty type code and gets no terminology entry rather than an invented one.
Colours marked ``slicer-totalsegmentator-terminology`` are the recommended display colours of
those terminology files; the others come from a per-group palette chosen here.
"""
from __future__ import annotations

import colorsys
import csv
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

RGB = Tuple[float, float, float]

CONTEXT_NAME = "Segmentation category and type - MedSegAI"
ANATOMIC_CONTEXT_NAME = "Anatomic codes - DICOM master list"
SCHEME = "SCT"

# Display order and labels of the GUI checklist groups.
GROUP_LABELS: Dict[str, str] = {
    "organs": "Organs",
    "lungs": "Lungs and airways",
    "heart_and_vessels": "Heart and vessels",
    "vertebrae": "Vertebrae",
    "ribs": "Ribs and sternum",
    "bones": "Other bones",
    "muscles": "Muscles",
    "lesions": "Lesions",
    "other": "Other",
}

# Hue/saturation/value per group for structures without a recommended colour; each structure
# gets a small, stable hue offset so neighbours in the same group stay distinguishable.
_GROUP_HSV = {
    "organs": (0.04, 0.50, 0.85),
    "lungs": (0.58, 0.30, 0.90),
    "heart_and_vessels": (0.98, 0.65, 0.80),
    "vertebrae": (0.13, 0.35, 0.95),
    "ribs": (0.13, 0.30, 0.98),
    "bones": (0.12, 0.40, 0.90),
    "muscles": (0.02, 0.55, 0.70),
    "lesions": (0.80, 0.60, 0.85),
    "other": (0.50, 0.40, 0.80),
}

_CSV = Path(__file__).with_name("structures.csv")


@dataclass(frozen=True)
class Code:
    value: str
    meaning: str

    def serialize(self) -> str:
        return f"{SCHEME}^{self.value}^{self.meaning}" if self.value else "^^"


@dataclass(frozen=True)
class StructureTerm:
    name: str
    group: str
    category: Code
    type: Optional[Code]  # None when no SNOMED code could be confirmed
    type_modifier: Optional[Code]
    region: Optional[Code]
    region_modifier: Optional[Code]
    color: RGB  # 0..1
    color_is_recommended: bool

    @property
    def has_code(self) -> bool:
        return self.type is not None

    def terminology_entry(self) -> str:
        """Slicer's serialized terminology entry (``vtkSlicerTerminologyEntry`` string), or ''."""
        if self.type is None:
            return ""
        none = Code("", "")
        return "~".join([
            CONTEXT_NAME,
            self.category.serialize(),
            self.type.serialize(),
            (self.type_modifier or none).serialize(),
            ANATOMIC_CONTEXT_NAME,
            (self.region or none).serialize(),
            (self.region_modifier or none).serialize(),
        ])


def _code(value: str, meaning: str) -> Optional[Code]:
    return Code(value, meaning) if value else None


def _palette_color(name: str, group: str) -> RGB:
    h, s, v = _GROUP_HSV.get(group, _GROUP_HSV["other"])
    # Stable across runs (unlike hash()): a small offset from the name's bytes.
    offset = (sum(name.encode()) % 13 - 6) * 0.012
    return tuple(float(c) for c in colorsys.hsv_to_rgb((h + offset) % 1.0, s, v))  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def load_structures() -> Dict[str, StructureTerm]:
    out: Dict[str, StructureTerm] = {}
    with open(_CSV, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name, group = row["name"], row["group"] or "other"
            if row["color"]:
                color = tuple(int(c) / 255.0 for c in row["color"].split())
                recommended = True
            else:
                color, recommended = _palette_color(name, group), False
            out[name] = StructureTerm(
                name=name,
                group=group,
                category=Code(row["category_code"], row["category_meaning"]),
                type=_code(row["type_code"], row["type_meaning"]),
                type_modifier=_code(row["modifier_code"], row["modifier_meaning"]),
                region=_code(row["region_code"], row["region_meaning"]),
                region_modifier=_code(row["region_modifier_code"], row["region_modifier_meaning"]),
                color=color,  # type: ignore[arg-type]
                color_is_recommended=recommended,
            )
    return out


def lookup(name: str) -> Optional[Tuple[RGB, str]]:
    """``(rgb 0..1, terminology entry string)`` for ``segments_from_names``; None if unknown."""
    term = load_structures().get(name)
    if term is None:
        return None
    return term.color, term.terminology_entry()


def structure_groups(names: Optional[Iterable[str]] = None) -> Dict[str, List[str]]:
    """Group label -> structure names, in GUI order, for ``names`` (default: every known one).

    Names the table does not know go to "Other", so a new model's labels still show up.
    """
    table = load_structures()
    wanted = list(names) if names is not None else list(table)
    grouped: Dict[str, List[str]] = {key: [] for key in GROUP_LABELS}
    for name in wanted:
        term = table.get(name)
        grouped[term.group if term is not None and term.group in grouped else "other"].append(name)
    return {GROUP_LABELS[key]: members for key, members in grouped.items() if members}


__all__ = ["CONTEXT_NAME", "Code", "StructureTerm", "load_structures", "lookup", "structure_groups"]
