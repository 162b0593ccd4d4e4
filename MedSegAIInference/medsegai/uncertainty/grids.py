"""Where the uncertainty arithmetic happens, and how results reach the work image's grid.

Several predictions are combined on the network grid (the grid the class scores already live
on, so the extra memory is one more score-sized array, whatever the number of passes). Maps and
per-class probabilities then go to the "fine" grid once, a class chunk at a time:

* nnU-Net mode: the fine grid is the input's non-zero crop in the network's axis order, the grid
  that ``scores_to_labels`` resamples logits onto; outside the crop the pipeline says background.
* TotalSegmentator mode: the fine grid is the closest-canonical input grid.

The labels themselves come from the same functions ``inference/single_model.py`` uses, so a run
with uncertainty returns exactly the labels of a run without it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..inference.export import ChunkCallback, scores_to_labels, uncrop_to_input
from ..inference.orientation import from_canonical, to_canonical
from ..inference.preprocess import preprocess_case
from ..inference.resample import resample_scores_chunk, separate_z_axis, zoom_totalseg
from ..inference.single_model import RunOptions, ScoreGrid, _stream_scores_to_canonical, totalseg_input
from ..io.image import Image
from ..nnunet.model_folder import LoadedModel
from ..progress import Reporter


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


def prepare_case(model: LoadedModel, image: Image, opts: RunOptions, reporter: Reporter) -> PreparedCase:
    if opts.mode == "totalseg":
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
        # As _run_totalseg: labels on the model grid, zoomed back with nearest neighbour.
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
