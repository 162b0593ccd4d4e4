"""Which predictions each method needs, and running one of them on the network grid.

A pass is one complete sliding-window prediction: some folds, an optional whole-volume flip,
dropout on or off. Passes are run one after the other and reduced into running statistics
(``accumulate.py``), so memory does not grow with their number.
"""
from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..inference.device import tiles_per_batch
from ..inference.single_model import RunOptions
from ..inference.sliding_window import WindowSettings, predict_logits
from ..nnunet.model_folder import LoadedModel
from ..progress import Reporter
from ..run_request import MAX_UNCERTAINTY_PASSES as MAX_MC_PASSES, UNCERTAINTY_METHODS as METHODS
from .errors import NoDropoutError, SingleFoldError, UncertaintyError, UnknownMethodError



@dataclass(frozen=True)
class PassSpec:
    folds: Tuple[int, ...]  # indices into LoadedModel.folds
    flip: Tuple[int, ...] = ()  # spatial axes (0..2 of the network grid) flipped for the whole volume
    dropout: bool = False
    seed: int = 0
    mirror: bool = False  # the model's own per-tile mirroring, as in the normal run


@dataclass(frozen=True)
class PassPlan:
    base: Optional[PassSpec]  # the normal prediction (labels); None: the labels come from ``passes``
    passes: List[PassSpec]  # the predictions whose spread is the uncertainty
    base_is_first_pass: bool = False  # pass 0 is also the normal prediction (no extra network run)
    labels_from_logit_mean: bool = False  # ensemble: nnU-Net averages the folds' logits
    notes: List[str] = field(default_factory=list)  # fallbacks taken, for result.notes


def check_method(name: Optional[str]) -> None:
    if name is None:
        return
    if name not in METHODS:
        raise UnknownMethodError(f"Unknown uncertainty method '{name}' (use {', '.join(METHODS)}).")


def _fold_indices(model: LoadedModel, opts: RunOptions) -> Tuple[int, ...]:
    return tuple(opts.fold_indices) if opts.fold_indices is not None else tuple(range(len(model.folds)))


def normal_mirroring(model: LoadedModel, opts: RunOptions) -> bool:
    return bool(opts.use_mirroring and model.mirror_axes)


def flip_combinations(axes: Tuple[int, ...]) -> List[Tuple[int, ...]]:
    """The identity first, then single flips, pairs, ... (most informative first when cut short)."""
    return [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]


def plan_passes(model: LoadedModel, opts: RunOptions, method: str, passes: int) -> PassPlan:
    check_method(method)
    folds = _fold_indices(model, opts)
    mirror = normal_mirroring(model, opts)
    normal = PassSpec(folds, mirror=mirror)
    if method == "entropy":
        return PassPlan(normal, [])
    if method == "ensemble":
        if len(folds) < 2:
            raise SingleFoldError(
                f"A fold ensemble needs a model folder with several folds; {model.folder.name} has only fold "
                f"{model.folds[folds[0]]}. Use --uncertainty entropy, tta or mcdropout instead.")
        return PassPlan(None, [PassSpec((f,), mirror=mirror) for f in folds], labels_from_logit_mean=True)
    if method == "tta":
        # Flip along the axes the trainer mirrored during training when it says so, else all three.
        axes = tuple(model.mirror_axes) if model.mirror_axes else (0, 1, 2)
        combos = flip_combinations(axes)
        if passes < 2:
            raise UncertaintyError(f"Test-time augmentation needs at least 2 passes; {passes} were asked.")
        notes = []
        if passes > len(combos):
            notes.append(f"Test-time augmentation used {len(combos)} passes, not {passes}: that is every flip "
                         f"combination of axes {', '.join(map(str, axes))}.")
        flips = [PassSpec(folds, flip=c) for c in combos[:passes]]
        # Without the model's own mirroring the unflipped pass is the normal prediction: reuse it.
        return PassPlan(None if not mirror else normal, flips, base_is_first_pass=not mirror, notes=notes)
    if method == "mcdropout":
        if model.config.network.dropout_p <= 0:
            raise NoDropoutError(
                f"Monte Carlo dropout needs a network with dropout layers; {model.folder.name} has none "
                f"(its plans set no dropout_op). Use --uncertainty entropy or tta, or ensemble for several folds.")
        if not 2 <= passes <= MAX_MC_PASSES:
            raise UncertaintyError(f"Monte Carlo dropout takes 2 to {MAX_MC_PASSES} passes; {passes} were asked.")
        return PassPlan(normal, [PassSpec(folds, dropout=True, seed=i) for i in range(passes)])
    raise UnknownMethodError(method)  # unreachable: check_method covers it


@contextlib.contextmanager
def _networks(model: LoadedModel, spec: PassSpec, device: torch.device):
    """The pass's networks; for Monte Carlo dropout only the dropout layers sample (norms keep their
    inference behaviour), and the kept networks are back in eval mode afterwards."""
    nets = [model.network(i, device) for i in spec.folds]
    dropouts = [m for net in nets for m in net.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    try:
        if spec.dropout:
            for m in dropouts:
                m.train()
        yield nets
    finally:
        for m in dropouts:
            m.eval()


def run_pass(model: LoadedModel, data: np.ndarray, opts: RunOptions, spec: PassSpec, reporter: Reporter,
             stage: str = "predict") -> torch.Tensor:
    """Class scores (K, X, Y, Z) fp16 on the network grid for one pass."""
    cfg = model.config
    batch = opts.batch_tiles or tiles_per_batch(opts.device, cfg.patch_size, cfg.num_classes,
                                                cfg.network.features_per_stage[0])
    settings = WindowSettings(tuple(cfg.patch_size), opts.tile_step, model.mirror_axes if spec.mirror else None,
                              batch, opts.precision, opts.fp32_full_resolution)
    x = data
    dims = [a + 1 for a in spec.flip]
    if dims:
        x = np.ascontiguousarray(np.flip(data, dims))
    with torch.random.fork_rng(devices=[] if opts.device.type != "cuda" else [opts.device]):
        torch.manual_seed(1234 + spec.seed)  # reproducible dropout masks, caller's RNG untouched
        with _networks(model, spec, opts.device) as nets:
            scores = predict_logits(nets, x, cfg.num_classes, settings, opts.device, reporter, stage=stage)
    if dims:
        scores = torch.flip(scores, dims)
    return scores
