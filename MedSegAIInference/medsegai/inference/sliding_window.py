"""Sliding-window prediction with Gaussian importance weighting, as nnU-Net v2 does it.

Why not MONAI's ``sliding_window_inference``: its tile positions (scan intervals) and its
Gaussian differ from nnU-Net's, which changes labels near tile borders. Exact agreement with
nnU-Net needs nnU-Net's step rule, its Gaussian (sigma = patch/8, fp16, zeros replaced by the
minimum), centred zero padding and fp16 accumulation of the weighted scores.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from ..errors import DeviceError
from ..progress import Reporter
from .device import autocast, empty_cache, is_out_of_memory
from .mixed_precision import keep_full_resolution_in_fp32


@dataclass
class WindowSettings:
    patch_size: Tuple[int, int, int]
    tile_step: float = 0.5
    mirror_axes: Optional[Tuple[int, ...]] = None  # spatial axes to average flips over (TTA)
    batch_tiles: int = 1
    precision: str = "auto"  # auto | fp32 | fp16 | bf16
    fp32_full_resolution: bool = False  # with bf16: the full-resolution layers stay fp32 (speed fast)


def compute_steps(image_size: Sequence[int], tile_size: Sequence[int], tile_step: float) -> List[List[int]]:
    """nnU-Net's tile start positions: evenly spread, first at 0 and last flush with the end."""
    if not 0 < tile_step <= 1:
        raise ValueError(f"tile step must be in (0, 1], got {tile_step}")
    steps = []
    for size, tile in zip(image_size, tile_size):
        n = int(np.ceil((size - tile) / (tile * tile_step))) + 1
        if n > 1:
            actual = (size - tile) / (n - 1)
            steps.append([int(np.round(actual * i)) for i in range(n)])
        else:
            steps.append([0])
    return steps


@lru_cache(maxsize=4)
def _gaussian_np(patch: Tuple[int, ...]) -> np.ndarray:
    tmp = np.zeros(patch)
    tmp[tuple(p // 2 for p in patch)] = 1
    g = gaussian_filter(tmp, [p / 8 for p in patch], 0, mode="constant", cval=0)
    return g / (g.max() / 10)


def gaussian_weights(patch: Tuple[int, ...], device: torch.device) -> torch.Tensor:
    g = torch.from_numpy(_gaussian_np(tuple(patch))).to(device=device, dtype=torch.float16)
    zero = g == 0
    if zero.any():
        g[zero] = torch.min(g[~zero])
    return g


def pad_to_patch(data: torch.Tensor, patch: Sequence[int]) -> Tuple[torch.Tensor, Tuple[slice, ...]]:
    """Zero-pad (C, X, Y, Z) to at least the patch size, content centred (odd extra voxel after)."""
    pads, slicer = [], [slice(None)]
    for size, p in zip(data.shape[1:], patch):
        diff = max(0, int(p) - size)
        lo, hi = diff // 2, diff // 2 + diff % 2
        pads.append((lo, hi))
        slicer.append(slice(lo, lo + size))
    if any(lo or hi for lo, hi in pads):
        flat = [v for lo_hi in reversed(pads) for v in lo_hi]
        data = torch.nn.functional.pad(data, flat, mode="constant", value=0)
    return data, tuple(slicer)


def tile_slicers(shape: Sequence[int], patch: Sequence[int], tile_step: float) -> List[Tuple[slice, ...]]:
    steps = compute_steps(shape, patch, tile_step)
    return [tuple(slice(s, s + p) for s, p in zip(start, patch)) for start in itertools.product(*steps)]


class _Predictor:
    def __init__(self, network: torch.nn.Module, settings: WindowSettings, device: torch.device):
        self.network = network
        self.settings = settings
        self.device = device
        if settings.fp32_full_resolution:
            keep_full_resolution_in_fp32(network)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.settings.precision):
            pred = self.network(x)
            axes = self.settings.mirror_axes
            if axes:
                combos = [c for i in range(len(axes)) for c in itertools.combinations([a + 2 for a in axes], i + 1)]
                for flip in combos:
                    pred += torch.flip(self.network(torch.flip(x, flip)), flip)
                pred /= len(combos) + 1
        return pred


@torch.inference_mode()
def predict_logits(
    networks: Sequence[torch.nn.Module],
    data: np.ndarray,
    num_classes: int,
    settings: WindowSettings,
    device: torch.device,
    reporter: Optional[Reporter] = None,
    stage: str = "predict",
) -> torch.Tensor:
    """Averaged class scores (K, X, Y, Z) in fp16 on the CPU for a preprocessed (C, X, Y, Z) array."""
    reporter = reporter or Reporter()
    x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    x, unpad = pad_to_patch(x, settings.patch_size)
    slicers = tile_slicers(x.shape[1:], settings.patch_size, settings.tile_step)
    total_tiles = len(slicers) * len(networks)
    summed: Optional[torch.Tensor] = None
    done = 0
    for net in networks:
        logits = _run_tiles(net, x, slicers, num_classes, settings, device, reporter, stage, done, total_tiles)
        done += len(slicers)
        # nnU-Net adds fold predictions in fp16 and divides at the end.
        summed = logits if summed is None else summed.add_(logits)
    if len(networks) > 1:
        summed /= len(networks)
    return summed[(slice(None), *unpad[1:])]


def _run_tiles(net, x, slicers, num_classes, settings, device, reporter, stage, done, total) -> torch.Tensor:
    batch = max(1, int(settings.batch_tiles))
    acc_device = device
    while True:
        try:
            return _accumulate(net, x, slicers, num_classes, settings, device, acc_device, batch, reporter, stage,
                               done, total)
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc) or device.type == "cpu":
                if is_out_of_memory(exc):
                    raise DeviceError(
                        "Out of memory on the CPU while predicting. Close other programs, use a coarser quality "
                        "(fast/fastest) or a structure subset."
                    ) from None
                raise
            empty_cache(device)
            if batch > 1:
                batch //= 2
                reporter("note", 0.0, f"CUDA out of memory: retrying with {batch} tile(s) per batch")
            elif acc_device.type == "cuda":
                acc_device = torch.device("cpu")
                reporter("note", 0.0, "CUDA out of memory: keeping the score accumulators in CPU memory")
            else:
                raise DeviceError("CUDA out of memory even with one tile per batch.") from None


def _add_class_by_class(logits: torch.Tensor, sl: Tuple[slice, ...], p: torch.Tensor) -> None:
    """``logits[:, sl] += p`` one class at a time. Adding fp32 into an fp16 view at once makes PyTorch
    build fp32 temporaries of the whole view (1.5 GB for a 118-class 297 tile); class by class it needs
    none and is no slower (0.1-0.5 s per tile against 0.5-0.6 s, Testing/Benchmarks/bench_accumulation.py),
    with the same sum and rounding per element, so labels cannot change."""
    for c in range(p.shape[0]):
        logits[(c, *sl)] += p[c]


def _accumulate(net, x, slicers, num_classes, settings, device, acc_device, batch, reporter, stage, done, total):
    predictor = _Predictor(net, settings, device)
    shape = x.shape[1:]
    logits = torch.zeros((num_classes, *shape), dtype=torch.float16, device=acc_device)
    weights_sum = torch.zeros(shape, dtype=torch.float16, device=acc_device)
    gauss = gaussian_weights(tuple(settings.patch_size), acc_device)
    x_dev = x.to(device) if device.type == "cuda" and acc_device.type == "cuda" else x
    try:
        for b0 in range(0, len(slicers), batch):
            reporter.check()
            group = slicers[b0:b0 + batch]
            tiles = torch.stack([x_dev[(slice(None), *sl)] for sl in group]).to(device, non_blocking=True)
            pred = predictor.forward(tiles).to(acc_device)
            del tiles
            for i, sl in enumerate(group):
                p = pred[i].float() if pred.dtype != torch.float32 else pred[i]
                p *= gauss  # fp32 * fp16 -> fp32, then added into the fp16 sums (nnU-Net's arithmetic)
                _add_class_by_class(logits, sl, p)
                weights_sum[sl] += gauss
                del p
            # Freed before the next tile's forward pass, which would otherwise run beside this one's scores.
            del pred
            reporter(stage, (done + b0 + len(group)) / total, f"tile {done + b0 + len(group)}/{total}")
        torch.div(logits, weights_sum, out=logits)
    except BaseException:
        del logits, weights_sum
        empty_cache(device)
        raise
    # One class at a time: no 0.5 GB mask and a little faster than one isinf over all scores (0.55 vs
    # 0.75 s, bench_accumulation.py). NaN is caught too: it would win every argmax, labels with exit code
    # 0 from a broken model.
    if not all(bool(torch.isfinite(logits[c]).all()) for c in range(logits.shape[0])):
        raise DeviceError("Class scores overflowed fp16 or are not numbers; the model output is not usable.")
    return logits.cpu()
