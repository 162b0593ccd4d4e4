"""Structure names a user types ("Left Kidney", "right-lung", "IVC") -> the model's structure names.

Three sources, all data: the model names themselves (TotalSegmentator's ``total`` class map), the
SNOMED CT meanings of ``medsegai/terminology/structures.csv`` ("left kidney", "innominate
artery"; a meaning shared by several structures is skipped as ambiguous), and
``structure_names.json`` beside this file for everyday aliases and unions. Case, spaces,
underscores, hyphens and word order are ignored.
"""
from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Collection, Dict, List, Optional, Tuple

from .errors import UnknownStructureError

Alternatives = List[Tuple[str, ...]]  # unions of model names, in order of preference

_DATA = Path(__file__).with_name("structure_names.json")


def normalise(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(text).lower()).strip()


def _words(key: str) -> Tuple[str, ...]:
    return tuple(sorted(key.split()))


@lru_cache(maxsize=1)
def name_table() -> Dict[str, Alternatives]:
    from ..terminology import load_structures
    from ..totalseg.tasks import class_map

    table: Dict[str, Alternatives] = {}

    def add(phrase: str, names) -> None:
        alts = table.setdefault(normalise(phrase), [])
        if tuple(names) not in alts:
            alts.append(tuple(names))

    terms = load_structures()
    for name in list(class_map("total").values()) + list(terms):
        add(name, [name])
    meanings: Dict[str, set] = {}
    for term in terms.values():
        if term.type is None:
            continue
        modifier = term.type_modifier.meaning if term.type_modifier else ""
        for phrase in ([f"{modifier} {term.type.meaning}", f"{term.type.meaning} {modifier}"] if modifier
                       else [term.type.meaning]):
            meanings.setdefault(normalise(phrase), set()).add(term.name)
    for phrase, names in meanings.items():
        if len(names) == 1:
            add(phrase, names)
    data = json.loads(_DATA.read_text(encoding="utf-8"))
    for alias, target in data["aliases"].items():
        add(alias, [target])
    for group, alternatives in data["groups"].items():
        for names in alternatives:
            add(group, names)
    return table


def lookup(text: str) -> Alternatives:
    """The unions of structure names ``text`` may mean, or UnknownStructureError with the closest names."""
    key = normalise(text)
    if not key:
        raise UnknownStructureError("The structure name is empty.")
    table = name_table()
    if key in table:
        return table[key]
    by_words = [alts for phrase, alts in table.items() if _words(phrase) == _words(key)]
    if by_words:
        return by_words[0]
    close = difflib.get_close_matches(key, list(table), n=5, cutoff=0.6)
    hint = f" Closest known names: {', '.join(close)}." if close else " No known name is close to it."
    raise UnknownStructureError(f"Unknown structure name {text!r}.{hint}")


def choose(alternatives: Alternatives, known: Collection[str]) -> Optional[List[str]]:
    """The first union the model has entirely, else the known part of the first it has in part."""
    for names in alternatives:
        if all(n in known for n in names):
            return list(names)
    for names in alternatives:
        part = [n for n in names if n in known]
        if part:
            return part
    return None
