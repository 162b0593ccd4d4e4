"""A training case through exactly the runner's preprocessing, with its label on the same grid.

The image goes through :func:`medsegai.inference.preprocess.preprocess_case` (transpose, crop to
non-zero, CTNormalization with the plans' statistics, resampling with nnU-Net's order-3 rule), so
the network is trained on what it will see at inference. The label follows the same crop and is
resampled with nearest neighbour on the same sampling grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..inference.preprocess import preprocess_case
from ..inference.resample import resize_skimage_like
from ..nnunet.plans import ModelConfig
from .dataset import Case

IGNORE_INDEX = 255  # the loss's ignore index for unknown voxels (after mapping values to channels)


@dataclass
class PreprocessedCase:
    name: str
    image: np.ndarray  # (1, X, Y, Z) float32, normalised, at the plan spacing
    target: np.ndarray  # (1, X, Y, Z) uint8: training channel per voxel, IGNORE_INDEX = unknown


def value_to_channel_lut(trained: List[int], ignore_value: Optional[int], max_value: int) -> np.ndarray:
    """Label value -> training channel (position in ``trained``); untrained values -> background."""
    size = max(max_value, ignore_value or 0) + 1
    lut = np.zeros(size, dtype=np.uint8)
    for ch, v in enumerate(trained):
        lut[v] = ch
    if ignore_value is not None:
        lut[ignore_value] = IGNORE_INDEX
    return lut


def preprocess_training_case(case: Case, config: ModelConfig, lut: np.ndarray) -> PreprocessedCase:
    data, geom = preprocess_case(case.image.array, case.image.spacing[::-1], config)
    tf = list(config.transpose_forward)
    lab = case.label.transpose(tf)
    lab = lab[tuple(slice(a, b) for a, b in geom.bbox)]
    lab = resize_skimage_like(lab.astype(np.int32), data.shape[1:], order=0)
    target = lut[lab].astype(np.uint8)
    return PreprocessedCase(case.name, np.ascontiguousarray(data, dtype=np.float32), target[None])
