"""One run's options, declared once: the Python API, the CLI, the worker's job, the Slicer Logic
and the widget all build a :class:`RunRequest` and pass it along; ``validate()`` is the only check.

No torch import here: the Slicer GUI process builds requests before torch is installed. What only
the hardware can tell (is there a GPU, does this CPU have bf16 units) is checked when a
:class:`~medsegai.predictor.Predictor` is built.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Dict, List, Optional, Sequence

from .errors import MedSegAIError

QUALITIES = ("normal", "fast", "fastest")
MODES = ("auto", "nnunet", "totalseg")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
SPEEDS = ("exact", "fast")  # medsegai.inference.speed chooses what fast means on the machine
DEVICES = ("auto", "cpu", "cuda", "gpu", "mps")  # plus cuda:N
UNCERTAINTY_METHODS = ("entropy", "tta", "mcdropout", "ensemble")
DEFAULT_CONFIDENCE_THRESHOLD = 0.8  # Soft Dice Confidence below this flags a segment for review
MAX_UNCERTAINTY_PASSES = 64


class RunRequestError(MedSegAIError):
    """A run option is unknown or out of range."""


@dataclass
class RunRequest:
    # -- what the predictor is built from (fixed for a Predictor's life) --------------------------
    task: Optional[str] = None  # TotalSegmentator task logic ("total", "total_mr")
    model: Optional[str] = None  # model folder, folder of model folders (with task), or catalogue id
    quality: str = "normal"  # normal (1.5 mm) | fast (3 mm) | fastest (6 mm)
    folds: Optional[List[str]] = None  # folds to ensemble (default: all present)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto: fp16 autocast on CUDA, fp32 on the CPU
    speed: str = "exact"  # exact | fast: the fastest path that keeps exact mode's labels (inference.speed)
    threads: Optional[int] = None  # CPU threads for torch
    # -- what may change from one call to the next ---------------------------------------------------
    roi_subset: Optional[List[str]] = None  # structure names to keep (multi-part tasks run only those parts)
    mode: str = "auto"  # pipeline to match exactly: nnunet | totalseg | auto
    tile_step: Optional[float] = None  # sliding-window step as a fraction of the tile (default per mode)
    return_probabilities: bool = False
    uncertainty: Optional[str] = None  # entropy | tta | mcdropout | ensemble
    uncertainty_passes: int = 8  # passes for tta / mcdropout
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD

    def validate(self) -> "RunRequest":
        """Normalises list fields and raises RunRequestError naming the first bad option; returns self."""
        if self.quality not in QUALITIES:
            raise RunRequestError(f"Unknown quality '{self.quality}' (use {', '.join(QUALITIES)}).")
        if self.mode not in MODES:
            raise RunRequestError(f"Unknown mode '{self.mode}' (use {', '.join(MODES)}).")
        if self.precision not in PRECISIONS:
            raise RunRequestError(f"Unknown precision '{self.precision}' (use {', '.join(PRECISIONS)}).")
        if self.speed not in SPEEDS:
            raise RunRequestError(f"Unknown speed '{self.speed}' (use {', '.join(SPEEDS)}).")
        if self.speed == "fast" and self.precision != "auto":
            raise RunRequestError(f"speed fast chooses the precision itself; leave precision at auto "
                                  f"(got {self.precision}).")
        dev = str(self.device or "auto").lower()
        if dev not in DEVICES and not (dev.startswith("cuda:") and dev[5:].isdigit()):
            raise RunRequestError(f"Unknown device '{self.device}' (use auto, cpu, cuda or cuda:N).")
        if isinstance(self.model, os.PathLike):
            self.model = os.fspath(self.model)
        for name in ("task", "model"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise RunRequestError(f"The {name} must be a non-empty name or path.")
        if self.threads is not None:
            if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
                raise RunRequestError(f"threads must be at least 1, a whole number (got {self.threads!r}).")
        if self.folds is not None:
            self.folds = [str(f) for f in ([self.folds] if isinstance(self.folds, (int, str)) else self.folds)]
            if not self.folds or not all(f == "all" or f.isdigit() for f in self.folds):
                raise RunRequestError(f"folds must be fold numbers or 'all' (got {self.folds!r}).")
        if self.roi_subset is not None:
            if isinstance(self.roi_subset, str) or not all(isinstance(n, str) and n for n in self.roi_subset):
                raise RunRequestError("The structure subset must be a list of structure names.")
            self.roi_subset = list(dict.fromkeys(self.roi_subset))
            if not self.roi_subset:
                raise RunRequestError("The structure subset is empty; name at least one structure.")
        if self.tile_step is not None and not 0.0 < float(self.tile_step) <= 1.0:
            raise RunRequestError(f"The tile step must lie in (0, 1] (got {self.tile_step}).")
        if self.uncertainty is not None and self.uncertainty not in UNCERTAINTY_METHODS:
            raise RunRequestError(f"Unknown uncertainty method '{self.uncertainty}' "
                                  f"(use {', '.join(UNCERTAINTY_METHODS)}).")
        if isinstance(self.uncertainty_passes, bool) or not isinstance(self.uncertainty_passes, int):
            raise RunRequestError(f"uncertainty_passes must be a whole number (got {self.uncertainty_passes!r}).")
        if self.uncertainty in ("tta", "mcdropout") and not 2 <= self.uncertainty_passes <= MAX_UNCERTAINTY_PASSES:
            raise RunRequestError(f"{self.uncertainty} needs at least 2 passes and takes at most "
                                  f"{MAX_UNCERTAINTY_PASSES} ({self.uncertainty_passes} were asked).")
        if not 0.0 <= float(self.confidence_threshold) <= 1.0:
            raise RunRequestError(f"The confidence threshold must lie between 0 and 1 (got {self.confidence_threshold}).")
        return self

    # -- the two halves ------------------------------------------------------------------------
    def predictor_key(self) -> tuple:
        """What a Predictor is built from: two requests with the same key can share one."""
        return tuple((n, tuple(v) if isinstance(v, list) else v)
                     for n, v in ((f, getattr(self, f)) for f in PREDICTOR_FIELDS))

    def with_call_options(self, **options: Any) -> "RunRequest":
        """A copy with per-call options changed; changing what the predictor is built from is refused."""
        fixed = sorted(set(options) & set(PREDICTOR_FIELDS))
        if fixed:
            raise RunRequestError(f"{', '.join(fixed)} cannot change per call; build another Predictor.")
        _check_names(options)
        return replace(self, **options).validate()

    # -- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "RunRequest":
        if not isinstance(data, dict):
            raise RunRequestError("A run request must be a JSON object.")
        return request_from_options(data)


def _check_names(options: Dict[str, Any]) -> None:
    """A typo in an option name is an error that lists the valid names."""
    unknown = sorted(set(options) - {f.name for f in fields(RunRequest)})
    if unknown:
        raise RunRequestError(f"Unknown run option(s): {', '.join(unknown)} "
                              f"(valid: {', '.join(f.name for f in fields(RunRequest))}).")


def request_from_options(options: Dict[str, Any]) -> RunRequest:
    _check_names(options)
    return RunRequest(**options).validate()


PREDICTOR_FIELDS: Sequence[str] = ("task", "model", "quality", "folds", "device", "precision", "speed", "threads")
CALL_FIELDS: Sequence[str] = tuple(f.name for f in fields(RunRequest) if f.name not in PREDICTOR_FIELDS)


__all__ = ["RunRequest", "RunRequestError", "QUALITIES", "MODES", "PRECISIONS", "SPEEDS", "DEVICES", "UNCERTAINTY_METHODS",
           "DEFAULT_CONFIDENCE_THRESHOLD", "PREDICTOR_FIELDS", "CALL_FIELDS", "request_from_options"]
