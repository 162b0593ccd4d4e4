"""Checks and advice about the run options, shared by the widget and the console API."""
from __future__ import annotations

from typing import Iterable, List, Optional, Sequence

from .errors import InputError

DEVICES = ("auto", "cuda", "cpu")
QUALITIES = ("normal", "fast", "fastest")
# Above this many voxels a CPU run at 1.5 mm takes many minutes (five models, fine grid).
SLOW_CPU_VOXELS = 256 * 256 * 128


def check_options(quality: str, device: str, subset: Optional[Sequence[str]],
                  known_structures: Iterable[str]) -> Optional[List[str]]:
    if quality not in QUALITIES:
        raise InputError(f"Unknown quality '{quality}'; choose one of {', '.join(QUALITIES)}.")
    if device not in DEVICES and not device.startswith("cuda:"):
        raise InputError(f"Unknown device '{device}'; choose auto, cuda or cpu.")
    if subset is None:
        return None
    subset = list(dict.fromkeys(subset))
    if not subset:
        raise InputError("The structure subset is empty; tick at least one structure or select all.")
    known = set(known_structures)
    if known:
        unknown = [n for n in subset if n not in known]
        if unknown:
            raise InputError(f"Unknown structure name(s) for this model: {', '.join(unknown[:10])}.")
    return subset


def cpu_warning(device: str, quality: str, voxels: int, cuda_available: Optional[bool]) -> str:
    """A sentence for the GUI when the chosen settings will make a slow CPU run, else ''."""
    on_cpu = device == "cpu" or (device == "auto" and cuda_available is False)
    if device.startswith("cuda") and cuda_available is False:
        return "No CUDA GPU is available: the run will fail. Choose Auto or CPU."
    if on_cpu and quality == "normal" and voxels > SLOW_CPU_VOXELS:
        return ("Full resolution (normal) on the CPU will take many minutes for this volume; "
                "'fast' (3 mm) is about ten times quicker.")
    return ""
