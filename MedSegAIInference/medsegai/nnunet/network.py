"""nnU-Net's PlainConvUNet, built from the plans, with the exact module tree of
``dynamic-network-architectures`` 0.4.4 so its checkpoints load with ``strict=True``.

Why not depend on that package: on PyPI it requires timm, which requires torchvision, whose
PyPI build does not import beside the CPU torch (and inside Slicer it would drag a second
torch in). Its U-Net is small; ``Testing/Python/test_network_equivalence.py`` proves that our module
gives the same state-dict keys and bit-identical outputs as the original.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from ..errors import InvalidModelError
from .plans import NetworkSpec


class ConvDropoutNormReLU(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: List[int], stride: List[int], spec: NetworkSpec):
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride, padding=[(k - 1) // 2 for k in kernel], bias=spec.conv_bias)
        ops: List[nn.Module] = [self.conv]
        if spec.dropout_p > 0:
            self.dropout = nn.Dropout3d(p=spec.dropout_p)
            ops.append(self.dropout)
        self.norm = _make_norm(spec, c_out)
        ops.append(self.norm)
        self.nonlin = nn.LeakyReLU(**({"negative_slope": 1e-2, "inplace": True} | dict(spec.nonlin_kwargs)))
        ops.append(self.nonlin)
        # The same modules again under "all_modules.N": the checkpoints hold both key paths.
        self.all_modules = nn.Sequential(*ops)

    def forward(self, x):
        return self.all_modules(x)


class StackedConvBlocks(nn.Module):
    def __init__(self, n: int, c_in: int, c_out: int, kernel: List[int], stride: List[int], spec: NetworkSpec):
        super().__init__()
        blocks = [ConvDropoutNormReLU(c_in, c_out, kernel, stride, spec)]
        blocks += [ConvDropoutNormReLU(c_out, c_out, kernel, [1, 1, 1], spec) for _ in range(n - 1)]
        self.convs = nn.Sequential(*blocks)

    def forward(self, x):
        return self.convs(x)


class PlainConvEncoder(nn.Module):
    def __init__(self, in_channels: int, spec: NetworkSpec):
        super().__init__()
        stages = []
        c_in = in_channels
        for s in range(spec.n_stages):
            stages.append(nn.Sequential(StackedConvBlocks(
                spec.n_conv_per_stage[s], c_in, spec.features_per_stage[s], spec.kernel_sizes[s], spec.strides[s], spec)))
            c_in = spec.features_per_stage[s]
        self.stages = nn.Sequential(*stages)

    def forward(self, x) -> List[torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class UNetDecoder(nn.Module):
    def __init__(self, encoder: PlainConvEncoder, num_classes: int, spec: NetworkSpec, deep_supervision: bool = False):
        super().__init__()
        self.encoder = encoder  # registered as in the original, hence the "decoder.encoder.*" keys
        self.deep_supervision = deep_supervision
        feats = spec.features_per_stage
        stages, transpconvs, seg_layers = [], [], []
        for s in range(1, spec.n_stages):
            below, skip = feats[-s], feats[-(s + 1)]
            stride = spec.strides[-s]
            transpconvs.append(nn.ConvTranspose3d(below, skip, stride, stride, bias=spec.conv_bias))
            stages.append(StackedConvBlocks(
                spec.n_conv_per_stage_decoder[s - 1], 2 * skip, skip, spec.kernel_sizes[-(s + 1)], [1, 1, 1], spec))
            seg_layers.append(nn.Conv3d(skip, num_classes, 1, 1, 0, bias=True))
        self.stages = nn.ModuleList(stages)
        self.transpconvs = nn.ModuleList(transpconvs)
        self.seg_layers = nn.ModuleList(seg_layers)

    def forward(self, skips: List[torch.Tensor]):
        x = skips[-1]
        outputs = []
        for s in range(len(self.stages)):
            x = self.transpconvs[s](x)
            x = torch.cat((x, skips[-(s + 2)]), 1)
            x = self.stages[s](x)
            if self.deep_supervision:
                outputs.append(self.seg_layers[s](x))
        if not self.deep_supervision:
            # Inference needs only the full-resolution head.
            return self.seg_layers[-1](x)
        return outputs[::-1]


class PlainConvUNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, spec: NetworkSpec, deep_supervision: bool = False):
        super().__init__()
        self.encoder = PlainConvEncoder(in_channels, spec)
        self.decoder = UNetDecoder(self.encoder, num_classes, spec, deep_supervision)

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def set_deep_supervision(self, enabled: bool) -> None:
        self.decoder.deep_supervision = enabled


def _make_norm(spec: NetworkSpec, channels: int) -> nn.Module:
    kwargs = dict(spec.norm_kwargs)
    if spec.norm == "InstanceNorm3d":
        return nn.InstanceNorm3d(channels, **kwargs)
    if spec.norm == "BatchNorm3d":
        return nn.BatchNorm3d(channels, **kwargs)
    raise InvalidModelError(f"Normalisation layer '{spec.norm}' is not supported.")


def build_network(spec: NetworkSpec, in_channels: int, num_classes: int, deep_supervision: bool = False,
                  dropout_p: Optional[float] = None) -> nn.Module:
    """Build the network the plans describe. ``dropout_p`` overrides the plans (for MC dropout models)."""
    if dropout_p is not None:
        from dataclasses import replace

        spec = replace(spec, dropout_p=float(dropout_p))
    if spec.class_name != "PlainConvUNet":
        raise InvalidModelError(
            f"Network class '{spec.class_name}' is not supported yet (only PlainConvUNet, which all "
            "TotalSegmentator models and nnU-Net's default plans use)."
        )
    return PlainConvUNet(in_channels, num_classes, spec, deep_supervision)
