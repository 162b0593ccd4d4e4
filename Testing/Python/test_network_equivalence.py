"""Our PlainConvUNet (medsegai.nnunet.network) vs dynamic-network-architectures' own, from the same plans.

The reference network comes from nnU-Net's ``get_network_from_plans`` (the class nnU-Net trains and
saves), installed in the test venv only. Equivalence = identical state-dict keys and shapes
(strict load in both directions) and bit-identical eval-mode outputs.
"""
from __future__ import annotations

import json

import pytest
import torch

from medsegai.nnunet.network import build_network
from medsegai.nnunet.plans import parse_model_config

pytest.importorskip("dynamic_network_architectures")
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans  # noqa: E402

from model_factory import shrink_plans, to_old_plans_format  # noqa: E402

CONF = "3d_fullres"


def _reference(plans: dict, dataset: dict, seed: int) -> torch.nn.Module:
    arch = plans["configurations"][CONF]["architecture"]
    torch.manual_seed(seed)
    net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                 len(dataset["channel_names"]), len(dataset["labels"]), allow_init=True,
                                 deep_supervision=False)
    # Non-trivial norm parameters, so that a swapped or missing affine would change the output.
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return net.eval()


def _ours(plans: dict, dataset: dict) -> torch.nn.Module:
    cfg = parse_model_config(plans, dataset, CONF)
    return build_network(cfg.network, cfg.num_input_channels, cfg.num_classes).eval()


def _with_dropout(plans: dict, p: float = 0.2) -> dict:
    plans = json.loads(json.dumps(plans))
    kw = plans["configurations"][CONF]["architecture"]["arch_kwargs"]
    kw["dropout_op"] = "torch.nn.modules.dropout.Dropout3d"
    kw["dropout_op_kwargs"] = {"p": p, "inplace": True}
    return plans


def _anisotropic(plans: dict) -> dict:
    """Kernel 1 along z in the first stages and in-plane-only pooling, as planned for thick-slice CT."""
    plans = shrink_plans(plans, features=(8, 16, 24, 32))
    kw = plans["configurations"][CONF]["architecture"]["arch_kwargs"]
    kw["kernel_sizes"] = [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3]]
    kw["strides"] = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
    kw["n_conv_per_stage"] = [1, 2, 3, 2]
    kw["n_conv_per_stage_decoder"] = [1, 2, 1]
    return plans


def _assert_equivalent(ref: torch.nn.Module, ours: torch.nn.Module, shape):
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(our_sd) == list(ref_sd)  # same keys, same order (all_modules.* and decoder.encoder.* too)
    assert all(our_sd[k].shape == ref_sd[k].shape for k in ref_sd)
    ours.load_state_dict(ref_sd, strict=True)
    # and back: a checkpoint written from our module loads into nnU-Net's
    ref.load_state_dict(ours.state_dict(), strict=True)
    torch.manual_seed(123)
    x = torch.randn(1, 1, *shape) * 50
    with torch.no_grad():
        a = ref(x)
        b = ours(x)
    assert a.shape == b.shape == (1, len_classes(ref), *shape)
    assert torch.equal(a, b), f"max abs diff {(a - b).abs().max().item()}"


def len_classes(net: torch.nn.Module) -> int:
    return net.decoder.seg_layers[-1].out_channels


def test_planned_architecture(nnunet_plans):
    """The full architecture nnU-Net's planner chose for the real CT (5 stages, 32..320 features)."""
    plans, dataset = nnunet_plans
    ref, ours = _reference(plans, dataset, 0), _ours(plans, dataset)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    strides = plans["configurations"][CONF]["architecture"]["arch_kwargs"]["strides"]
    div = [1, 1, 1]
    for s in strides:
        div = [d * k for d, k in zip(div, s)]
    # twice the smallest input the pooling allows (instance norm needs >1 voxel at the bottom): fast on a CPU
    _assert_equivalent(ref, ours, tuple(2 * d for d in div))


@pytest.mark.parametrize("variant", ["small", "anisotropic", "dropout"])
def test_variants(nnunet_plans, variant):
    plans, dataset = nnunet_plans
    plans = {"small": lambda p: shrink_plans(p), "anisotropic": _anisotropic,
             "dropout": lambda p: _with_dropout(shrink_plans(p))}[variant](plans)
    ref, ours = _reference(plans, dataset, 1), _ours(plans, dataset)
    if variant == "dropout":
        assert any(isinstance(m, torch.nn.Dropout3d) for m in ours.modules())
        assert sum(isinstance(m, torch.nn.Dropout3d) for m in ours.modules()) == sum(
            isinstance(m, torch.nn.Dropout3d) for m in ref.modules())
    _assert_equivalent(ref, ours, (8, 24, 16))


def test_old_plans_format_builds_the_same_network(nnunet_plans):
    """TotalSegmentator's plans (no 'architecture' block) give the network the new format describes."""
    plans, dataset = nnunet_plans
    new = shrink_plans(plans, features=(8, 16, 32, 32))
    old = to_old_plans_format(new)
    assert "architecture" not in old["configurations"][CONF]
    cfg_new = parse_model_config(new, dataset, CONF)
    cfg_old = parse_model_config(old, dataset, CONF)
    assert cfg_old.network == cfg_new.network
    ref = _reference(new, dataset, 2)
    _assert_equivalent(ref, _ours(old, dataset), (16, 16, 16))


def test_old_format_of_the_planned_architecture(nnunet_plans):
    """The feature cap (unet_max_num_features) must reproduce 32, 64, 128, 256, 320."""
    plans, dataset = nnunet_plans
    old = to_old_plans_format(plans)
    cfg = parse_model_config(old, dataset, CONF)
    assert cfg.network.features_per_stage == \
        plans["configurations"][CONF]["architecture"]["arch_kwargs"]["features_per_stage"]


def test_deep_supervision_heads_match(nnunet_plans):
    plans, dataset = nnunet_plans
    plans = shrink_plans(plans)
    arch = plans["configurations"][CONF]["architecture"]
    torch.manual_seed(3)
    ref = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"], 1,
                                 len(dataset["labels"]), deep_supervision=True).eval()
    cfg = parse_model_config(plans, dataset, CONF)
    ours = build_network(cfg.network, 1, cfg.num_classes, deep_supervision=True).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert len(a) == len(b) == 3
    assert all(torch.equal(u, v) for u, v in zip(a, b))
