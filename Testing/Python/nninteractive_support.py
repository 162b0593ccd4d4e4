"""nnInteractive model folders with random weights, and nnInteractive's own session beside ours.

Real nnInteractive weights (CC BY-NC-SA, 102 M parameters, 192^3 patches) cannot be downloaded
here and would take minutes per prompt on a CPU. The folders built here have the same layout,
checkpoint format and architecture class (nnU-Net's ResidualEncoderUNet, 1 + 7 input channels,
2 outputs), built by nnU-Net's own get_network_from_plans, at a CI size. Random weights give
speckle over half the image, which drives AutoZoom to its maximum; shifting the class biases of
the last layer makes the foreground ~1% of the image and lets it follow the prompts, so AutoZoom
both stops and zooms out.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional, Sequence

CONFIGURATION = "3d_fullres_ps64"


def nninteractive_plans(patch: Sequence[int] = (64, 64, 64), features: Sequence[int] = (16, 32, 32, 32),
                        blocks: Optional[Sequence[int]] = None) -> dict:
    """Plans of the shape nnInteractive ships (a ResEnc configuration inheriting from 3d_fullres)."""
    n = len(features)
    blocks = [1] * n if blocks is None else blocks
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
        "arch_kwargs": {
            "n_stages": n, "features_per_stage": list(features), "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * n, "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n - 1),
            "n_blocks_per_stage": list(blocks), "n_conv_per_stage_decoder": [1] * (n - 1), "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    base = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [128, 128, 128], "median_image_size_in_voxels": [128, 128, 128], "spacing": [1.0, 1.0, 1.0],
        "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": arch, "batch_dice": True,
    }
    return {
        "dataset_name": "Dataset901_nnInteractiveRandom", "plans_name": "nnUNetResEncUNetLPlans_noResampling",
        "original_median_spacing_after_transp": [1.0, 1.0, 1.0],
        "original_median_shape_after_transp": [128, 128, 128], "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": base,
                           CONFIGURATION: {"inherits_from": "3d_fullres", "patch_size": list(patch), "batch_size": 24}},
        "experiment_planner_used": "nnUNetPlannerResEncL", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {"max": 1.0, "mean": 0.0, "median": 0.0, "min": -1.0,
                                                              "percentile_00_5": -1.0, "percentile_99_5": 1.0,
                                                              "std": 1.0}},
    }


def write_nninteractive_folder(dest: Path, *, patch: Sequence[int] = (64, 64, 64),
                               features: Sequence[int] = (16, 32, 32, 32), blocks: Optional[Sequence[int]] = None,
                               seed: int = 0,
                               bias_shift: float = 0.5, info: Optional[dict] = None,
                               license_text: Optional[str] = "CC0 1.0 (random test weights)\nNot a trained model.\n",
                               legacy_info: bool = False) -> Path:
    """A model folder with nnU-Net's network and He init from ``seed``; returns the folder."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    folder = Path(dest)
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "fold_0").mkdir(parents=True)
    plans = nninteractive_plans(patch, features, blocks)
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    torch.manual_seed(seed)
    net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                 1 + 7, 2, allow_init=True, deep_supervision=False)
    with torch.no_grad():
        # nnU-Net's init zeroes the last norm of every residual block; random affine norms make the
        # network use all of its layers (and a wrongly wired block show in the output).
        for name, p in net.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
        head = net.decoder.seg_layers[-1]
        head.bias[0] += bias_shift
        head.bias[1] -= bias_shift
    torch.save({"network_weights": net.state_dict(), "init_args": {"configuration": CONFIGURATION},
                # nnInteractive looks the trainer up by name; any other name makes it scan nnU-Net's
                # trainers, which import timm.
                "trainer_name": "nnInteractiveTrainer_stub", "inference_allowed_mirroring_axes": None},
               folder / "fold_0" / "checkpoint_final.pth")
    (folder / "plans.json").write_text(json.dumps(plans, indent=1))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "image"}, "labels": {"background": 0, "foreground": 1}, "numTraining": 1,
        "file_ending": ".nii.gz"}, indent=1))
    if legacy_info:
        (folder / "inference_session_class.json").write_text(json.dumps(info if info is not None else {}))
    else:
        (folder / "inference_info.json").write_text(json.dumps(info if info is not None else {}))
    if license_text is not None:
        (folder / "LICENSE").write_text(license_text)
    return folder


def reference_session(folder: Path, autozoom: bool = True):
    """nnInteractive's own inference session on the CPU, quiet, undo on."""
    import contextlib
    import io

    import torch
    from nnInteractive.inference.inference_session import nnInteractiveInferenceSession

    with contextlib.redirect_stdout(io.StringIO()):
        session = nnInteractiveInferenceSession(device=torch.device("cpu"), use_torch_compile=False, verbose=False,
                                                torch_n_threads=torch.get_num_threads(), do_autozoom=autozoom,
                                                interactions_storage="tensor", enable_undo=True)
        session.initialize_from_trained_model_folder(str(folder), use_fold=0)
    return session
