"""nnU-Net v2's preprocessing of one case: transpose, crop to non-zero, normalise, resample.

The order (normalise before resampling) and the arithmetic follow nnU-Net's DefaultPreprocessor
so that the network sees the same input as under nnU-Net's own predictor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from scipy.ndimage import binary_fill_holes

from ..nnunet.plans import ModelConfig
from .resample import compute_new_shape, resample_image_nnunet


@dataclass
class CaseGeometry:
    """What export needs to put the prediction back on the input grid."""
    shape_before_crop: Tuple[int, ...]  # transposed (network axis order)
    bbox: List[Tuple[int, int]]  # half-open crop box in the transposed array
    shape_after_crop: Tuple[int, ...]
    spacing: Tuple[float, ...]  # input spacing, transposed
    model_spacing: Tuple[float, ...]
    transpose_backward: Tuple[int, ...]


def nonzero_bbox(data: np.ndarray) -> Tuple[List[Tuple[int, int]], np.ndarray]:
    """nnU-Net's crop box: non-zero voxels of any channel, holes filled."""
    mask = data[0] != 0
    for c in range(1, data.shape[0]):
        mask |= data[c] != 0
    mask = binary_fill_holes(mask)
    bbox = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        bbox.append((int(hit[0]), int(hit[-1]) + 1) if hit.size else (0, mask.shape[axis]))
    return bbox, mask


def normalize(data: np.ndarray, mask: np.ndarray, config: ModelConfig) -> np.ndarray:
    for c, scheme in enumerate(config.normalization_schemes):
        img = data[c]
        if scheme == "CTNormalization":
            p = config.intensity_properties[c]
            np.clip(img, p.percentile_00_5, p.percentile_99_5, out=img)
            img -= p.mean
            img /= max(p.std, 1e-8)
        elif scheme == "ZScoreNormalization":
            use_mask = c < len(config.use_mask_for_norm) and config.use_mask_for_norm[c]
            if use_mask:
                sel = img[mask]
                mean, std = sel.mean(), sel.std()
                img[mask] = (sel - mean) / max(std, 1e-8)
            else:
                mean, std = img.mean(), img.std()
                img -= mean
                img /= max(std, 1e-8)
        elif scheme == "RescaleTo01Normalization":
            img -= img.min()
            img /= np.clip(img.max(), 1e-8, None)
        elif scheme == "RGBTo01Normalization":
            img /= 255.0
        # NoNormalization: leave as is
    return data


def preprocess_case(array_kji: np.ndarray, spacing_kji: Sequence[float], config: ModelConfig,
                    resample: bool = True, check: Optional[Callable[[], None]] = None) -> Tuple[np.ndarray, CaseGeometry]:
    """(k, j, i) image with spacing in the same order -> network input (C, X, Y, Z) float32."""
    data = array_kji.astype(np.float32)[None]  # a copy: the caller's image is never touched
    tf = list(config.transpose_forward)
    data = data.transpose([0, *[t + 1 for t in tf]])
    spacing = tuple(float(spacing_kji[t]) for t in tf)
    shape_before = tuple(data.shape[1:])
    bbox, mask = nonzero_bbox(data)
    crop = tuple(slice(a, b) for a, b in bbox)
    data = np.ascontiguousarray(data[(slice(None), *crop)])
    mask = mask[crop]
    shape_after = tuple(data.shape[1:])
    data = normalize(data, mask, config)
    del mask
    if check:
        check()
    if resample:
        new_shape = compute_new_shape(shape_after, spacing, config.spacing)
        kw = config.resampling_data_kwargs
        data = resample_image_nnunet(data, new_shape, spacing, config.spacing, order=int(kw.get("order", 3)),
                                     order_z=int(kw.get("order_z", 0)), force_separate_z=kw.get("force_separate_z"),
                                     check=check)
    geom = CaseGeometry(shape_before, bbox, shape_after, spacing, tuple(config.spacing), tuple(config.transpose_backward))
    return data, geom
