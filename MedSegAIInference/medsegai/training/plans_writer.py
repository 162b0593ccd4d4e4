"""plans.json and dataset.json in nnU-Net v2's new format, written by the trainer itself.

The runner reads these through :mod:`medsegai.nnunet.plans`, so a model we train is loaded and
run by exactly the code path that runs TotalSegmentator's models. nnU-Net's planner is not a
runtime dependency; the fields below are the ones nnU-Net's ExperimentPlanner writes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..atomic import atomic_write_text
from ..body_region import BODY_REGIONS_KEY, REGIONS, WHOLE_BODY
from ..nnunet.plans import CANONICAL_RAS, INPUT_ORIENTATION_KEY
from .dataset import Case, LabelMap

CONFIGURATION = "3d_fullres"
PLANS_NAME = "nnUNetPlans"
TRAINER_NAME = "MedSegAITrainer"
_SAMPLES_PER_CASE = 10000  # nnU-Net's fingerprint samples this many foreground voxels per case


@dataclass
class ArchitectureOptions:
    features: List[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    n_conv_per_stage: Optional[List[int]] = None  # default 2 per stage
    n_conv_per_stage_decoder: Optional[List[int]] = None
    dropout_p: float = 0.1  # Dropout3d after every conv, so Monte Carlo dropout can use the model

    def strides(self) -> List[List[int]]:
        return [[1, 1, 1]] + [[2, 2, 2]] * (len(self.features) - 1)


def foreground_intensity_properties(cases: Sequence[Case], label_map: LabelMap, seed: int = 1234) -> Dict[str, float]:
    """nnU-Net's fingerprint: statistics of (sampled) foreground voxels, pooled over all cases."""
    rng = np.random.default_rng(seed)
    samples = []
    for c in cases:
        fg = c.label > 0
        if label_map.ignore_value is not None:
            fg &= c.label != label_map.ignore_value
        vals = c.image.array[fg].astype(np.float64)
        if vals.size:
            samples.append(rng.choice(vals, _SAMPLES_PER_CASE, replace=True))
    if not samples:
        raise ValueError("no foreground voxels")
    v = np.concatenate(samples)
    return {
        "max": float(v.max()), "mean": float(v.mean()), "median": float(np.median(v)), "min": float(v.min()),
        "percentile_00_5": float(np.percentile(v, 0.5)), "percentile_99_5": float(np.percentile(v, 99.5)),
        "std": float(v.std()),
    }


def make_plans(dataset_name: str, spacing_zyx: Sequence[float], patch_zyx: Sequence[int], batch_size: int,
               arch: ArchitectureOptions, intensity: Dict[str, float], median_shape: Sequence[int],
               median_spacing: Sequence[float]) -> dict:
    n = len(arch.features)
    dropout = arch.dropout_p > 0
    return {
        "dataset_name": dataset_name,
        INPUT_ORIENTATION_KEY: CANONICAL_RAS,  # cases are reoriented before training (preprocessing.py)
        "plans_name": PLANS_NAME,
        "original_median_spacing_after_transp": [float(s) for s in median_spacing],
        "original_median_shape_after_transp": [int(s) for s in median_shape],
        "image_reader_writer": "SimpleITKIO",
        # The axes stay in (k, j, i) order: our target spacing is isotropic, nothing to put first.
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {CONFIGURATION: {
            "data_identifier": f"{PLANS_NAME}_{CONFIGURATION}",
            "preprocessor_name": "DefaultPreprocessor",
            "batch_size": int(batch_size),
            "patch_size": [int(p) for p in patch_zyx],
            "median_image_size_in_voxels": [int(s) for s in median_shape],
            "spacing": [float(s) for s in spacing_zyx],
            "normalization_schemes": ["CTNormalization"],
            "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                   "force_separate_z": None},
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {
                    "n_stages": n,
                    "features_per_stage": [int(f) for f in arch.features],
                    "conv_op": "torch.nn.modules.conv.Conv3d",
                    "kernel_sizes": [[3, 3, 3]] * n,
                    "strides": arch.strides(),
                    "n_conv_per_stage": list(arch.n_conv_per_stage or [2] * n),
                    "n_conv_per_stage_decoder": list(arch.n_conv_per_stage_decoder or [2] * (n - 1)),
                    "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                    "dropout_op": "torch.nn.modules.dropout.Dropout3d" if dropout else None,
                    "dropout_op_kwargs": {"p": float(arch.dropout_p), "inplace": False} if dropout else None,
                    "nonlin": "torch.nn.LeakyReLU",
                    "nonlin_kwargs": {"inplace": True},
                },
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
            },
            "batch_dice": True,
        }},
        "experiment_planner_used": "MedSegAI trainer (nnU-Net v2 plans format)",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": intensity},
    }


BODY_REGION_CHOICES = REGIONS + (WHOLE_BODY,)


def set_body_regions(plans: dict, regions: Optional[Sequence[str]]) -> dict:
    """Record the body regions the training scans cover, so the runner can warn outside them."""
    if regions:
        bad = [r for r in regions if r not in BODY_REGION_CHOICES]
        if bad:
            raise ValueError(f"unknown body region(s) {bad}; choose from {list(BODY_REGION_CHOICES)}")
        plans[BODY_REGIONS_KEY] = list(dict.fromkeys(regions))
    return plans


def write_body_regions(model_folder: Path, regions: Optional[Sequence[str]]) -> None:
    """Add the declaration to a trained model folder's plans.json (kept as it is when ``regions`` is empty)."""
    if not regions:
        return
    path = Path(model_folder) / "plans.json"
    plans = set_body_regions(json.loads(path.read_text()), regions)
    atomic_write_text(path, json.dumps(plans, indent=1))


def make_dataset_json(label_map: LabelMap, num_training: int, modality: str = "CT") -> dict:
    # Output channel c is label value c in the runner, so every value 0..max gets a name.
    return {
        "channel_names": {"0": modality},
        "labels": {label_map.names[v]: v for v in range(max(label_map.names) + 1)},
        "numTraining": int(num_training),
        "file_ending": ".nii.gz",
    }


def check_consecutive(label_map: LabelMap) -> None:
    from .errors import TrainingDataError

    gaps = [v for v in range(max(label_map.names) + 1) if v not in label_map.names]
    if gaps:
        raise TrainingDataError(
            f"The label-name map has no name for value(s) {', '.join(map(str, gaps[:10]))}: nnU-Net models output one "
            "channel per value 0..max, so every value needs a name (give unused ones a name too).")
