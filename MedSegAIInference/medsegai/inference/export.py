"""From class scores on the network grid to a label map on the input grid.

nnU-Net resamples all class scores to full resolution at once and then takes the argmax; on a
full-size CT with 118 classes that is tens of GB. Resampling is per class, so resampling a few
classes at a time with a running argmax gives the same labels in a fraction of the memory.
Consumers of full-resolution scores (probabilities, uncertainty) get each chunk through
``on_chunk`` instead of a giant array.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..progress import Reporter
from .preprocess import CaseGeometry
from .resample import resample_scores_chunk, separate_z_axis

ChunkCallback = Callable[[Sequence[int], torch.Tensor], None]


def scores_to_labels(
    scores: torch.Tensor,
    geom: CaseGeometry,
    resampling_kwargs: dict,
    chunk: int = 8,
    on_chunk: Optional[ChunkCallback] = None,
    reporter: Optional[Reporter] = None,
) -> np.ndarray:
    """scores (K, X, Y, Z) on the model grid -> uint8/uint16 labels (k, j, i) on the input grid."""
    reporter = reporter or Reporter()
    num_classes = scores.shape[0]
    target = geom.shape_after_crop
    axis = separate_z_axis(geom.model_spacing, geom.spacing, resampling_kwargs.get("force_separate_z"))
    best_val = None
    best_idx = torch.zeros(target, dtype=torch.int16 if num_classes > 127 else torch.uint8)
    for c0 in range(0, num_classes, chunk):
        reporter.check()
        idx = list(range(c0, min(num_classes, c0 + chunk)))
        res = resample_scores_chunk(scores[c0:idx[-1] + 1], target, axis)
        if on_chunk is not None:
            on_chunk(idx, res)
        # nnU-Net stores the resampled fp16 scores back into fp16 before its argmax; the rounding
        # creates ties that argmax breaks towards the lower class. Same rounding here, same labels.
        val, arg = res.half().max(0)  # first maximum on ties, like argmax
        arg = (arg + c0).to(best_idx.dtype)
        if best_val is None:
            best_val, best_idx = val, arg
        else:
            better = val > best_val  # strict: an earlier class keeps a tie, as argmax does
            best_val = torch.where(better, val, best_val)
            best_idx = torch.where(better, arg, best_idx)
        del res, val, arg
        reporter("export", (idx[-1] + 1) / num_classes, f"classes {idx[-1] + 1}/{num_classes}")
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
