"""Device choice, threads, mixed precision and out-of-memory detection."""
from __future__ import annotations

import contextlib
import os
from typing import Optional

import torch

from ..errors import DeviceError


def select_device(requested: str = "auto") -> torch.device:
    req = (requested or "auto").lower()
    if req == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if req in ("gpu",) or req.startswith("cuda"):
        if not torch.cuda.is_available():
            built = "with" if torch.backends.cuda.is_built() else "without"
            raise DeviceError(
                f"Device '{requested}' was requested but no CUDA GPU is available (this torch {torch.__version__} "
                f"was built {built} CUDA). Use --device cpu or --device auto."
            )
        dev = torch.device("cuda" if req == "gpu" else req)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"GPU {dev.index} does not exist (found {torch.cuda.device_count()} GPU(s)).")
        return dev
    if req == "cpu":
        return torch.device("cpu")
    if req == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError("Device 'mps' was requested but Apple's MPS backend is not available.")
        return torch.device("mps")
    raise DeviceError(f"Unknown device '{requested}' (use auto, cpu, cuda or cuda:N).")


def configure_threads(threads: Optional[int]) -> None:
    if threads is not None:
        if threads < 1:
            raise DeviceError(f"threads must be at least 1 (got {threads}).")
        torch.set_num_threads(int(threads))
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def autocast(device: torch.device, precision: str):
    """fp16 autocast on CUDA (as nnU-Net does); opt-in bf16 autocast on the CPU (AVX-512 BF16 / AMX)."""
    if device.type == "cuda" and precision in ("auto", "fp16"):
        return torch.autocast("cuda", dtype=torch.float16)
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse precisions the hardware cannot run fast, before any work starts."""
    if precision not in ("auto", "fp32", "fp16", "bf16"):
        raise DeviceError(f"Unknown precision '{precision}' (use auto, fp32, fp16 or bf16).")
    if device.type == "cpu" and precision == "fp16":
        raise DeviceError("fp16 is for CUDA; on the CPU use fp32 (default) or bf16.")
    if device.type == "cpu" and precision == "bf16" and not cpu_has_bf16_units():
        # Measured on an AVX2-only CPU: one bf16 3D convolution took over 100x the fp32 time.
        raise DeviceError(
            f"This CPU ({torch.backends.cpu.get_cpu_capability()}) has no bf16 units (AVX-512 BF16 or AMX), "
            "so bf16 would be far slower than fp32; use fp32."
        )


def cpu_has_bf16_units() -> bool:
    """AVX-512 BF16 or AMX. ``get_cpu_capability()`` says "AVX512" for Skylake-X too, which has neither."""
    cpu = getattr(torch, "cpu", None)
    probes = [getattr(cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(p is None for p in probes):  # an older torch: fall back to the capability string
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    return any(bool(p()) for p in probes if p is not None)


def fastest_training_precision(device: torch.device) -> str:
    """bf16 autocast where the hardware has bf16 arithmetic, else fp32 (training's ``--precision auto``)."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16_units() else "fp32"


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    msg = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and ("out of memory" in msg or "can't allocate memory" in msg
                                                             or isinstance(exc, MemoryError))


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def tiles_per_batch(device: torch.device, patch_size, num_classes: int, features: int = 32, limit: int = 8) -> int:
    """How many tiles fit in one forward pass: 1 on the CPU (no gain there), by free memory on CUDA."""
    if device.type != "cuda":
        return 1
    free, _total = torch.cuda.mem_get_info(device)
    voxels = 1
    for p in patch_size:
        voxels *= int(p)
    # Rough activation footprint of a U-Net forward in fp16 at inference: a few full-resolution
    # feature maps of the first stage plus the class scores, with a safety factor of 2.
    per_tile = voxels * (6 * features + 2 * num_classes) * 2 * 2
    return int(max(1, min(limit, (free * 0.6) // max(per_tile, 1))))
