"""From an input image to the network input, and from class scores back to the input grid.

One place for both pipelines, used by a plain run (``single_model``) and by uncertainty runs
(which need the same labels plus scores on a "fine" grid), so the two can never drift apart:

* nnU-Net mode: the input's non-zero crop in the network's axis order is the fine grid, the grid
  that ``scores_to_labels`` resamples logits onto; outside the crop the pipeline says background.
* TotalSegmentator mode: the input is brought to the closest canonical orientation and zoomed to
  the model spacing as TotalSegmentator does; the fine grid is that canonical input grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..io.image import Image
from ..nnunet.model_folder import LoadedModel
from ..progress import Reporter
from .grid_check import check_model_grid
from .export import ChunkCallback, scores_to_labels, uncrop_to_input
from .orientation import from_canonical, to_canonical
from .preprocess import preprocess_case
from .resample import resample_scores_chunk, separate_z_axis, zoom_totalseg


@dataclass
class ScoreGrid:
    """Where ``on_chunk`` scores live, to map them back to the input grid (see uncertainty/probabilities)."""
    to_input: callable  # maps an array on the score grid (k?, ...) to the input grid (k, j, i)


def totalseg_input(image: Image, model_spacing_kji: Sequence[float]):
    """TotalSegmentator's input preparation: closest canonical, linear zoom to the model spacing, int32."""
    canon, ro = to_canonical(image)
    zoom_ijk = [s / t for s, t in zip(canon.spacing, model_spacing_kji[::-1])]
    # Zoom in nibabel's (i, j, k) axis order: the same interpolation sums in the same order, so the
    # int32 truncation that follows cuts exactly where TotalSegmentator's does.
    data = zoom_totalseg(canon.array.T.astype(np.float64), zoom_ijk, order=1).astype(np.int32).T
    return canon, ro, np.ascontiguousarray(data)


@dataclass
class PreparedCase:
    data: np.ndarray  # network input (C, X, Y, Z)
    # (C, network grid) -> (C, fine grid) float32, linear; ``fills`` = value per channel outside the crop
    to_fine: Callable[[torch.Tensor, Sequence[float]], torch.Tensor]
    # the base prediction's scores -> labels on the work grid, exactly as run_model computes them
    labels_from_scores: Callable[[torch.Tensor, Optional[ChunkCallback]], np.ndarray]
    fine_from_work: Callable[[np.ndarray], np.ndarray]
    work_from_fine: Callable[..., np.ndarray]  # (array, fill=0): ``fill`` outside the crop
    score_grid: ScoreGrid  # where ``on_chunk`` chunks of the labels export live (for ProbabilitySink)


def prepare_case(model: LoadedModel, image: Image, mode: str, reporter: Reporter) -> PreparedCase:
    """Network input plus the way back to the input grid, in nnU-Net's or TotalSegmentator's pipeline."""
    check_model_grid(image.array.shape, image.spacing[::-1], model.config.spacing)
    if mode == "totalseg":
        return _prepare_totalseg(model, image, reporter)
    return _prepare_nnunet(model, image, reporter)


def _prepare_nnunet(model: LoadedModel, image: Image, reporter: Reporter) -> PreparedCase:
    cfg = model.config
    reporter("preprocess", 0.0, "cropping, normalising and resampling")
    data, geom = preprocess_case(image.array, image.spacing[::-1], cfg, check=reporter.check)
    reporter("preprocess", 1.0, f"network input {tuple(data.shape[1:])}")
    axis = separate_z_axis(geom.model_spacing, geom.spacing, cfg.resampling_probabilities_kwargs.get("force_separate_z"))
    crop = tuple(slice(a, b) for a, b in geom.bbox)
    tf = list(cfg.transpose_forward)

    def to_fine(chunk, fills):
        return resample_scores_chunk(chunk, geom.shape_after_crop, axis)  # the crop needs no fill

    def labels_from_scores(scores, on_chunk):
        return scores_to_labels(scores, geom, cfg.resampling_probabilities_kwargs, on_chunk=on_chunk,
                                reporter=reporter)

    return PreparedCase(
        data, to_fine, labels_from_scores,
        fine_from_work=lambda a: np.ascontiguousarray(a.transpose(tf)[crop]),
        work_from_fine=lambda m, fill=0: uncrop_to_input(m, geom, fill=fill),
        score_grid=ScoreGrid(lambda a: uncrop_to_input(a, geom)),
    )


def _prepare_totalseg(model: LoadedModel, image: Image, reporter: Reporter) -> PreparedCase:
    cfg = model.config
    tb = cfg.transpose_backward
    spacing_kji = tuple(cfg.spacing[tb[a]] for a in range(3))
    reporter("preprocess", 0.0, "reorienting and resampling to the model spacing")
    canon, ro, raw = totalseg_input(image, spacing_kji)
    data, geom = preprocess_case(raw, spacing_kji, cfg, check=reporter.check)
    del raw
    reporter("preprocess", 1.0, f"network input {tuple(data.shape[1:])}")

    def to_fine(chunk, fills):
        part = chunk.float().numpy()
        full = np.stack([uncrop_to_input(p, geom, fill=float(f)) for p, f in zip(part, fills)])
        return resample_scores_chunk(torch.from_numpy(full), canon.shape, None)

    def labels_from_scores(scores, on_chunk):
        # TotalSegmentator: labels on the model grid, zoomed back with nearest neighbour.
        low = scores_to_labels(scores, geom, cfg.resampling_probabilities_kwargs, on_chunk=None, reporter=reporter)
        if on_chunk is not None:
            _stream_scores_to_canonical(scores, geom, canon.shape, on_chunk)
        zoom = [t / s for t, s in zip(canon.shape, low.shape)]
        return from_canonical(zoom_totalseg(low, zoom, order=0), ro)

    return PreparedCase(
        data, to_fine, labels_from_scores,
        fine_from_work=lambda a: to_canonical(image.with_array(a))[0].array,
        work_from_fine=lambda m, fill=0: from_canonical(m, ro),  # the fine grid is the whole image
        score_grid=ScoreGrid(lambda a: from_canonical(a, ro)),
    )


def _stream_scores_to_canonical(scores, geom, canon_shape, on_chunk, chunk: int = 8) -> None:
    """Scores for uncertainty/probabilities on the canonical input grid (linear, like nnU-Net's export)."""
    for c0 in range(0, scores.shape[0], chunk):
        idx = list(range(c0, min(scores.shape[0], c0 + chunk)))
        part = scores[c0:idx[-1] + 1].float().numpy()
        full = np.stack([uncrop_to_input(p, geom, fill=float(p.min())) for p in part])
        on_chunk(idx, resample_scores_chunk(torch.from_numpy(full), canon_shape, None))
