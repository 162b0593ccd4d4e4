"""An nnU-Net v2 result folder (``<trainer>__<plans>__<configuration>/``), checked and loaded."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import InvalidModelError
from .checkpoint import load_checkpoint
from .folder_layout import (  # noqa: F401 - the layout checks are part of this module's API
    CHECKPOINT_NAMES, _available_folds, find_result_folders, is_result_folder, validate_result_folder,
)
from .network import build_network
from .plans import ModelConfig, parse_model_config


@dataclass
class LoadedModel:
    folder: Path
    trainer: str
    config: ModelConfig
    folds: List[str]
    state_dicts: List[Dict[str, torch.Tensor]] = field(repr=False)
    mirror_axes: Optional[Tuple[int, ...]]  # spatial axes (0..2) the trainer allows mirroring on
    dropout_p: float = 0.0
    # Networks already built, by (fold index, device): a Predictor runs many images on one model.
    _networks: Dict[Tuple[int, str], torch.nn.Module] = field(default_factory=dict, repr=False, compare=False)

    def network(self, fold_index: int = 0, device: torch.device = torch.device("cpu")) -> torch.nn.Module:
        """The fold's network on ``device`` in eval mode, built on first use and kept."""
        key = (fold_index, str(device))
        net = self._networks.get(key)
        if net is None:
            net = self._networks[key] = self.make_network(fold_index, device)
        return net

    def release_networks(self, device_type: Optional[str] = None) -> None:
        """Drop the kept networks (all, or those on one device type, e.g. after CUDA ran out of memory)."""
        for key in [k for k in self._networks if device_type is None or k[1].split(":")[0] == device_type]:
            del self._networks[key]

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
    # Build now so a plans/checkpoint mismatch is reported at load time, not mid-run.
    model.network(0)
    return model
