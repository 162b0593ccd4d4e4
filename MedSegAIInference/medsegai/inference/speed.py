"""``--speed fast``: the fastest path this machine has that keeps the labels of exact mode.

What was measured (Testing/Benchmarks/RESULTS.md, "Fast-path candidates"): bf16 autocast on CPUs
with bf16 units gives 2.1-2.6x with Dice 0.999-1.000 against fp32 on the shipped models; a coarser
tile step and skipping tiles outside the body did not keep Dice >= 0.99 or saved nothing, so they
are not chosen. Where no faster path keeps the labels, fast is exact, and the note says so.
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


def choose_speed(speed: str, device: torch.device, precision: str = "auto") -> SpeedChoice:
    if speed == "exact":
        return SpeedChoice(precision, None)
    if device.type == "cuda":
        return SpeedChoice("fp16", "speed fast: fp16 autocast on the GPU (what exact mode's auto also uses there).")
    if cpu_has_bf16_units():
        return SpeedChoice("bf16", "speed fast: bf16 autocast, as this CPU has bf16 units (AVX-512 BF16 or AMX).")
    return SpeedChoice("fp32", f"speed fast: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no bf16 units "
                               "and no other faster path keeps the labels, so the run is exact mode (fp32).")


__all__ = ["SPEEDS", "SpeedChoice", "choose_speed"]
