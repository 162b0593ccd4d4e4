"""From class scores on the network grid to a label map on the input grid.

nnU-Net resamples all class scores to full resolution at once and then takes the argmax; on a
full-size CT with 118 classes that is tens of GB. Resampling is per class, so resampling a few
classes at a time with a running argmax gives the same labels in a fraction of the memory.
Consumers of full-resolution scores (probabilities, uncertainty) get each chunk through
``on_chunk`` instead of a giant array.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from ..progress import Reporter
from .preprocess import CaseGeometry
from .resample import resample_scores_chunk, separate_z_axis

ChunkCallback = Callable[[Sequence[int], torch.Tensor], None]


def _margin(max_abs: float) -> float:
    # fp16 spacing at magnitude m is m * 2**-10; four of them keep even the rounded scores strictly
    # ordered, so a dropped class could not even have tied (and won the tie) in nnU-Net's argmax.
    return max_abs * 2.0 ** -8 + 1e-3


def first_argmax(scores: torch.Tensor, dtype: torch.dtype = torch.int16) -> torch.Tensor:
    """``scores.argmax(0)`` (the first maximum on ties) for (K, ...) scores without NaN, one class at a
    time: PyTorch's fp16 argmax over the class axis takes 1.9-2.0 s on 118 x 134 x 183 x 183, this
    0.44-0.49 s (Testing/Benchmarks/bench_accumulation.py)."""
    best = scores[0].clone()
    idx = torch.zeros(scores.shape[1:], dtype=dtype, device=scores.device)
    for c in range(1, scores.shape[0]):
        better = scores[c] > best  # strict: an earlier class keeps a tie
        torch.maximum(best, scores[c], out=best)
        idx.masked_fill_(better, c)
    return idx


def classes_that_can_win(scores: torch.Tensor, reporter: Optional[Reporter] = None) -> List[int]:
    """Classes that may be the argmax somewhere after order-1 resampling; the others need no resampling.

    Linear and nearest-neighbour resampling give every output voxel a convex combination of grid
    values, so if class ``b`` beats class ``c`` by a margin at every grid voxel it does so at every
    output voxel, and ``c`` can never be the label. The background channel is the usual such ``b``:
    a model's output heads for structures it never learned (the bundled model keeps TotalSegmentator's
    118 channels, 74 of them silent) and structures outside the field of view stay below it
    everywhere. Skipping them saves their resampling, the dominant cost of export. Exact, not a guess.
    """
    k = scores.shape[0]
    counts = torch.bincount(first_argmax(scores).flatten().long(), minlength=k)
    winners = set(torch.nonzero(counts).flatten().tolist())
    keep = []
    bg = scores[0].float()
    bg_abs = float(bg.abs().max())
    for c in range(k):
        if reporter is not None:
            reporter.check()
        if c in winners or c == 0:
            keep.append(c)
            continue
        sc = scores[c].float()
        if not bool(((bg - sc) > _margin(max(bg_abs, float(sc.abs().max())))).all()):
            keep.append(c)
    return keep


def scores_to_labels(
    scores: torch.Tensor,
    geom: CaseGeometry,
    resampling_kwargs: dict,
    chunk: int = 8,
    on_chunk: Optional[ChunkCallback] = None,
    reporter: Optional[Reporter] = None,
) -> np.ndarray:
    """scores (K, X, Y, Z) on the model grid -> uint8/uint16 labels (k, j, i) on the input grid.

    Without ``on_chunk`` (labels only), classes that cannot win (:func:`classes_that_can_win`) are
    not resampled; with it every class is, since the consumer wants all scores.
    """
    reporter = reporter or Reporter()
    num_classes = scores.shape[0]
    target = geom.shape_after_crop
    axis = separate_z_axis(geom.model_spacing, geom.spacing, resampling_kwargs.get("force_separate_z"))
    best_val = None
    index_dtype = torch.int16 if num_classes > 127 else torch.uint8
    if on_chunk is None and tuple(scores.shape[1:]) == tuple(int(t) for t in target):
        # Nothing to resample (TotalSegmentator's pipeline: the model grid is the cropped grid): the
        # chunks below would round-trip the fp16 scores through fp32 unchanged, so their running
        # first maximum is the plain first argmax.
        reporter("export", 0.0, f"classes 0/{num_classes}")
        best_idx = first_argmax(scores, index_dtype)
        reporter("export", 1.0, f"classes {num_classes}/{num_classes}")
        return _labels_on_input_grid(best_idx, geom, num_classes)
    best_idx = torch.zeros(target, dtype=index_dtype)
    classes = list(range(num_classes)) if on_chunk is not None else classes_that_can_win(scores, reporter)
    for n0 in range(0, len(classes), chunk):
        reporter.check()
        idx = classes[n0:n0 + chunk]
        if idx == list(range(idx[0], idx[-1] + 1)):
            res = resample_scores_chunk(scores[idx[0]:idx[-1] + 1], target, axis)
        else:
            res = resample_scores_chunk(scores[idx], target, axis)
        if on_chunk is not None:
            on_chunk(idx, res)
        # nnU-Net stores the resampled fp16 scores back into fp16 before its argmax; the rounding
        # creates ties that argmax breaks towards the lower class. Same rounding here, same labels.
        # Classes stay in ascending order, so "first maximum" still means the lowest class.
        val, arg = res.half().max(0)  # first maximum on ties, like argmax
        arg = torch.as_tensor(idx, dtype=torch.int64)[arg].to(best_idx.dtype)
        if best_val is None:
            best_val, best_idx = val, arg
        else:
            better = val > best_val  # strict: an earlier class keeps a tie, as argmax does
            best_val = torch.where(better, val, best_val)
            best_idx = torch.where(better, arg, best_idx)
        del res, val, arg
        done = min(n0 + chunk, len(classes))
        reporter("export", done / len(classes), f"classes {done}/{len(classes)}")
    return _labels_on_input_grid(best_idx, geom, num_classes)


def _labels_on_input_grid(best_idx: torch.Tensor, geom: CaseGeometry, num_classes: int) -> np.ndarray:
    dtype = np.uint8 if num_classes <= 256 else np.uint16
    labels = np.zeros(geom.shape_before_crop, dtype=dtype)
    crop = tuple(slice(a, b) for a, b in geom.bbox)
    labels[crop] = best_idx.numpy().astype(dtype)
    return np.ascontiguousarray(labels.transpose(geom.transpose_backward))


def uncrop_to_input(arr_cropped: np.ndarray, geom: CaseGeometry, fill=0) -> np.ndarray:
    """Place an array on the cropped, transposed grid back onto the input grid (k, j, i)."""
    out = np.full(geom.shape_before_crop, fill, dtype=arr_cropped.dtype)
    out[tuple(slice(a, b) for a, b in geom.bbox)] = arr_cropped
    return np.ascontiguousarray(out.transpose(geom.transpose_backward))
