"""Run one nnU-Net model folder on one image, in nnU-Net's or TotalSegmentator's exact pipeline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from ..io.image import Image
from ..nnunet.model_folder import LoadedModel
from ..progress import Reporter
from .device import tiles_per_batch
from .export import ChunkCallback, scores_to_labels
from .orientation import from_canonical, to_canonical
from .preprocess import preprocess_case
from .resample import zoom_totalseg
from .sliding_window import WindowSettings, predict_logits


@dataclass
class RunOptions:
    device: torch.device
    mode: str = "nnunet"  # nnunet | totalseg
    tile_step: float = 0.5
    use_mirroring: bool = True  # only where the checkpoint allows it
    precision: str = "auto"
    fold_indices: Optional[Sequence[int]] = None  # which of the loaded folds to ensemble (default: all)
    batch_tiles: Optional[int] = None


@dataclass
class ModelOutput:
    labels: np.ndarray  # (k, j, i) on the input grid, the model's own label values
    scores_grid: Optional["ScoreGrid"] = None


@dataclass
class ScoreGrid:
    """Where ``on_chunk`` scores live, to map them back to the input grid (see uncertainty/probabilities)."""
    to_input: callable  # maps an array on the score grid (k?, ...) to the input grid (k, j, i)


def _window(model: LoadedModel, opts: RunOptions) -> WindowSettings:
    cfg = model.config
    mirror = model.mirror_axes if (opts.use_mirroring and model.mirror_axes) else None
    batch = opts.batch_tiles or tiles_per_batch(opts.device, cfg.patch_size, cfg.num_classes,
                                                cfg.network.features_per_stage[0])
    return WindowSettings(tuple(cfg.patch_size), opts.tile_step, mirror, batch, opts.precision)


def _networks(model: LoadedModel, opts: RunOptions):
    idx = list(opts.fold_indices) if opts.fold_indices is not None else list(range(len(model.folds)))
    return [model.make_network(i, opts.device) for i in idx]


def run_model(model: LoadedModel, image: Image, opts: RunOptions, reporter: Reporter,
              on_chunk: Optional[ChunkCallback] = None) -> ModelOutput:
    if opts.mode == "totalseg":
        return _run_totalseg(model, image, opts, reporter, on_chunk)
    return _run_nnunet(model, image, opts, reporter, on_chunk)


def _run_nnunet(model, image, opts, reporter, on_chunk) -> ModelOutput:
    cfg = model.config
    reporter("preprocess", 0.0, "cropping, normalising and resampling")
    data, geom = preprocess_case(image.array, image.spacing[::-1], cfg, check=reporter.check)
    reporter("preprocess", 1.0, f"network input {tuple(data.shape[1:])}")
    scores = predict_logits(_networks(model, opts), data, cfg.num_classes, _window(model, opts), opts.device, reporter)
    del data
    labels = scores_to_labels(scores, geom, cfg.resampling_probabilities_kwargs, on_chunk=on_chunk, reporter=reporter)
    from .export import uncrop_to_input

    return ModelOutput(labels, ScoreGrid(lambda a: uncrop_to_input(a, geom)))


def totalseg_input(image: Image, model_spacing_kji: Sequence[float]):
    """TotalSegmentator's input preparation: closest canonical, linear zoom to the model spacing, int32."""
    canon, ro = to_canonical(image)
    zoom_ijk = [s / t for s, t in zip(canon.spacing, model_spacing_kji[::-1])]
    # Zoom in nibabel's (i, j, k) axis order: the same interpolation sums in the same order, so the
    # int32 truncation that follows cuts exactly where TotalSegmentator's does.
    data = zoom_totalseg(canon.array.T.astype(np.float64), zoom_ijk, order=1).astype(np.int32).T
    return canon, ro, np.ascontiguousarray(data)


def _run_totalseg(model, image, opts, reporter, on_chunk) -> ModelOutput:
    cfg = model.config
    tb = cfg.transpose_backward
    spacing_kji = tuple(cfg.spacing[tb[a]] for a in range(3))
    reporter("preprocess", 0.0, "reorienting and resampling to the model spacing")
    canon, ro, data = totalseg_input(image, spacing_kji)
    pre, geom = preprocess_case(data, spacing_kji, cfg, check=reporter.check)
    del data
    reporter("preprocess", 1.0, f"network input {tuple(pre.shape[1:])}")
    scores = predict_logits(_networks(model, opts), pre, cfg.num_classes, _window(model, opts), opts.device, reporter)
    del pre
    low = scores_to_labels(scores, geom, cfg.resampling_probabilities_kwargs, on_chunk=None, reporter=reporter)
    if on_chunk is not None:
        _stream_scores_to_canonical(scores, geom, canon.shape, on_chunk)
    zoom = [t / s for t, s in zip(canon.shape, low.shape)]
    labels_canon = zoom_totalseg(low, zoom, order=0)
    labels = from_canonical(labels_canon, ro)
    return ModelOutput(labels, ScoreGrid(lambda a: from_canonical(a, ro)))


def _stream_scores_to_canonical(scores, geom, canon_shape, on_chunk, chunk: int = 8) -> None:
    """Scores for uncertainty/probabilities on the canonical input grid (linear, like nnU-Net's export)."""
    from .export import uncrop_to_input
    from .resample import resample_scores_chunk

    for c0 in range(0, scores.shape[0], chunk):
        idx = list(range(c0, min(scores.shape[0], c0 + chunk)))
        part = scores[c0:idx[-1] + 1].float().numpy()
        full = np.stack([uncrop_to_input(p, geom, fill=float(p.min())) for p in part])
        on_chunk(idx, resample_scores_chunk(torch.from_numpy(full), canon_shape, None))
