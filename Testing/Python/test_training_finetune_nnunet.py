"""Fine-tuning from a model folder written the way TotalSegmentator's are (old plans format)."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk
import torch

from training_support import make_training_folder, tiny_options


def test_finetune_from_old_format_nnunet_folder(nnunet_plans, ts_ref, tmp_path):
    from model_factory import shrink_plans, write_model_folder

    from medsegai.nnunet.model_folder import load_model_folder
    from medsegai.training import train

    plans, dataset = nnunet_plans
    source = write_model_folder(tmp_path / "src", shrink_plans(plans, patch=(32, 64, 64)), dataset,
                                trainer="nnUNetTrainerNoMirroring", old_format=True)
    assert "architecture" not in json.loads((source / "plans.json").read_text())["configurations"]["3d_fullres"]
    names = {"background": 0, "kidney_left": 1, "liver": 2}
    data = make_training_folder(ts_ref, tmp_path / "data", names=names, keep=(3, 5))
    p = data / "labels" / "ct_sm.nii.gz"
    lab = sitk.ReadImage(str(p))
    arr = sitk.GetArrayFromImage(lab)
    new = sitk.GetImageFromArray(np.select([arr == 3, arr == 5], [1, 2], 0).astype(np.uint8))
    new.CopyInformation(lab)
    sitk.WriteImage(new, str(p))
    logs = []
    summary = train(tiny_options(data, tmp_path / "out", iterations=1, finetune=source), log=logs.append)
    # background, kidney_left and liver all exist in the source's 'total'-style labels
    assert any("output heads of 3 structure(s)" in line for line in logs), logs
    tuned = load_model_folder(summary.model_folder)
    src = load_model_folder(source)
    assert tuned.config.spacing == src.config.spacing
    assert tuned.config.patch_size == (32, 64, 64)
    assert tuned.config.intensity_properties[0] == src.config.intensity_properties[0]
    assert tuned.config.network.features_per_stage == src.config.network.features_per_stage
    # The written plans are in the new format with an architecture block (and dropout on request).
    conf = json.loads((summary.model_folder / "plans.json").read_text())["configurations"]["3d_fullres"]
    assert conf["architecture"]["arch_kwargs"]["dropout_op"].endswith("Dropout3d")
    k = "encoder.stages.1.0.convs.0.conv.weight"
    assert torch.allclose(tuned.state_dicts[0][k].float(), src.state_dicts[0][k].float(), atol=0.05)
