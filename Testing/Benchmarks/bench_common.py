"""What several benchmarks share: the CPU flags they report, timing, process-tree RSS, the random 297 folder.

Benchmarks run as scripts from this folder, so they import this module by its plain name.
"""
from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Tuple

WORK = Path(__file__).resolve().parent / "work"
# make_random_model.py writes it; speed and memory depend only on the architecture.
RANDOM_297 = (WORK / "totalseg_weights" / "Dataset297_TotalSegmentator_total_3mm_1559subj"
              / "nnUNetTrainer_4000epochs_NoMirroring__nnUNetPlans__3d_fullres")


def cpu_flags() -> str:
    """The instruction-set flags that decide our CPU paths (AVX2, AVX-512, bf16 units)."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return platform.processor() or "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)


def median_time(fn: Callable[[], Any], repeats: int) -> Tuple[float, Any]:
    """(median seconds of ``repeats`` calls after one warm-up, the last call's result); the warm-up lets
    oneDNN pick its kernels."""
    fn()
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def tree_rss(proc) -> int:
    """Summed RSS in bytes of a psutil process and all its children (0 once it is gone)."""
    import psutil

    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total
