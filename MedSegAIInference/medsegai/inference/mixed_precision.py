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
    """Run these modules in fp32 inside an autocast region (idempotent; see above)."""
    for module in modules:
        if getattr(module, _MARK, False):
            continue
        inner = module.forward

        def forward(x, *args, _inner=inner, **kwargs):
            with torch.autocast(x.device.type, enabled=False):
                return _inner(x.float(), *args, **kwargs)

        module.forward = forward
        setattr(module, _MARK, True)
