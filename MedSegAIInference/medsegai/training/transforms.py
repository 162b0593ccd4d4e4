"""Augmentation with MONAI dictionary transforms, on preprocessed (1, X, Y, Z) arrays.

No mirroring anywhere: left and right structures carry different labels (kidney_left vs
kidney_right...), and anterior/posterior or head/foot flips produce anatomy that does not exist.
Rotations stay small for the same reason. The models are saved with mirroring at inference off.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from monai import transforms as mt

from .preprocessing import IGNORE_INDEX


def class_sampling_label(target: np.ndarray, num_classes: int) -> np.ndarray:
    """The target with unknown voxels as background, for choosing patch centres by class."""
    out = target.copy()
    out[out == IGNORE_INDEX] = 0
    return out


def training_transforms(patch: Sequence[int], num_classes: int, seed: int = 0, elastic_p: float = 0.1) -> mt.Compose:
    patch = [int(p) for p in patch]
    # Crop a larger region first so that rotation/scaling have real data at the patch borders.
    big = [int(round(p * 1.3)) for p in patch]
    ratios = [0.3] + [1.0] * (num_classes - 1)  # oversample structures: background is everywhere anyway
    t = mt.Compose([
        mt.RandCropByLabelClassesd(keys=("image", "target"), label_key="sampling", spatial_size=big,
                                   num_classes=num_classes, ratios=ratios, num_samples=1,
                                   indices_key="sampling_indices", allow_smaller=False, warn=False),
        mt.RandAffined(keys=("image", "target"), prob=0.7, spatial_size=patch,
                       rotate_range=[np.deg2rad(12)] * 3, scale_range=[0.15] * 3, translate_range=[4] * 3,
                       mode=("bilinear", "nearest"), padding_mode="border"),
        mt.CenterSpatialCropd(keys=("image", "target"), roi_size=patch),  # when RandAffined did not fire
        mt.Rand3DElasticd(keys=("image", "target"), prob=elastic_p, sigma_range=(5, 7), magnitude_range=(20, 60),
                          mode=("bilinear", "nearest"), padding_mode="border"),
        mt.RandGaussianNoised(keys="image", prob=0.15, std=0.1),
        mt.RandGaussianSmoothd(keys="image", prob=0.1, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0)),
        mt.RandScaleIntensityd(keys="image", prob=0.15, factors=0.25),
        mt.RandShiftIntensityd(keys="image", prob=0.15, offsets=0.1),
        mt.RandAdjustContrastd(keys="image", prob=0.15, gamma=(0.7, 1.5), retain_stats=True),
        mt.EnsureTyped(keys=("image", "target"), track_meta=False),
    ])
    t.set_random_state(seed=seed)
    return t


def cached_transforms(patch: Sequence[int], num_classes: int) -> mt.Compose:
    """Deterministic part, run once per case: padding to the crop size, per-class voxel indices."""
    big = [int(round(p * 1.3)) for p in patch]
    return mt.Compose([
        # Edge padding: the padded border looks like the image's own border (air for CT).
        mt.SpatialPadd(keys=("image", "target", "sampling"), spatial_size=big, mode="edge"),
        mt.ClassesToIndicesd(keys="sampling", num_classes=num_classes, indices_postfix="_indices"),
    ])
