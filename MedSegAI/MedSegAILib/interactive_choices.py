"""The interactive engines the Segment Editor effect offers, each with the licence of what it runs.

The licence is shown before the first prompt: nnInteractive's official weights are CC BY-NC-SA 4.0
(non-commercial), which a user must see before relying on them. Read from files only (the
model's LICENSE, its plans.json): no torch, no checkpoint is opened on Slicer's GUI thread.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from .errors import InputError

# nnInteractive's published weights carry no LICENSE file in every copy; their dataset name says what they are.
_OFFICIAL_NNINTERACTIVE = ("Dataset225_nnInteractiveV2", "CC BY-NC-SA 4.0 (nnInteractive's official weights: "
                                                         "non-commercial use only)")


@dataclass(frozen=True)
class EngineChoice:
    key: str  # the Logic's engine= value
    title: str
    needs_model: bool
    licence: str  # shown as it is; for needs_model engines, until a folder is chosen


ENGINE_CHOICES: List[EngineChoice] = [
    EngineChoice("auto", "MedSegAI click model (default)", False,
                 "Licence: Apache-2.0 (MedSegAI's click model; the classical engine when it is not installed)."),
    EngineChoice("classical", "Classical (region growing, no network)", False,
                 "Licence: Apache-2.0 (MedSegAI code, no model weights)."),
    EngineChoice("nninteractive", "nnInteractive model folder", True,
                 "Licence: that of the model folder (choose one; the official weights are CC BY-NC-SA 4.0)."),
]
DEVICES = ["auto", "cpu", "cuda"]


def engine_choice(key: str) -> EngineChoice:
    for choice in ENGINE_CHOICES:
        if choice.key == key:
            return choice
    raise InputError(f"Unknown interactive engine {key!r}; known: {', '.join(c.key for c in ENGINE_CHOICES)}.")


def model_licence(folder: Optional[str]) -> str:
    """One line naming the licence of an nnInteractive model folder (its LICENSE file's first line)."""
    from medsegai.interactive.registry import nninteractive_folder

    if not folder:
        return engine_choice("nninteractive").licence
    found = nninteractive_folder(folder) if Path(folder).expanduser().is_dir() else None
    if found is None:
        raise InputError(f"{folder} is not an nnInteractive model folder (plans.json and inference_info.json).")
    licence = found / "LICENSE"
    if licence.is_file():
        first = next((ln.strip() for ln in licence.read_text(encoding="utf-8", errors="replace").splitlines()
                      if ln.strip()), "")
        if first:
            return f"Licence: {first} (from {licence.name} in the model folder)."
    try:
        dataset = json.loads((found / "plans.json").read_text(encoding="utf-8")).get("dataset_name")
    except (OSError, ValueError):
        dataset = None
    if dataset == _OFFICIAL_NNINTERACTIVE[0]:
        return f"Licence: {_OFFICIAL_NNINTERACTIVE[1]}."
    return "Licence: unknown (the model folder has no LICENSE file); ask whoever trained it."
