"""TotalSegmentator's task logic as data: tasks.json and class_maps.json beside this file."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import MedSegAIError

_HERE = Path(__file__).parent
from ..run_request import QUALITIES  # noqa: E402 - one definition for every layer


@dataclass(frozen=True)
class TaskSpec:
    name: str
    class_map: Dict[int, str]
    model_ids: List[str]  # merged in this order
    crop_model: Optional[str]
    tile_step: float
    title: str = ""  # for messages: "TotalSegmentator's total task"


@lru_cache(maxsize=None)
def _tasks() -> dict:
    return json.loads((_HERE / "tasks.json").read_text())["tasks"]


@lru_cache(maxsize=None)
def class_map(name: str) -> Dict[int, str]:
    maps = json.loads((_HERE / "class_maps.json").read_text())["tasks"]
    return {int(v): n for v, n in maps[name].items()}


def task_names() -> List[str]:
    return sorted(_tasks())


def get_task(name: str, quality: str = "normal") -> TaskSpec:
    tasks = _tasks()
    if name not in tasks:
        raise MedSegAIError(f"Unknown task '{name}' (known: {', '.join(sorted(tasks))}).")
    t = tasks[name]
    if quality not in t["quality"]:
        raise MedSegAIError(f"Task '{name}' has no quality '{quality}' (has: {', '.join(t['quality'])}).")
    return TaskSpec(name, class_map(t["class_map"]), list(t["quality"][quality]), t.get("crop_model"),
                    float(t.get("tile_step", 0.5)), t.get("title") or f"the {name} task")
