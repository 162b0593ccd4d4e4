"""``--speed fast``: the fastest path this machine has that keeps the labels of exact mode.

What was measured (Testing/Benchmarks/RESULTS.md, "Fast-path candidates" and "bf16 with fp32 at full
resolution"): plain bf16 autocast is 2.1x faster per 297 tile than fp32 on an AVX-512 BF16 CPU but
moved 17 of 33 structures of the bundled model below Dice 0.99 against fp32 on a full-size CT; with
the full-resolution layers kept in fp32 every structure stayed >= 0.99 (1.4x per 297 tile, 1.0-1.6x
per run on the shipped models), so that is what fast runs on such CPUs. A coarser tile step and skipping tiles outside the body did not
keep Dice >= 0.99 or saved nothing, so they are not chosen. Where no faster path keeps the labels,
fast is exact, and the note says so. ``--precision bf16`` stays available as plain bf16.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..run_request import SPEEDS
from .device import cpu_has_bf16_units


@dataclass(frozen=True)
class SpeedChoice:
    precision: str  # what the sliding window runs in
    note: Optional[str]  # what was chosen and why (None for exact mode)
    fp32_full_resolution: bool = False  # with bf16: inference.mixed_precision


def choose_speed(speed: str, device: torch.device, precision: str = "auto") -> SpeedChoice:
    if speed == "exact":
        return SpeedChoice(precision, None)
    if device.type == "cuda":
        return SpeedChoice("fp16", "speed fast: fp16 autocast on the GPU (what exact mode's auto also uses there).")
    if cpu_has_bf16_units():
        return SpeedChoice("bf16", "speed fast: bf16 autocast with the full-resolution layers in fp32, as this CPU "
                                   "has bf16 units (AVX-512 BF16 or AMX).", fp32_full_resolution=True)
    return SpeedChoice("fp32", f"speed fast: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no bf16 units "
                               "and no other faster path keeps the labels, so the run is exact mode (fp32).")


__all__ = ["SPEEDS", "SpeedChoice", "choose_speed"]
