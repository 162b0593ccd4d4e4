"""Refusing a patch size the machine cannot train, before any training starts.

The estimate counts what a training step keeps for the backward pass: every conv block's conv,
dropout and norm outputs, the decoder's concatenations and the class scores, for the whole batch,
in float32, plus gradients of the same size, plus the weights with Adam's two moments.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ..nnunet.plans import NetworkSpec
from .errors import TrainingConfigError


def estimate_training_bytes(spec: NetworkSpec, patch: Sequence[int], batch: int, num_classes: int,
                            num_params: int) -> int:
    per_sample = 0.0
    vox = float(np.prod(patch))
    for s in range(spec.n_stages):
        stride = np.prod([np.prod([st[a] for st in spec.strides[: s + 1]]) for a in range(3)])
        v = vox / stride
        f = spec.features_per_stage[s]
        tensors_per_conv = 3 if spec.dropout_p > 0 else 2
        per_sample += spec.n_conv_per_stage[s] * tensors_per_conv * f * v
        if s < spec.n_stages - 1:
            dec_convs = spec.n_conv_per_stage_decoder[-(s + 1)]
            per_sample += (3 * f + dec_convs * tensors_per_conv * f + num_classes) * v
    activations = per_sample * batch * 4 * 2  # values + their gradients
    return int(activations + num_params * 4 * 4)


from ..system_memory import available_ram_bytes  # noqa: E402


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    ram = available_ram_bytes()
    return ram if ram is not None else 1 << 62  # unknown: do not refuse


def check_memory(spec: NetworkSpec, patch: Sequence[int], batch: int, num_classes: int, num_params: int,
                 device: torch.device, limit_bytes: Optional[int] = None) -> int:
    need = estimate_training_bytes(spec, patch, batch, num_classes, num_params)
    have = int(limit_bytes) if limit_bytes is not None else int(available_bytes(device) * 0.8)
    if need > have:
        where = "GPU memory" if device.type == "cuda" else "RAM"
        raise TrainingConfigError(
            f"A training step with patch {tuple(int(p) for p in patch)} and batch {batch} needs about "
            f"{need / 2**30:.1f} GiB of {where}, but only {have / 2**30:.1f} GiB can be used. Use a smaller "
            f"--patch, --batch-size or fewer --features.")
    return need
