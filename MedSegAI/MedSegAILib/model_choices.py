"""What the task/model selector offers, read as data from the model catalogue JSON.

TotalSegmentator entries of one task (several models: one per quality, five parts at 1.5 mm)
become a single "task" choice whose quality picks the models; every other entry is its own
choice. A missing or unreadable catalogue still leaves the built-in TotalSegmentator tasks.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from medsegai.totalseg import __file__ as _totalseg_init

from medsegai.run_request import QUALITIES as QUALITY_ORDER  # noqa: E402 - one definition
_CLASS_MAPS = Path(_totalseg_init).with_name("class_maps.json")
_TASK_TITLES = {"total": "TotalSegmentator: whole body CT (117 structures)",
                "total_mr": "TotalSegmentator: whole body MR (50 structures)",
                "head_neck_oar": "Head and neck organs at risk (7 structures, CT)"}
DEFAULT_CHOICE_KEY = "task:total"  # what the panel opens on: the real model, not the bundled demo
BUNDLED_LABEL = "small demonstration model, works offline"


@dataclass(frozen=True)
class ModelChoice:
    key: str  # stable id for settings and the parameter node
    title: str
    task: Optional[str]  # set for TotalSegmentator task logic
    model: Optional[str]  # catalogue model id or folder, for single models
    qualities: Tuple[str, ...]
    licence: str  # one line for the GUI
    structures: Tuple[str, ...]  # names for the subset checklist; empty when unknown
    modality: str = "CT"

    def run_arguments(self, quality: str) -> Dict[str, Optional[str]]:
        return {"task": self.task, "model": self.model, "quality": quality if quality in self.qualities
                else self.qualities[0]}


def task_structures(task: str) -> Tuple[str, ...]:
    try:
        names = json.loads(_CLASS_MAPS.read_text(encoding="utf-8"))["tasks"][task]
    except (OSError, ValueError, KeyError):
        return ()
    return tuple(names[k] for k in sorted(names, key=int))


def _licence_line(entry: dict) -> str:
    lic = entry.get("license") or {}
    name = lic.get("name") or "licence not stated"
    extra = " (must be accepted before use)" if lic.get("requires_acceptance") else ""
    return f"Licence: {name}{extra}"


def _merged_catalog_entries() -> Tuple[List[dict], Optional[str]]:
    """The runner's catalogue: built-in, site and the user's (models they imported or added)."""
    from medsegai.errors import MedSegAIError
    from medsegai.models import load_catalog
    from medsegai.models.catalog import entry_to_dict

    try:
        catalog = load_catalog()
        # Bad site/user entries are left out; the message says which and where, for the user to fix.
        return [entry_to_dict(e) for e in catalog], " ".join(catalog.problems) or None
    except MedSegAIError as e:
        return [], f"The model catalogue cannot be read ({e}); only the built-in tasks are listed."


def load_choices(catalog_path: Optional[Path] = None) -> Tuple[List[ModelChoice], Optional[str]]:
    """(choices, problem) where problem is a message when the catalogue, or some of its entries, could not be read.

    ``catalog_path``: one catalogue file; None: the runner's merged catalogue (what a run uses)."""
    problem = None
    entries: List[dict] = []
    if catalog_path is None:
        entries, problem = _merged_catalog_entries()
    else:
        try:
            doc = json.loads(Path(catalog_path).read_text(encoding="utf-8"))
            entries = [m for m in doc.get("models", []) if isinstance(m, dict) and m.get("id")]
        except FileNotFoundError:
            problem = f"No model catalogue at {catalog_path}; only the built-in tasks are listed."
        except (OSError, ValueError, AttributeError) as e:
            problem = f"The model catalogue {catalog_path} cannot be read ({e}); only the built-in tasks are listed."

    tasks: Dict[str, List[dict]] = {}
    singles: List[ModelChoice] = []
    bundled: List[ModelChoice] = []  # listed last: the demo must not look like the model to use
    for e in entries:
        task = e.get("task")
        if task == "interactive":  # the click model: run by the interactive session, not a whole-scan choice
            continue
        if task in _TASK_TITLES:
            tasks.setdefault(task, []).append(e)
        else:
            names = tuple(s["name"] for s in e.get("structures") or [] if isinstance(s, dict) and "name" in s)
            title = e.get("title") or e["id"]
            (bundled if e.get("bundled") else singles).append(ModelChoice(
                key=f"model:{e['id']}", title=f"{title} ({BUNDLED_LABEL})" if e.get("bundled") else title,
                task=None, model=e["id"],
                qualities=("normal",), licence=_licence_line(e), structures=names,
                modality=e.get("modality") or "CT"))

    choices: List[ModelChoice] = []
    for task, title in _TASK_TITLES.items():
        members = tasks.get(task, [])
        if not members and task != "total":
            continue
        qualities = tuple(q for q in QUALITY_ORDER if not members or any(m.get("quality") == q for m in members))
        licence = _licence_line(members[0]) if members else "Licence: Apache-2.0 (TotalSegmentator)"
        choices.append(ModelChoice(key=f"task:{task}", title=title, task=task, model=None,
                                   qualities=qualities or QUALITY_ORDER, licence=licence,
                                   structures=task_structures(task), modality="MR" if task.endswith("_mr") else "CT"))
    return choices + singles + bundled, problem
