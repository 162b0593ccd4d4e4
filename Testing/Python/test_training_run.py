"""A real (tiny) training on real CT: model folder, runner loading, checkpoints, resume, fine-tuning."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training_support import NAMES, make_training_folder, tiny_options


@pytest.fixture(scope="module")
def trained(ts_ref, tmp_path_factory):
    from medsegai.training import train

    data = make_training_folder(ts_ref, tmp_path_factory.mktemp("data"))
    out = tmp_path_factory.mktemp("out")
    logs = []
    summary = train(tiny_options(data, out, val_dir=data), log=logs.append)
    return data, out, summary, logs


def test_model_folder_loads_and_segments_through_the_runner(trained, ts_ref):
    import medsegai
    from medsegai.nnunet.model_folder import load_model_folder

    _data, _out, summary, _logs = trained
    folder = summary.model_folder
    assert folder.name == "MedSegAITrainer__nnUNetPlans__3d_fullres"
    model = load_model_folder(folder)
    plans = json.loads((folder / "plans.json").read_text())
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    assert arch["network_class_name"].endswith("PlainConvUNet")
    assert arch["arch_kwargs"]["dropout_op"].endswith("Dropout3d")
    assert model.dropout_p == pytest.approx(0.1)
    assert model.config.spacing == (6.0, 6.0, 6.0)
    fg = plans["foreground_intensity_properties_per_channel"]["0"]
    assert fg["percentile_00_5"] < fg["mean"] < fg["percentile_99_5"]
    # One output channel per label value 0..5, names from labels.json.
    assert model.config.label_names == {v: n for n, v in NAMES.items()}
    assert model.mirror_axes is None
    res = medsegai.segment(ts_ref / "example_ct_sm.nii.gz", model=folder, device="cpu")
    assert res.labels.shape == (30, 101, 122)
    # Values never seen in training (2, 3, 4) can never be output.
    assert set(np.unique(res.labels.array)) <= {0, 1, 5}
    # Validation ran through the runner and scored the trained structures.
    assert set(summary.validation["ct_sm"]) <= {"spleen", "liver"}
    assert summary.trained_values == [0, 1, 5]


def test_checkpoint_is_weights_only_and_fp16(trained):
    _data, _out, summary, _logs = trained
    ck = torch.load(summary.model_folder / "fold_0" / "checkpoint_final.pth", weights_only=True)
    w = ck["network_weights"]
    head = w["decoder.seg_layers.1.bias"]
    assert head.dtype == torch.float16 and head.shape[0] == 6
    assert float(head[2]) < -100 and float(head[3]) < -100 and float(head[4]) < -100
    assert ck["medsegai"]["trained_label_values"] == [0, 1, 5]
    # Aliased keys (all_modules.*, decoder.encoder.*) still share storage: the file holds each tensor once.
    distinct = {t.untyped_storage().data_ptr() for t in w.values()}
    assert len(distinct) < len(w) / 2
    latest = torch.load(summary.model_folder / "fold_0" / "checkpoint_latest.pth", weights_only=True)
    assert latest["iteration"] == 3 and "optimizer" in latest


def test_progress_output(trained):
    logs = trained[3]
    assert any(line.startswith("iteration 3/3 loss") for line in logs)
    assert any("validation at iteration 3" in line for line in logs)
    assert any("model folder written" in line for line in logs)


def test_resume_continues_from_the_checkpoint(trained, tmp_path):
    import shutil

    from medsegai.training import train

    data, out, summary, _logs = trained
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = torch.load(copy / summary.model_folder.name / "fold_0" / "checkpoint_latest.pth", weights_only=True)
    logs = []
    s2 = train(tiny_options(data, copy, iterations=5, resume=True), log=logs.append)
    assert "resuming at iteration 3" in logs
    iters = [line for line in logs if line.startswith("iteration ")]
    assert iters[0].startswith("iteration 4/5") and iters[-1].startswith("iteration 5/5")
    after = torch.load(s2.model_folder / "fold_0" / "checkpoint_latest.pth", weights_only=True)
    assert after["iteration"] == 5
    assert len(after["history"]) == len(before["history"]) + 2
    assert not torch.equal(after["network_weights"]["decoder.seg_layers.1.weight"],
                           before["network_weights"]["decoder.seg_layers.1.weight"])


def test_resume_without_checkpoint_is_refused(trained, tmp_path):
    from medsegai.training import TrainingConfigError, train

    data = trained[0]
    with pytest.raises(TrainingConfigError, match="Nothing to resume"):
        train(tiny_options(data, tmp_path, resume=True), log=lambda m: None)


def test_finetune_copies_weights_and_heads_by_name(trained, ts_ref, tmp_path):
    from medsegai.nnunet.model_folder import load_model_folder
    from medsegai.training import train

    source = trained[2].model_folder
    # New name map: other values, one structure the source knows (liver), one it does not (kidney_left).
    names = {"background": 0, "liver": 1, "kidney_left": 2}
    seg_values = (5, 3)
    data = make_training_folder(ts_ref, tmp_path / "data", names=names, keep=seg_values)
    # Remap TotalSegmentator values to the new ones in the label file.
    import SimpleITK as sitk

    lab_path = data / "labels" / "ct_sm.nii.gz"
    lab = sitk.ReadImage(str(lab_path))
    arr = sitk.GetArrayFromImage(lab)
    arr = np.select([arr == 5, arr == 3], [1, 2], 0).astype(np.uint8)
    new = sitk.GetImageFromArray(arr)
    new.CopyInformation(lab)
    sitk.WriteImage(new, str(lab_path))
    logs = []
    summary = train(tiny_options(data, tmp_path / "out", iterations=1, finetune=source, spacing=(9.0, 9.0, 9.0)),
                    log=logs.append)
    assert any("fine-tuning from" in line for line in logs)
    assert any("output heads of 2 structure(s)" in line for line in logs)  # background, liver
    tuned = load_model_folder(summary.model_folder)
    # Spacing and normalisation come from the source model, not from the options.
    assert tuned.config.spacing == (6.0, 6.0, 6.0)
    assert tuned.config.label_names == {0: "background", 1: "liver", 2: "kidney_left"}
    src = load_model_folder(source).state_dicts[0]
    dst = tuned.state_dicts[0]
    enc = "encoder.stages.0.0.convs.0.conv.weight"
    # One iteration of AdamW moves weights only a little: the encoder starts from the source.
    assert torch.allclose(src[enc].float(), dst[enc].float(), atol=0.05)
