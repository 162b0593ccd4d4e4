"""Run one nnU-Net model folder on one image, in nnU-Net's or TotalSegmentator's exact pipeline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from ..io.image import Image
from ..nnunet.model_folder import LoadedModel
from ..progress import Reporter
from .case_preparation import ScoreGrid, prepare_case
from .device import tiles_per_batch
from .export import ChunkCallback
from .sliding_window import WindowSettings, predict_logits


@dataclass
class RunOptions:
    device: torch.device
    mode: str = "nnunet"  # nnunet | totalseg
    tile_step: float = 0.5
    use_mirroring: bool = True  # only where the checkpoint allows it
    precision: str = "auto"
    fp32_full_resolution: bool = False  # see inference.mixed_precision
    fold_indices: Optional[Sequence[int]] = None  # which of the loaded folds to ensemble (default: all)
    batch_tiles: Optional[int] = None


@dataclass
class ModelOutput:
    labels: np.ndarray  # (k, j, i) on the input grid, the model's own label values
    scores_grid: Optional[ScoreGrid] = None


def _window(model: LoadedModel, opts: RunOptions) -> WindowSettings:
    cfg = model.config
    mirror = model.mirror_axes if (opts.use_mirroring and model.mirror_axes) else None
    batch = opts.batch_tiles or tiles_per_batch(opts.device, cfg.patch_size, cfg.num_classes,
                                                cfg.network.features_per_stage[0])
    return WindowSettings(tuple(cfg.patch_size), opts.tile_step, mirror, batch, opts.precision,
                          opts.fp32_full_resolution)


def _networks(model: LoadedModel, opts: RunOptions):
    idx = list(opts.fold_indices) if opts.fold_indices is not None else list(range(len(model.folds)))
    return [model.network(i, opts.device) for i in idx]


def run_model(model: LoadedModel, image: Image, opts: RunOptions, reporter: Reporter,
              on_chunk: Optional[ChunkCallback] = None) -> ModelOutput:
    case = prepare_case(model, image, opts.mode, reporter)
    scores = predict_logits(_networks(model, opts), case.data, model.config.num_classes, _window(model, opts),
                            opts.device, reporter)
    del case.data  # the network input is not needed for export; free it before the big arrays
    labels = case.labels_from_scores(scores, on_chunk)
    return ModelOutput(labels, case.score_grid)
