"""bf16 autocast with the full-resolution layers kept in fp32 (``--speed fast`` on CPUs with bf16 units).

Why not plain bf16: on the bundled model it moved 17 of 33 structures below Dice 0.99 against fp32
on a full-size CT (Testing/Benchmarks/bench_fp32_layers.py), mostly from rounding the CT itself to 8 mantissa bits in the first convolution and
the class scores in the last; with these layers in fp32 every structure stayed at >= 0.99
(Testing/Benchmarks/RESULTS.md, "bf16 with fp32 at full resolution").
"""
from __future__ import annotations

import torch

_MARK = "_medsegai_fp32_under_autocast"


def keep_full_resolution_in_fp32(network: torch.nn.Module) -> None:
    """Make the network's full-resolution layers run in fp32 inside a bf16 autocast region.

    The modules' own ``forward`` is replaced on the instance rather than wrapped in a new module, so the
    state dict keeps nnU-Net's key paths. Outside autocast the replacement changes nothing, so a kept
    network can serve exact-mode runs too. Networks without ``full_resolution_modules`` stay as they are.
    """
    modules = getattr(network, "full_resolution_modules", None)
    keep_in_fp32(modules() if modules is not None else [])


def keep_in_fp32(modules) -> None:
    """Run these modules in fp32 inside an autocast region (idempotent; see above).

    A 1x1x1 convolution (the segmentation head) runs there as one matrix product per tile: oneDNN's
    convolution writes a blocked output and then reorders it, twice the memory of the class scores
    (+1.5 GB for a 118-class 297 tile) and twice the time of the product. Exact mode never takes this
    path (no autocast), because the product rounds differently from the convolution TotalSegmentator runs.
    """
    for module in modules:
        if getattr(module, _MARK, False):
            continue
        inner = module.forward

        if _is_pointwise(module):
            def forward(x, _inner=inner, _conv=module):
                if not _autocast_on(x.device.type):
                    return _inner(x)
                with torch.autocast(x.device.type, enabled=False):
                    return _pointwise_product(_conv, x.float())
        else:
            def forward(x, *args, _inner=inner, **kwargs):
                with torch.autocast(x.device.type, enabled=False):
                    return _inner(x.float(), *args, **kwargs)

        module.forward = forward
        setattr(module, _MARK, True)


def _is_pointwise(m: torch.nn.Module) -> bool:
    return (isinstance(m, torch.nn.Conv3d) and m.kernel_size == (1, 1, 1) and m.stride == (1, 1, 1)
            and m.padding == (0, 0, 0) and m.dilation == (1, 1, 1) and m.groups == 1)


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # PyTorch < 2.4 has no device argument
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def _pointwise_product(conv: torch.nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    n, c = x.shape[:2]
    weight = conv.weight.float().reshape(conv.out_channels, c)
    out = torch.empty((n, conv.out_channels, *x.shape[2:]), dtype=torch.float32, device=x.device)
    for i in range(n):
        flat = x[i].reshape(c, -1)
        if conv.bias is None:
            torch.mm(weight, flat, out=out[i].view(conv.out_channels, -1))
        else:
            torch.addmm(conv.bias.float()[:, None], weight, flat, out=out[i].view(conv.out_channels, -1))
    return out
