"""Will the uncertainty accumulators fit? Checked after preprocessing, before any network pass."""
from __future__ import annotations

from typing import Optional, Sequence

from ..system_memory import available_ram_bytes
from .errors import UncertaintyMemoryError

FINE_CHUNK = 8  # classes resampled to full resolution at a time (as inference/export.py does)


def available_bytes() -> Optional[int]:
    """Free RAM, or None where it cannot be read (no check then)."""
    return available_ram_bytes()


def estimate_bytes(num_classes: int, network_shape: Sequence[int], fine_voxels: int, multi_pass: bool,
                   keep_logit_sum: bool) -> int:
    g = 1
    for s in network_shape:
        g *= int(s)
    k = int(num_classes)
    # one pass's fp16 scores plus the predictor's fp16 accumulators while it runs
    net = 2 * k * g * 2 + g * 2
    if multi_pass:
        net += k * g * 2 + g * 4  # mean probabilities (fp16) and mean squared norm (fp32)
        if keep_logit_sum:
            net += k * g * 2
    # a chunk of classes at full resolution (fp32, plus torch's interpolation temporaries) and fp32 maps
    fine = 2 * min(FINE_CHUNK, k) * fine_voxels * 4 + 3 * fine_voxels * 4
    return int(net + fine)


def check_memory(method: str, needed: int, available: Optional[int] = None, margin: float = 0.9) -> None:
    available = available_bytes() if available is None else available
    if available is None or needed <= margin * available:
        return
    raise UncertaintyMemoryError(
        f"Uncertainty '{method}' needs about {needed / 2**30:.1f} GiB at this resolution but only "
        f"{available / 2**30:.1f} GiB of memory is available. Use a coarser quality (fast/fastest), a structure "
        f"subset, a cropped image, or --uncertainty entropy (no extra network pass).")
