"""The click model's folder: ``plans.json`` (plain JSON) and ``checkpoint_final.pth`` (tensors only).

plans.json keys: ``format`` ("medsegai_clicks"), ``format_version`` (1), ``network`` (the fields of
:class:`medsegai.nnunet.plans.NetworkSpec`: nnU-Net's PlainConvUNet), ``in_channels`` (8),
``num_classes`` (2: background, object; argmax), ``channels`` (the input layout, see
``encoding.CHANNELS``), ``crop_size`` (voxels, k j i), ``base_spacing_mm`` (isotropic crop
spacing at zoom 1), ``max_zoom`` and ``zoom_step`` (how far and in which steps the crop widens),
``fit_margin`` (crop field of view / extent of mask and prompt), ``point_radius`` (crop voxels),
``normalization`` (CT: HU clip window and divisor; MR: z-score over the crop), ``training``
(what produced the weights). The checkpoint is a dict ``{"network_weights": {name: tensor}, ...}``
of tensors and plain numbers/strings, read with :func:`medsegai.nnunet.checkpoint.load_checkpoint`
(``weights_only=True``): loading runs no code.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict

import torch

from ...atomic import atomic_path, atomic_write_json
from ...errors import InvalidModelError
from ...nnunet.checkpoint import load_checkpoint
from ...nnunet.network import build_network
from ...nnunet.plans import NetworkSpec
from . import encoding as enc

FORMAT = "medsegai_clicks"
PLANS = "plans.json"
CHECKPOINT = "checkpoint_final.pth"


def default_config(features=(8, 16, 32, 64, 128), crop: int = 32) -> Dict[str, Any]:
    n = len(features)
    spec = NetworkSpec("PlainConvUNet", n, list(features), [[3, 3, 3]] * n, [[1, 1, 1]] + [[2, 2, 2]] * (n - 1),
                       [2] * n, [1] * (n - 1))
    return {
        "format": FORMAT, "format_version": 1,
        "network": asdict(spec), "in_channels": enc.N_CHANNELS, "num_classes": 2,
        "channels": list(enc.CHANNELS),
        "crop_size": [crop, crop, crop], "base_spacing_mm": 3.0, "max_zoom": 5.0, "zoom_step": 1.6,
        "fit_margin": 1.3, "point_radius": enc.POINT_RADIUS,
        "normalization": {"ct": {"clip_hu": list(enc.CT_WINDOW), "divide_by": enc.CT_SCALE, "pad_hu": enc.CT_AIR},
                          "mr": "z-score over the crop, pad 0",
                          "ct_if": "0.5th intensity percentile of the image < -400 (air in HU), unless the caller says"},
    }


def network_from(cfg: Dict[str, Any]) -> torch.nn.Module:
    spec = NetworkSpec(**cfg["network"])
    return build_network(spec, int(cfg["in_channels"]), int(cfg["num_classes"]))


def read_config(folder: Path) -> Dict[str, Any]:
    path = Path(folder) / PLANS
    if not path.is_file():
        raise InvalidModelError(f"{folder} is not a MedSegAI click model folder (no {PLANS}).")
    cfg = json.loads(path.read_text())
    if cfg.get("format") != FORMAT or int(cfg.get("format_version", 0)) != 1:
        raise InvalidModelError(f"{path} is not a '{FORMAT}' version 1 plans file.")
    if list(cfg.get("channels", [])) != list(enc.CHANNELS):
        raise InvalidModelError(f"{path} declares another input channel layout than this runner's.")
    return cfg


def load(folder: Path):
    """(config, network in eval mode, float32 weights) from a model folder; no pickled code runs."""
    folder = Path(folder)
    cfg = read_config(folder)
    ckpt = load_checkpoint(folder / CHECKPOINT)
    net = network_from(cfg)
    weights = {k: v.float() for k, v in ckpt["network_weights"].items()}
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise InvalidModelError(f"{folder / CHECKPOINT} does not match its plans.json: {str(exc).splitlines()[0]}") from None
    return cfg, net.eval()


def save(folder: Path, cfg: Dict[str, Any], net: torch.nn.Module, extra: Dict[str, Any] = None, fp16: bool = True) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # PlainConvUNet holds each conv/norm under two key paths: convert each tensor once, so the two
    # keys share one storage and the file holds the weights once.
    seen: Dict[int, torch.Tensor] = {}
    weights = {}
    for k, v in net.state_dict().items():
        ptr = v.data_ptr()
        if ptr not in seen:
            seen[ptr] = v.detach().cpu().half() if fp16 and v.is_floating_point() else v.detach().cpu().clone()
        weights[k] = seen[ptr]
    with atomic_path(folder / CHECKPOINT) as tmp:
        torch.save({"network_weights": weights, **(extra or {})}, tmp)
    atomic_write_json(folder / PLANS, cfg)
    return folder
