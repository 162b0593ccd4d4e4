"""An nnInteractive model folder, checked and loaded without executing code from it.

Layout (as nnInteractive publishes it): ``plans.json``, ``dataset.json``, ``inference_info.json``
(or the older ``inference_session_class.json``), ``fold_0/checkpoint_final.pth``, optionally
``LICENSE``. nnInteractive itself unpickles the checkpoint with ``weights_only=False``, which runs
any code the file carries; we use the runner's weights-only loader and build the network from
the plans ourselves.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from ...errors import InvalidModelError
from ...nnunet.checkpoint import load_checkpoint
from ...nnunet.network import build_network
from ...nnunet.plans import NetworkSpec, architecture_from_plans
from .capability import INFO_FILE, LEGACY_INFO_FILE, Capability, read_capability

CHECKPOINT = "checkpoint_final.pth"
NUM_OUTPUTS = 2  # nnInteractive predicts object vs background, whatever dataset.json lists
# Refinement boxes keep 24 voxels a side uncovered; a patch of 48 or less covers nothing.
REFINE_MARGIN = 24
# nnInteractive's own answer for its official weights when the folder has no LICENSE file.
_OFFICIAL = ("Dataset225_nnInteractiveV2", "3d_fullres_ps192_bs24", "CC BY-NC-SA 4.0")


@dataclass
class NNInteractiveModel:
    folder: Path
    configuration: str
    spec: NetworkSpec
    patch_size: Tuple[int, int, int]
    image_channels: int
    capability: Capability
    license: Optional[str]  # a short identifier (the LICENSE file's first line), None if unknown
    license_text: Optional[str]  # the whole LICENSE file, for the UI
    trainer_name: str
    state_dict: Dict[str, torch.Tensor] = field(repr=False)

    @property
    def in_channels(self) -> int:
        return self.image_channels + self.capability.num_channels

    def build_network(self, device: torch.device = torch.device("cpu")) -> torch.nn.Module:
        net = build_network(self.spec, self.in_channels, NUM_OUTPUTS)
        problem = _mismatch(net.state_dict(), self.state_dict)
        if problem:
            raise InvalidModelError(f"The checkpoint in {self.folder} does not match the network its plans "
                                    f"describe: {problem}.")
        net.load_state_dict(self.state_dict, strict=True)
        return net.to(device).eval()


def load_model_folder(path: Path, check: bool = True) -> NNInteractiveModel:
    """``check``: build the network once to report a checkpoint that does not fit its plans now
    (a caller that builds the network right away anyway passes False)."""
    folder = Path(path)
    if not folder.is_dir():
        raise InvalidModelError(f"nnInteractive model folder not found: {folder}")
    missing = [n for n in ("plans.json", "dataset.json") if not (folder / n).is_file()]
    if not (folder / INFO_FILE).is_file() and not (folder / LEGACY_INFO_FILE).is_file():
        missing.append(f"{INFO_FILE} (or {LEGACY_INFO_FILE})")
    checkpoint = _checkpoint_path(folder)
    if checkpoint is None:
        missing.append(f"fold_0/{CHECKPOINT}")
    if missing:
        raise InvalidModelError(f"{folder} is not an nnInteractive model folder: missing {', '.join(missing)}.")
    plans, dataset = _json(folder / "plans.json"), _json(folder / "dataset.json")
    capability = read_capability(folder)
    ckpt = load_checkpoint(checkpoint)
    configuration = _configuration(ckpt, plans, checkpoint)
    spec, patch_size = architecture_from_plans(plans, configuration)
    if min(patch_size) <= 2 * REFINE_MARGIN:
        raise InvalidModelError(f"{folder}: patch size {list(patch_size)} is too small for nnInteractive's "
                                f"refinement (every side must exceed {2 * REFINE_MARGIN}).")
    channels = dataset.get("channel_names") or dataset.get("modality")
    if not isinstance(channels, dict) or not channels:
        raise InvalidModelError(f"{folder / 'dataset.json'} has no channel_names.")
    license_text = _license_text(folder)
    license_id = next((ln.strip() for ln in (license_text or "").splitlines() if ln.strip()), None)
    if license_id is None and (plans.get("dataset_name"), configuration) == _OFFICIAL[:2]:
        license_id = _OFFICIAL[2]
    model = NNInteractiveModel(folder, configuration, spec, tuple(patch_size), len(channels), capability,
                               license_id, license_text, str(ckpt.get("trainer_name", "")), ckpt["network_weights"])
    if check:
        model.build_network()
    return model


def _checkpoint_path(folder: Path) -> Optional[Path]:
    if (folder / "fold_0" / CHECKPOINT).is_file():
        return folder / "fold_0" / CHECKPOINT
    found = sorted(d / CHECKPOINT for d in folder.glob("fold_*") if (d / CHECKPOINT).is_file())
    # nnInteractive takes the one fold folder there is; with several it would have to guess.
    return found[0] if len(found) == 1 else None


def _json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidModelError(f"{path} is not valid JSON ({exc}).") from None
    if not isinstance(content, dict):
        raise InvalidModelError(f"{path} must hold a JSON object.")
    return content


def _configuration(ckpt: dict, plans: dict, path: Path) -> str:
    init_args = ckpt.get("init_args")
    name = init_args.get("configuration") if isinstance(init_args, dict) else None
    if name is None:
        confs = list(plans.get("configurations", {}))
        if len(confs) != 1:
            raise InvalidModelError(f"{path} does not say which plans configuration it was trained with "
                                    "(init_args['configuration']).")
        name = confs[0]
    return str(name)


def _license_text(folder: Path) -> Optional[str]:
    path = folder / "LICENSE"
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8", errors="replace")


def _mismatch(expected: Dict[str, torch.Tensor], got: Dict[str, torch.Tensor]) -> str:
    """One line naming how a state dict differs from the network's, or '' if it fits."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k} {list(got[k].shape)} != {list(expected[k].shape)}" for k in expected
              if k in got and tuple(got[k].shape) != tuple(expected[k].shape)]
    parts = []
    for what, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            parts.append(f"{len(items)} {what} (first: {items[0]})")
    return "; ".join(parts)
