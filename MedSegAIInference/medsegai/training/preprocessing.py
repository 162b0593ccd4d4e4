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

from ..inference.orientation import to_canonical
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
    # Closest canonical (RAS) orientation first, as the runner does for these models: the network
    # sees every body the same way up whether it came as a RAS NIfTI or an LPS DICOM series.
    image, _ = to_canonical(case.image)
    label = to_canonical(case.image.with_array(case.label))[0].array
    data, geom = preprocess_case(image.array, image.spacing[::-1], config)
    tf = list(config.transpose_forward)
    lab = label.transpose(tf)
    lab = lab[tuple(slice(a, b) for a, b in geom.bbox)]
    lab = resize_skimage_like(lab.astype(np.int32), data.shape[1:], order=0)
    target = lut[lab].astype(np.uint8)
    return PreprocessedCase(case.name, np.ascontiguousarray(data, dtype=np.float32), target[None])


def add_air_margin(case: PreprocessedCase, config: ModelConfig, margin_mm: float) -> PreprocessedCase:
    """Surround a CT with air in-plane (labelled background), as if scanned with a wider field of view.

    Training CTs are often reconstructed tightly around the body, while users' scans have air,
    the table and the reconstruction circle around it; a network that never saw wide air calls it
    whatever structure it knows best. After CTNormalization air takes the lowest value (the clip
    at the foreground's 0.5th percentile), which is the image's minimum. Only the two in-plane
    axes (input axes j and i, wherever transpose_forward puts them) get the margin.
    """
    if margin_mm <= 0 or "CTNormalization" not in config.normalization_schemes:
        return case
    air = float(case.image.min())
    pads = [(0, 0)]
    for axis in range(3):
        inplane = config.transpose_forward[axis] in (1, 2)
        n = int(round(margin_mm / config.spacing[axis])) if inplane else 0
        pads.append((n, n))
    image = np.pad(case.image, pads, mode="constant", constant_values=air)
    target = np.pad(case.target, pads, mode="constant", constant_values=0)
    return PreprocessedCase(case.name, image, target)
