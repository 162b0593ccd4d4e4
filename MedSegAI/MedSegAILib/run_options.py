"""Checks and advice about the run options beyond RunRequest.validate(), shared by the widget and the
console API: structure names against the chosen model, and the slow-CPU warning."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from .errors import InputError

# Above this many voxels a CPU run at 1.5 mm takes many minutes (five models, fine grid).
SLOW_CPU_VOXELS = 256 * 256 * 128


def check_subset(subset: Optional[Sequence[str]], known_structures: Iterable[str]) -> None:
    """The run request checks the subset's form; this checks its names against the chosen model's."""
    known = set(known_structures)
    if subset is None or not known:
        return
    unknown = [n for n in subset if n not in known]
    if unknown:
        raise InputError(f"Unknown structure name(s) for this model: {', '.join(unknown[:10])}.")


def cpu_warning(device: str, quality: str, voxels: int, cuda_available: Optional[bool]) -> str:
    """A sentence for the GUI when the chosen settings will make a slow CPU run, else ''."""
    on_cpu = device == "cpu" or (device == "auto" and cuda_available is False)
    if device.startswith("cuda") and cuda_available is False:
        return "No CUDA GPU is available: the run will fail. Choose Auto or CPU."
    if on_cpu and quality == "normal" and voxels > SLOW_CPU_VOXELS:
        return ("Full resolution (normal) on the CPU will take many minutes for this volume; "
                "'fast' (3 mm) is about ten times quicker.")
    return ""
