"""Our ResidualEncoderUNet (medsegai.nnunet.network) vs dynamic-network-architectures' own, and
nnU-Net ResEnc model folders through the auto-segmentation runner vs nnU-Net's own predictor.

ResEnc is the architecture of nnU-Net's ResEnc M/L/XL presets and of nnInteractive. Equivalence =
identical state-dict keys in the same order (strict load both ways) and bit-identical eval outputs.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import medsegai
from medsegai import InvalidModelError
from medsegai.io import read_image
from medsegai.nnunet.network import build_network
from medsegai.nnunet.plans import architecture_from_plans, parse_model_config

pytest.importorskip("dynamic_network_architectures")
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans  # noqa: E402

from model_factory import shrink_plans, write_model_folder  # noqa: E402
from nnunet_reference import nnunet_predict  # noqa: E402
from parity_support import assert_parity  # noqa: E402

CONF = "3d_fullres"
RESENC = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"


def to_resenc(plans: dict, blocks=None) -> dict:
    """The plans with nnU-Net's ResEnc planner's architecture (1, 3, 4, 6, 6... blocks, one decoder conv)."""
    plans = json.loads(json.dumps(plans))
    arch = plans["configurations"][CONF]["architecture"]
    arch["network_class_name"] = RESENC
    kw = arch["arch_kwargs"]
    n = kw["n_stages"]
    kw.pop("n_conv_per_stage", None)
    kw["n_blocks_per_stage"] = list(blocks or (1, 3, 4, 6, 6, 6, 6)[:n])
    kw["n_conv_per_stage_decoder"] = [1] * (n - 1)
    return plans


def _reference(plans: dict, in_channels: int, classes: int, seed: int, deep_supervision=False) -> torch.nn.Module:
    arch = plans["configurations"][CONF]["architecture"]
    torch.manual_seed(seed)
    net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                 in_channels, classes, allow_init=True, deep_supervision=deep_supervision)
    with torch.no_grad():
        # nnU-Net's ResEnc init zeroes each block's last norm: without noise a miswired residual
        # branch would not show in the output.
        for name, p in net.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
        for name, b in net.named_buffers():
            if "running_var" in name:
                b.uniform_(0.5, 2.0)
            elif "running_mean" in name:
                b.normal_(0.0, 0.1)
    return net.eval()


def _ours(plans: dict, in_channels: int, classes: int, deep_supervision=False) -> torch.nn.Module:
    spec, _patch = architecture_from_plans(plans, CONF)
    return build_network(spec, in_channels, classes, deep_supervision).eval()


def _assert_equivalent(ref, ours, x):
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(our_sd) == list(ref_sd)  # keys and order: stem, blocks, skips, all_modules.*, decoder.encoder.*
    assert all(our_sd[k].shape == ref_sd[k].shape for k in ref_sd)
    ours.load_state_dict(ref_sd, strict=True)
    ref.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():
        a, b = ref(x), ours(x)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b))
    else:
        assert torch.equal(a, b), f"max abs diff {(a - b).abs().max().item()}"


def test_planned_architecture(nnunet_plans):
    """nnU-Net's planned topology for the real CT (5 stages, 32..320 features) with ResEnc M blocks."""
    plans, dataset = nnunet_plans
    plans = to_resenc(plans)
    ref, ours = _reference(plans, 1, len(dataset["labels"]), 0), _ours(plans, 1, len(dataset["labels"]))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    div = [1, 1, 1]
    for s in plans["configurations"][CONF]["architecture"]["arch_kwargs"]["strides"]:
        div = [d * k for d, k in zip(div, s)]
    torch.manual_seed(1)
    _assert_equivalent(ref, ours, torch.randn(1, 1, *(2 * d for d in div)) * 50)


def _variant(plans: dict, name: str) -> dict:
    plans = to_resenc(shrink_plans(plans, features=(16, 32, 48, 48)), blocks=(1, 2, 2, 3))
    kw = plans["configurations"][CONF]["architecture"]["arch_kwargs"]
    if name == "anisotropic":  # in-plane-only pooling first, a strided first stage, 1 x 3 x 3 kernels
        kw["kernel_sizes"] = [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3]]
        kw["strides"] = [[1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 1, 1]]
    elif name == "dropout":
        kw["dropout_op"] = "torch.nn.modules.dropout.Dropout3d"
        kw["dropout_op_kwargs"] = {"p": 0.2, "inplace": True}
    elif name == "batchnorm_nobias":
        kw["norm_op"] = "torch.nn.modules.batchnorm.BatchNorm3d"
        kw["norm_op_kwargs"] = {"eps": 1e-5, "momentum": 0.1, "affine": True}
        kw["conv_bias"] = False
    elif name == "nninteractive":  # 1 image + 7 prompt channels in, 2 classes out
        kw["features_per_stage"] = [16, 32, 32, 32]
    return plans


@pytest.mark.parametrize("name", ["small", "anisotropic", "dropout", "batchnorm_nobias", "nninteractive"])
def test_variants(nnunet_plans, name):
    plans, dataset = nnunet_plans
    plans = _variant(plans, name)
    c_in, classes = (8, 2) if name == "nninteractive" else (1, len(dataset["labels"]))
    ref, ours = _reference(plans, c_in, classes, 2), _ours(plans, c_in, classes)
    if name == "dropout":
        assert sum(isinstance(m, torch.nn.Dropout3d) for m in ours.modules()) == \
            sum(isinstance(m, torch.nn.Dropout3d) for m in ref.modules()) > 0
    torch.manual_seed(3)
    _assert_equivalent(ref, ours, torch.randn(1, c_in, 16, 32, 24) * 3)


def test_deep_supervision_heads_match(nnunet_plans):
    plans, dataset = nnunet_plans
    plans = _variant(plans, "small")
    ref = _reference(plans, 1, 3, 4, deep_supervision=True)
    ours = _ours(plans, 1, 3, deep_supervision=True)
    torch.manual_seed(5)
    _assert_equivalent(ref, ours, torch.randn(1, 1, 16, 16, 16))


@pytest.mark.parametrize("option, value", [
    ("block", "dynamic_network_architectures.building_blocks.residual.BottleneckD"),
    ("bottleneck_channels", [8, 8, 8, 8]),
    ("stem_channels", 8),
])
def test_options_we_do_not_build_are_refused(nnunet_plans, option, value):
    plans, dataset = nnunet_plans
    plans = _variant(plans, "small")
    plans["configurations"][CONF]["architecture"]["arch_kwargs"][option] = value
    with pytest.raises(InvalidModelError, match=f"ResidualEncoderUNet with {option}"):
        parse_model_config(plans, dataset, CONF)


def test_runner_segments_resenc_model_like_nnunet(nnunet_plans, ts_ref, tmp_path):
    """A ResEnc nnU-Net result folder (random weights, real CT): the same labels as nnU-Net's predictor."""
    plans, dataset = nnunet_plans
    small = to_resenc(shrink_plans(plans, patch=(32, 64, 64), features=(16, 32, 32, 32)), blocks=(1, 2, 2, 2))
    folder = write_model_folder(tmp_path, small, dataset)
    assert json.loads((folder / "plans.json").read_text())["configurations"][CONF]["architecture"][
        "network_class_name"] == RESENC
    ct = read_image(ts_ref / "example_ct_sm.nii.gz")
    ref = nnunet_predict(folder, ct.array, ct.spacing[::-1])
    res = medsegai.segment(ct, model=folder, device="cpu", mode="nnunet")
    assert res.labels.same_grid(ct)
    assert_parity(ref, res.labels.array)
    assert np.array_equal(ref, res.labels.array)
