"""nnU-Net v2 result folders with random weights and the architecture nnU-Net's own planner picks.

Real TotalSegmentator weights cannot be downloaded here, so parity is proven on folders built
the way nnU-Net builds them: nnU-Net's fingerprint extractor and ExperimentPlanner on real CT
from ../shared/data give plans.json; nnU-Net's get_network_from_plans (dynamic-network-
architectures) gives the network, initialised with nnU-Net's He init from a fixed seed; the
checkpoint has nnU-Net's keys. Used by tests and by Testing/Benchmarks.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

_PLAN_SCRIPT = r"""
import json, os, sys
from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments
extract_fingerprints([int(sys.argv[1])], check_dataset_integrity=False, clean=True, verbose=False)
plan_experiments([int(sys.argv[1])])
"""


def _write_raw_dataset(raw: Path, dataset_id: int, name: str, cases, labels: Dict[str, int]) -> str:
    import SimpleITK as sitk

    ds = raw / f"Dataset{dataset_id:03d}_{name}"
    (ds / "imagesTr").mkdir(parents=True)
    (ds / "labelsTr").mkdir()
    for n, (img, seg) in enumerate(cases):
        os.symlink(Path(img).resolve(), ds / "imagesTr" / f"case{n:03d}_0000.nii.gz")
        s = sitk.ReadImage(str(seg))
        arr = sitk.GetArrayFromImage(s)
        # the planner only needs labels that exist in dataset.json
        arr[arr >= len(labels)] = 0
        out = sitk.GetImageFromArray(arr.astype("uint8"))
        out.CopyInformation(s)
        sitk.WriteImage(out, str(ds / "labelsTr" / f"case{n:03d}.nii.gz"))
    (ds / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": labels, "numTraining": len(cases), "file_ending": ".nii.gz"}))
    return ds.name


def plan_with_nnunet(cases, labels: Dict[str, int], dataset_id: int = 500, name: str = "Test") -> tuple:
    """Run nnU-Net's fingerprint extraction and planner in a subprocess; returns (plans, dataset_json)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, nnUNet_raw=str(tmp / "raw"), nnUNet_preprocessed=str(tmp / "pre"),
                   nnUNet_results=str(tmp / "res"), nnUNet_n_proc_DA="1")
        ds_name = _write_raw_dataset(tmp / "raw", dataset_id, name, cases, labels)
        subprocess.run([sys.executable, "-c", _PLAN_SCRIPT, str(dataset_id)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        plans = json.loads((tmp / "pre" / ds_name / "nnUNetPlans.json").read_text())
        dataset = json.loads((tmp / "pre" / ds_name / "dataset.json").read_text())
    return plans, dataset


def shrink_plans(plans: dict, configuration: str = "3d_fullres", patch=(48, 48, 48), features=(16, 32, 32, 32),
                 spacing: Optional[Sequence[float]] = None) -> dict:
    """A small variant of real plans so that CI can run the whole pipeline in seconds.

    Feature counts stay multiples of 16: measured here, a 3D convolution with 4 or 8 channels
    takes a slow CPU path (100-200 ms per 32x48x48 tile) while 16 channels takes about 40 ms.
    The default doubles up to a cap, so the old plans format (base features, doubling, cap) can
    describe it too."""
    plans = json.loads(json.dumps(plans))
    conf = plans["configurations"][configuration]
    n = len(features)
    kw = conf["architecture"]["arch_kwargs"]
    kw["n_stages"] = n
    kw["features_per_stage"] = list(features)
    kw["kernel_sizes"] = [[3, 3, 3]] * n
    kw["strides"] = [[1, 1, 1]] + [[2, 2, 2]] * (n - 1)
    kw["n_conv_per_stage"] = [2] * n
    kw["n_conv_per_stage_decoder"] = [2] * (n - 1)
    conf["patch_size"] = list(patch)
    if spacing is not None:
        conf["spacing"] = list(spacing)
    return plans


def to_old_plans_format(plans: dict, configuration: str = "3d_fullres") -> dict:
    """The plans as TotalSegmentator's (older nnU-Net v2) files write them: no 'architecture' block."""
    plans = json.loads(json.dumps(plans))
    conf = plans["configurations"][configuration]
    kw = conf.pop("architecture")["arch_kwargs"]
    conf["UNet_class_name"] = "PlainConvUNet"
    conf["UNet_base_num_features"] = kw["features_per_stage"][0]
    conf["unet_max_num_features"] = max(kw["features_per_stage"])
    conf["n_conv_per_stage_encoder"] = kw["n_conv_per_stage"]
    conf["n_conv_per_stage_decoder"] = kw["n_conv_per_stage_decoder"]
    conf["num_pool_per_axis"] = [sum(1 for s in kw["strides"] if s[a] > 1) for a in range(3)]
    conf["pool_op_kernel_sizes"] = kw["strides"]
    conf["conv_kernel_sizes"] = kw["kernel_sizes"]
    return plans


def write_model_folder(dest: Path, plans: dict, dataset: dict, *, configuration: str = "3d_fullres",
                       trainer: str = "nnUNetTrainerNoMirroring", folds: Sequence[int] = (0,), seed: int = 0,
                       mirror_axes=None, old_format: bool = False, background_bias: float = 0.0) -> Path:
    """Write <trainer>__nnUNetPlans__<configuration>/ with nnU-Net's network, He-initialised per fold."""
    import torch
    from dynamic_network_architectures.initialization.weight_init import InitWeights_He
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    folder = Path(dest) / f"{trainer}__nnUNetPlans__{configuration}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    arch = plans["configurations"][configuration]["architecture"]
    n_out = len(dataset["labels"])
    for fold in folds:
        torch.manual_seed(seed + fold)
        net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                     len(dataset["channel_names"]), n_out, allow_init=True, deep_supervision=False)
        net.apply(InitWeights_He(1e-2))
        # Random weights give near-uniform scores; scale the head so labels form regions, as a trained model's do.
        with torch.no_grad():
            head = net.decoder.seg_layers[-1]
            head.weight.mul_(8.0)
            head.bias[0] += background_bias  # > 0: structures occupy only part of the image
        (folder / f"fold_{fold}").mkdir()
        torch.save({
            "network_weights": net.state_dict(),
            "init_args": {"plans": plans, "configuration": configuration, "fold": fold, "dataset_json": dataset},
            "trainer_name": trainer,
            "inference_allowed_mirroring_axes": mirror_axes,
            "current_epoch": 1,
        }, folder / f"fold_{fold}" / "checkpoint_final.pth")
    written_plans = to_old_plans_format(plans, configuration) if old_format else plans
    (folder / "plans.json").write_text(json.dumps(written_plans, indent=1))
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=1))
    return folder
