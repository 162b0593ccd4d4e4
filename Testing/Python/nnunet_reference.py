"""nnU-Net v2's own predictor, run in-process on a model folder: the reference for parity tests."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np


def nnunet_predict(folder: Path, array_kji: np.ndarray, spacing_kji: Sequence[float], folds=(0,),
                   tile_step: float = 0.5, use_mirroring: bool = True, return_probabilities: bool = False,
                   threads: int | None = None):
    """Labels (k, j, i) from nnunetv2's predictor for an image array as SimpleITKIO would read it.

    Runs on ``threads`` CPU threads (default: every core, as our runner does): oneDNN's summation
    order depends on the thread count, so with random weights a reference run on another count than
    ours can flip near-tie voxels, and a test earlier in the session may have left torch on 1 thread.
    """
    import os

    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads) if threads else max(1, os.cpu_count() or 1))
    try:
        return _predict(torch, Path(folder), array_kji, spacing_kji, folds, tile_step, use_mirroring,
                        return_probabilities)
    finally:
        torch.set_num_threads(before)


def _predict(torch, folder, array_kji, spacing_kji, folds, tile_step, use_mirroring, return_probabilities):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = json.loads((folder / "plans.json").read_text())
    dataset = json.loads((folder / "dataset.json").read_text())
    configuration = folder.name.split("__")[-1]
    pm = PlansManager(plans)
    cm = pm.get_configuration(configuration)
    params, mirror_axes, trainer = [], None, None
    for f in folds:
        ckpt = torch.load(folder / f"fold_{f}" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
        params.append(ckpt["network_weights"])
        mirror_axes = ckpt.get("inference_allowed_mirroring_axes")
        trainer = ckpt["trainer_name"]
    net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                 cm.network_arch_init_kwargs_req_import, len(dataset["channel_names"]),
                                 len(dataset["labels"]), allow_init=False, deep_supervision=False)
    predictor = nnUNetPredictor(tile_step_size=tile_step, use_gaussian=True, use_mirroring=use_mirroring,
                                perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                verbose_preprocessing=False, allow_tqdm=False)
    # manual_initialization: nnU-Net's trainer-class lookup would import torchvision, which the CPU torch lacks.
    predictor.manual_initialization(net, pm, cm, params, dataset, trainer, mirror_axes)
    props = {"spacing": list(spacing_kji)}
    out = predictor.predict_single_npy_array(array_kji[None].astype(np.float32), props, None, None,
                                             return_probabilities)
    return out
