"""nnU-Net's PlainConvUNet and ResidualEncoderUNet (ResEnc presets, nnInteractive), built from the
plans, with the exact module tree of ``dynamic-network-architectures`` 0.4.4 so its checkpoints
load with ``strict=True``.

Why not depend on that package: on PyPI it requires timm, which requires torchvision, whose
PyPI build does not import beside the CPU torch (and inside Slicer it would drag a second
torch in). Its U-Net is small; ``Testing/Python/test_network_equivalence.py`` proves that our module
gives the same state-dict keys and bit-identical outputs as the original (``test_network_resenc.py``
for the residual encoder).
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from ..errors import InvalidModelError
from .plans import NetworkSpec


class ConvDropoutNormReLU(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: List[int], stride: List[int], spec: NetworkSpec,
                 nonlin: bool = True, dropout: bool = True, bias: Optional[bool] = None):
        super().__init__()
        bias = spec.conv_bias if bias is None else bias
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride, padding=[(k - 1) // 2 for k in kernel], bias=bias)
        ops: List[nn.Module] = [self.conv]
        if dropout and spec.dropout_p > 0:
            self.dropout = nn.Dropout3d(p=spec.dropout_p)
            ops.append(self.dropout)
        self.norm = _make_norm(spec, c_out)
        ops.append(self.norm)
        if nonlin:
            self.nonlin = _make_nonlin(spec)
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


class BasicBlockD(nn.Module):
    """Two convolutions plus a skip (average pooling for a stride, 1x1 conv for a width change: ResNet-D)."""

    def __init__(self, c_in: int, c_out: int, kernel: List[int], stride: List[int], spec: NetworkSpec):
        super().__init__()
        self.conv1 = ConvDropoutNormReLU(c_in, c_out, kernel, stride, spec)
        self.conv2 = ConvDropoutNormReLU(c_out, c_out, kernel, [1, 1, 1], spec, nonlin=False, dropout=False)
        self.nonlin2 = _make_nonlin(spec)
        ops: List[nn.Module] = []
        if any(s != 1 for s in stride):
            ops.append(nn.AvgPool3d(stride, stride))
        if c_in != c_out:
            # The original hard-codes bias=False here, whatever the plans say.
            ops.append(ConvDropoutNormReLU(c_in, c_out, [1, 1, 1], [1, 1, 1], spec, nonlin=False, dropout=False,
                                           bias=False))
        self.skip = nn.Sequential(*ops) if ops else None

    def forward(self, x):
        residual = x if self.skip is None else self.skip(x)
        out = self.conv2(self.conv1(x))
        out += residual
        return self.nonlin2(out)


class StackedResidualBlocks(nn.Module):
    def __init__(self, n: int, c_in: int, c_out: int, kernel: List[int], stride: List[int], spec: NetworkSpec):
        super().__init__()
        blocks = [BasicBlockD(c_in, c_out, kernel, stride, spec)]
        blocks += [BasicBlockD(c_out, c_out, kernel, [1, 1, 1], spec) for _ in range(n - 1)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


class ResidualEncoder(nn.Module):
    def __init__(self, in_channels: int, spec: NetworkSpec):
        super().__init__()
        feats = spec.features_per_stage
        self.stem = StackedConvBlocks(1, in_channels, feats[0], spec.kernel_sizes[0], [1, 1, 1], spec)
        stages = []
        c_in = feats[0]
        for s in range(spec.n_stages):
            stages.append(StackedResidualBlocks(spec.n_conv_per_stage[s], c_in, feats[s], spec.kernel_sizes[s],
                                                spec.strides[s], spec))
            c_in = feats[s]
        self.stages = nn.Sequential(*stages)

    def forward(self, x) -> List[torch.Tensor]:
        x = self.stem(x)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class UNetDecoder(nn.Module):
    def __init__(self, encoder: nn.Module, num_classes: int, spec: NetworkSpec, deep_supervision: bool = False):
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
        # Pops the skips as they are used, so the encoder's full-resolution output is freed before the
        # head runs, where a tile's memory peaks (same arithmetic; RESULTS.md, "Peak memory of a tile").
        x = skips.pop()
        outputs = []
        for s in range(len(self.stages)):
            x = self.transpconvs[s](x)
            x = torch.cat((x, skips.pop()), 1)
            x = self.stages[s](x)
            if self.deep_supervision:
                outputs.append(self.seg_layers[s](x))
        if not self.deep_supervision:
            # Inference needs only the full-resolution head.
            return self.seg_layers[-1](x)
        return outputs[::-1]


class PlainConvUNet(nn.Module):
    encoder_class = PlainConvEncoder

    def __init__(self, in_channels: int, num_classes: int, spec: NetworkSpec, deep_supervision: bool = False):
        super().__init__()
        self.encoder = self.encoder_class(in_channels, spec)
        self.decoder = UNetDecoder(self.encoder, num_classes, spec, deep_supervision)

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def set_deep_supervision(self, enabled: bool) -> None:
        self.decoder.deep_supervision = enabled

    def full_resolution_modules(self) -> List[nn.Module]:
        """The layers that run on the tile's full grid: the first encoder stage (and stem), the last
        decoder stage and its segmentation head. Rounding there moves labels most (speed fast keeps
        them in fp32; Testing/Benchmarks/RESULTS.md, "bf16 with fp32 at full resolution")."""
        first = [self.encoder.stem] if hasattr(self.encoder, "stem") else []
        return first + [self.encoder.stages[0], self.decoder.stages[-1], self.decoder.seg_layers[-1]]


class ResidualEncoderUNet(PlainConvUNet):
    encoder_class = ResidualEncoder


def _make_norm(spec: NetworkSpec, channels: int) -> nn.Module:
    kwargs = dict(spec.norm_kwargs)
    if spec.norm == "InstanceNorm3d":
        return nn.InstanceNorm3d(channels, **kwargs)
    if spec.norm == "BatchNorm3d":
        return nn.BatchNorm3d(channels, **kwargs)
    raise InvalidModelError(f"Normalisation layer '{spec.norm}' is not supported.")


def _make_nonlin(spec: NetworkSpec) -> nn.Module:
    if spec.nonlin == "LeakyReLU":
        return nn.LeakyReLU(**({"negative_slope": 1e-2, "inplace": True} | dict(spec.nonlin_kwargs)))
    if spec.nonlin == "ReLU":
        return nn.ReLU(**({"inplace": True} | dict(spec.nonlin_kwargs)))
    raise InvalidModelError(f"Non-linearity '{spec.nonlin}' is not supported.")


def build_network(spec: NetworkSpec, in_channels: int, num_classes: int, deep_supervision: bool = False,
                  dropout_p: Optional[float] = None) -> nn.Module:
    """Build the network the plans describe. ``dropout_p`` overrides the plans (for MC dropout models)."""
    if dropout_p is not None:
        from dataclasses import replace

        spec = replace(spec, dropout_p=float(dropout_p))
    classes = {"PlainConvUNet": PlainConvUNet, "ResidualEncoderUNet": ResidualEncoderUNet}
    if spec.class_name not in classes:
        raise InvalidModelError(
            f"Network class '{spec.class_name}' is not supported (supported: {', '.join(classes)})."
        )
    return classes[spec.class_name](in_channels, num_classes, spec, deep_supervision)
