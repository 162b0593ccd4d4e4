"""Writing the runner's model folder from a network trained on a subset of the label values.

The network learns one output channel per label value that occurs in the training data. The
runner maps output channel c to label value c, so the saved checkpoint has one channel per value
0..max of the name map: the learned channels are copied to their values, and a value that never
occurred gets a head with zero weights and a very low bias, so it never wins the argmax and its
softmax probability is 0. This keeps e.g. TotalSegmentator's values (liver = 5) for a model that
learned only some of TotalSegmentator's structures.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ..atomic import atomic_path, atomic_write_text
from .plans_writer import CONFIGURATION, PLANS_NAME, TRAINER_NAME

NEVER_LOGIT = -1000.0  # representable in fp16; softmax gives exactly 0 next to any real logit


def model_folder_name(trainer: str = TRAINER_NAME) -> str:
    return f"{trainer}__{PLANS_NAME}__{CONFIGURATION}"


def expand_heads(state: Dict[str, torch.Tensor], trained: Sequence[int], num_values: int) -> Dict[str, torch.Tensor]:
    """Compact state dict (len(trained) output channels) -> one output channel per label value."""
    out = {}
    idx = torch.as_tensor(list(trained), dtype=torch.long)
    for k, v in state.items():
        if ".seg_layers." in k and v.shape[0] == len(trained):
            if k.endswith(".weight"):
                full = torch.zeros((num_values, *v.shape[1:]), dtype=v.dtype)
            else:
                full = torch.full((num_values,), NEVER_LOGIT, dtype=v.dtype)
            full[idx] = v
            out[k] = full
        else:
            out[k] = v
    return out


def _to_half_shared(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """fp16 copies that keep the state dict's aliasing.

    nnU-Net's module tree lists each conv block twice (``all_modules.*``) and the encoder again under
    ``decoder.encoder.*``; torch.save stores shared tensors once. Converting key by key would break
    the sharing and triple the file, so each distinct tensor is converted once.
    """
    done: Dict[tuple, torch.Tensor] = {}
    out = {}
    for k, v in state.items():
        if not v.is_floating_point():
            out[k] = v
            continue
        key = (v.data_ptr(), tuple(v.shape), tuple(v.stride()), v.dtype)
        if key not in done:
            done[key] = v.half()
        out[k] = done[key]
    return out


def _atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_model_folder(folder: Path, plans: dict, dataset: dict, state: Dict[str, torch.Tensor],
                       trained: List[int], *, fp16: bool = True, fold: int = 0,
                       extra: Optional[dict] = None, checkpoint_name: str = "checkpoint_final.pth") -> Path:
    """plans.json, dataset.json and fold_N/<checkpoint_name> in the runner's format.

    Only tensors and plain Python types go into the checkpoint, so the runner loads it with
    ``torch.load(weights_only=True)``.
    """
    folder = Path(folder)
    num_values = len(dataset["labels"])
    full = expand_heads({k: v.detach().cpu() for k, v in state.items()}, trained, num_values)
    if fp16:  # halves the file; the runner's load_state_dict casts back to float32
        full = _to_half_shared(full)
    atomic_write_text(folder / "plans.json", json.dumps(plans, indent=1))
    atomic_write_text(folder / "dataset.json", json.dumps(dataset, indent=1))
    ckpt = {
        "network_weights": full,
        "trainer_name": TRAINER_NAME,
        "inference_allowed_mirroring_axes": None,  # trained without mirroring: left/right labels differ
        "medsegai": dict(extra or {}, trained_label_values=[int(v) for v in trained]),
    }
    _atomic_save(ckpt, folder / f"fold_{fold}" / checkpoint_name)
    return folder
