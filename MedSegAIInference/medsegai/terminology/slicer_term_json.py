"""Build Slicer's ``.term.json`` terminology context from ``structures.csv``.

Slicer stores each segment's terminology as codes, so segments are valid without this file;
loading it into the Terminologies module lets users pick the same codes in the segment editor.
Regenerate with ``python -m medsegai.terminology.slicer_term_json OUT.term.json``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List

from . import CONTEXT_NAME, SCHEME, Code, load_structures

SCHEMA = "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/segment-context-schema.json#"


def _coded(code: Code) -> dict:
    return {"CodeMeaning": code.meaning, "CodingSchemeDesignator": SCHEME, "CodeValue": code.value}


def _rgb255(color) -> List[int]:
    return [int(round(c * 255)) for c in color]


def build_term_json() -> dict:
    categories: Dict[str, dict] = {}
    types: Dict[tuple, dict] = {}
    for term in load_structures().values():
        if term.type is None:
            continue
        cat = categories.setdefault(term.category.value, {**_coded(term.category), "showAnatomy": False, "Type": []})
        if term.region is not None:
            cat["showAnatomy"] = True
        key = (term.category.value, term.type.value)
        typ = types.get(key)
        if typ is None:
            typ = {**_coded(term.type), "3dSlicerLabel": term.name if term.type_modifier is None else term.type.meaning.lower()}
            types[key] = typ
            cat["Type"].append(typ)
        if term.type_modifier is None:
            typ["recommendedDisplayRGBValue"] = _rgb255(term.color)
            typ["3dSlicerLabel"] = term.name
        else:
            mods = typ.setdefault("Modifier", [])
            if all(m["CodeValue"] != term.type_modifier.value for m in mods):
                mods.append({**_coded(term.type_modifier), "3dSlicerLabel": term.name,
                             "recommendedDisplayRGBValue": _rgb255(term.color)})
    return {
        "SegmentationCategoryTypeContextName": CONTEXT_NAME,
        "@schema": SCHEMA,
        "SegmentationCodes": {"Category": list(categories.values())},
    }


def write_term_json(path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_term_json(), indent=2) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m medsegai.terminology.slicer_term_json OUT.term.json")
    print(write_term_json(sys.argv[1]))
