"""The layout of an nnU-Net v2 result folder (``<trainer>__<plans>__<configuration>/``), checked
without loading anything: no torch, so the model manager and Slicer's GUI process can use it
before the runner's dependencies are installed."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import InvalidModelError

_FOLDER_RE = re.compile(r"^(?P<trainer>[^_].*?)__(?P<plans>.+?)__(?P<config>[^_].*)$")
CHECKPOINT_NAMES = ("checkpoint_final.pth", "checkpoint_best.pth")


def is_result_folder(path: Path) -> bool:
    return path.is_dir() and (path / "plans.json").is_file() and (path / "dataset.json").is_file()


def _damaged_result_folder(path: Path) -> bool:
    if not (path.is_dir() and _FOLDER_RE.match(path.name)):
        return False
    return (path / "plans.json").is_file() or (path / "dataset.json").is_file() or any(path.glob("fold_*"))


def find_result_folders(path: Path, max_depth: int = 3) -> List[Path]:
    """Result folders at or below ``path`` (a TotalSegmentator zip holds Dataset*/trainer__plans__cfg/)."""
    path = Path(path)
    if is_result_folder(path) or _damaged_result_folder(path):
        # A folder named and shaped like a result folder but missing plans.json or dataset.json is
        # returned too, so that validate_result_folder names the missing file instead of the caller
        # saying only that no model was found.
        return [path]
    found: List[Path] = []
    if max_depth > 0 and path.is_dir():
        for child in sorted(p for p in path.iterdir() if p.is_dir()):
            found += find_result_folders(child, max_depth - 1)
    return found


def _available_folds(folder: Path) -> Dict[str, Path]:
    out = {}
    for d in sorted(folder.glob("fold_*")):
        for name in CHECKPOINT_NAMES:
            if (d / name).is_file():
                out[d.name[len("fold_"):]] = d / name
                break
    return out


def validate_result_folder(path: Path, folds: Optional[Sequence] = None) -> Tuple[str, str, str]:
    """Check layout only (no weights loaded). Returns (trainer, plans, configuration)."""
    path = Path(path)
    if not path.is_dir():
        raise InvalidModelError(f"Model folder not found: {path}")
    missing = [n for n in ("plans.json", "dataset.json") if not (path / n).is_file()]
    if missing:
        raise InvalidModelError(f"{path} is not an nnU-Net result folder: missing {', '.join(missing)}.")
    m = _FOLDER_RE.match(path.name)
    if not m:
        raise InvalidModelError(
            f"Model folder name '{path.name}' is not of the form <trainer>__<plans>__<configuration>."
        )
    available = _available_folds(path)
    if not available:
        raise InvalidModelError(f"{path} has no fold_N/checkpoint_final.pth.")
    if folds is not None:
        absent = [str(f) for f in folds if str(f) not in available]
        if absent:
            raise InvalidModelError(
                f"Fold(s) {', '.join(absent)} not found in {path} (available: {', '.join(available)})."
            )
    for n in ("plans.json", "dataset.json"):
        try:
            json.loads((path / n).read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidModelError(f"{path / n} is not valid JSON ({exc}).") from None
    return m.group("trainer"), m.group("plans"), m.group("config")
