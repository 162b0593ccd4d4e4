"""An nnU-Net v2 result folder (``<trainer>__<plans>__<configuration>/``), checked and loaded."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import InvalidModelError
from .checkpoint import load_checkpoint
from .network import build_network
from .plans import ModelConfig, parse_model_config

_FOLDER_RE = re.compile(r"^(?P<trainer>[^_].*?)__(?P<plans>.+?)__(?P<config>[^_].*)$")
CHECKPOINT_NAMES = ("checkpoint_final.pth", "checkpoint_best.pth")


@dataclass
class LoadedModel:
    folder: Path
    trainer: str
    config: ModelConfig
    folds: List[str]
    state_dicts: List[Dict[str, torch.Tensor]] = field(repr=False)
    mirror_axes: Optional[Tuple[int, ...]]  # spatial axes (0..2) the trainer allows mirroring on
    dropout_p: float = 0.0

    def make_network(self, fold_index: int = 0, device: torch.device = torch.device("cpu")) -> torch.nn.Module:
        net = build_network(self.config.network, self.config.num_input_channels, self.config.num_classes)
        try:
            net.load_state_dict(self.state_dicts[fold_index], strict=True)
        except RuntimeError as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            raise InvalidModelError(
                f"The checkpoint of fold {self.folds[fold_index]} in {self.folder} does not match the network "
                f"its plans describe: {' '.join(lines[1:3])[:400]}"
            ) from None
        return net.to(device).eval()


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


def load_model_folder(path: Path, folds: Optional[Sequence] = None) -> LoadedModel:
    path = Path(path)
    trainer, _plans, configuration = validate_result_folder(path, folds)
    plans = json.loads((path / "plans.json").read_text())
    dataset = json.loads((path / "dataset.json").read_text())
    config = parse_model_config(plans, dataset, configuration)
    available = _available_folds(path)
    fold_names = [str(f) for f in folds] if folds is not None else list(available)
    state_dicts, mirror_axes, dropout_p = [], None, 0.0
    for fold in fold_names:
        ckpt = load_checkpoint(available[fold])
        state_dicts.append(ckpt["network_weights"])
        axes = ckpt.get("inference_allowed_mirroring_axes")
        mirror_axes = tuple(int(a) for a in axes) if axes else None
        trainer = ckpt.get("trainer_name", trainer)
        dropout_p = float(ckpt.get("medsegai", {}).get("dropout_p", 0.0)) if isinstance(ckpt.get("medsegai"), dict) else 0.0
    if dropout_p:
        from dataclasses import replace

        config.network = replace(config.network, dropout_p=dropout_p)
    model = LoadedModel(path, trainer, config, fold_names, state_dicts, mirror_axes, config.network.dropout_p)
    # Build once now so a plans/checkpoint mismatch is reported at load time, not mid-run.
    model.make_network(0)
    return model
