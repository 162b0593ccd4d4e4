"""Starting from an existing model folder (ours or TotalSegmentator's) instead of random weights.

The architecture, spacing, patch size and intensity normalisation come from the source model, so
its learned features see the input they were trained on. Encoder/decoder weights are copied as
they are; output heads are copied row by row for structures whose names the source model knows
(e.g. 'liver' from TotalSegmentator) and freshly initialised for the others.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Dict, List, Tuple

import torch

from ..nnunet.model_folder import load_model_folder
from .errors import TrainingConfigError
from .export import NEVER_LOGIT
from .plans_writer import CONFIGURATION


def source_plans(folder: Path) -> Tuple[dict, "LoadedModel"]:  # noqa: F821
    import json

    model = load_model_folder(Path(folder))
    plans = json.loads((model.folder / "plans.json").read_text())
    conf_name = model.config.configuration
    if conf_name != CONFIGURATION:
        plans = copy.deepcopy(plans)
        plans["configurations"][CONFIGURATION] = plans["configurations"][conf_name]
    if "architecture" not in plans["configurations"][CONFIGURATION]:
        plans = _new_format(plans, model)
    return plans, model


def _new_format(plans: dict, model) -> dict:
    """Old-format plans (TotalSegmentator's) with an architecture block built from the parsed network."""
    from .plans_writer import ArchitectureOptions, make_plans

    n = model.config.network
    arch = ArchitectureOptions(features=list(n.features_per_stage), n_conv_per_stage=list(n.n_conv_per_stage),
                               n_conv_per_stage_decoder=list(n.n_conv_per_stage_decoder), dropout_p=n.dropout_p)
    template = make_plans("x", [1, 1, 1], [1, 1, 1], 1, arch, {}, [1, 1, 1], [1, 1, 1])
    block = template["configurations"][CONFIGURATION]["architecture"]
    block["arch_kwargs"]["kernel_sizes"] = [list(k) for k in n.kernel_sizes]
    block["arch_kwargs"]["strides"] = [list(s) for s in n.strides]
    plans = copy.deepcopy(plans)
    conf = plans["configurations"][CONFIGURATION]
    for old_key in ("UNet_class_name", "UNet_base_num_features", "unet_max_num_features", "n_conv_per_stage_encoder",
                    "n_conv_per_stage_decoder", "num_pool_per_axis", "pool_op_kernel_sizes", "conv_kernel_sizes"):
        conf.pop(old_key, None)
    conf["architecture"] = block
    return plans


def init_from_model(net: torch.nn.Module, model, trained_names: List[str]) -> Dict[str, int]:
    """Copy the source weights into ``net`` (compact heads for ``trained_names``). Returns counts.

    Output-head rows are matched by structure name; the background row is matched too."""
    src = model.state_dicts[0]
    own = net.state_dict()
    by_name = {name: v for v, name in model.config.label_names.items()}
    copied = 0
    matched = set()
    new_state = {}
    for k, v in own.items():
        if ".all_modules." in k:
            # Aliases of the named .conv/.norm modules; their index shifts when dropout is added,
            # so the weights are taken through the named keys only.
            continue
        if ".seg_layers." in k:
            w = v.clone()
            s = src.get(k)
            if s is not None:
                bias = src.get(k[: -len("weight")] + "bias") if k.endswith("weight") else s
                for row, name in enumerate(trained_names):
                    v = by_name.get(name)
                    # A value the source never learned has a suppressed head: nothing to copy.
                    if v is None or v >= s.shape[0] or (bias is not None and float(bias[v]) <= NEVER_LOGIT / 2):
                        continue
                    w[row] = s[v].to(w.dtype)
                    matched.add(name)
            new_state[k] = w
            continue
        s = src.get(k)
        if s is None or tuple(s.shape) != tuple(v.shape):
            raise TrainingConfigError(
                f"The source model's weights do not fit the network its plans describe ({k}).")
        new_state[k] = s.to(v.dtype)
        copied += 1
    result = net.load_state_dict(new_state, strict=False)
    missing = [k for k in result.missing_keys if ".all_modules." not in k]
    if missing or result.unexpected_keys:
        raise TrainingConfigError(f"Cannot start from the source model: missing weights {missing[:3]}.")
    return {"tensors": copied, "structures": len(matched)}
