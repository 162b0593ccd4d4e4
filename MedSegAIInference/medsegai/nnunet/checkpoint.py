"""Loading nnU-Net checkpoints without executing pickled code.

nnU-Net's ``checkpoint_final.pth`` is a pickle; ``torch.load(weights_only=False)`` would run any
code a tampered file carries. We load with ``weights_only=True`` and allow-list only the numpy
types nnU-Net's training logs contain. Anything else is refused with UnsafeCheckpointError.
"""
from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from ..errors import InvalidModelError, UnsafeCheckpointError


def _numpy_allow_list() -> list:
    allowed: list = [np.dtype, np.ndarray]
    try:  # numpy >= 1.25 moved scalar reconstruction to numpy._core
        from numpy._core.multiarray import _reconstruct, scalar  # type: ignore
    except ImportError:  # pragma: no cover - older numpy
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore
    allowed += [scalar, _reconstruct]
    # Checkpoints pickled under numpy 1.x (every TotalSegmentator 2.0 weights file) name these
    # functions by their old module path; numpy 2 only moved them, so allow the old names too.
    allowed += [(scalar, "numpy.core.multiarray.scalar"), (_reconstruct, "numpy.core.multiarray._reconstruct")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def load_checkpoint(path: Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InvalidModelError(f"Checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise InvalidModelError(f"Checkpoint {path} is empty (0 bytes): the download was probably interrupted.")
    try:
        with torch.serialization.safe_globals(_numpy_allow_list()), warnings.catch_warnings():
            # torch warns about pickle protocols of odd files; the error below says what matters.
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        # Only a reference to a Python global (a class or function, e.g. os.system) means the
        # pickle wants to run code; anything else the weights-only unpickler rejects is damage.
        unsafe = next((ln for ln in lines if "global" in ln.lower() and "default value" not in ln), None)
        if unsafe is not None:
            raise UnsafeCheckpointError(
                f"Refusing to load {path}: it contains Python objects outside the weights allow-list "
                f"({unsafe.split('. Please use')[0]}). A checkpoint that needs them could execute code when loaded."
            ) from None
        reason = next((ln for ln in lines if ln.lower().startswith(("unsupported", "weightsunpickler error: unsupported"))),
                      lines[-2] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__))
        raise InvalidModelError(f"Checkpoint {path} is corrupt or not a PyTorch checkpoint ({reason}).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # torch appends a paragraph of advice after the first sentence; keep the reason only.
        first = first.split(". This is an internal")[0].split(" If you are seeing")[0]
        raise InvalidModelError(f"Checkpoint {path} is corrupt or truncated ({first}).") from None
    if isinstance(ckpt, dict) and "network_weights" not in ckpt and "state_dict" not in ckpt:
        if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            ckpt = {"network_weights": ckpt}  # a bare state dict
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("network_weights", ckpt.get("state_dict")), dict):
        raise InvalidModelError(f"Checkpoint {path} holds no network weights ('network_weights').")
    if "network_weights" not in ckpt:
        ckpt["network_weights"] = ckpt.pop("state_dict")
    return ckpt
