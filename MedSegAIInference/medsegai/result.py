"""What a segmentation run returns: the typed interface between the runner and its callers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from .io.image import Image
from .io.segments import SegmentInfo


@dataclass
class SegmentationResult:
    # Multi-label map on the input image's exact grid (uint8, or uint16 past 255 labels).
    labels: Image
    # Every structure the model can output (also those absent from ``labels``), by label value.
    segments: List[SegmentInfo]
    # Optional per-class probabilities on the input grid, shape (C, k, j, i), float16,
    # channel c = label value c (0 = background). Only when asked for: they are large.
    probabilities: Optional[np.ndarray] = None
    # Optional voxel-wise uncertainty 0..1 on the input grid (float32).
    uncertainty: Optional[Image] = None
    uncertainty_method: Optional[str] = None
    # Per-segment confidence figures by segment name (e.g. {"liver": {"soft_dice": 0.93, ...}}).
    segment_confidence: Dict[str, Dict[str, float]] = field(default_factory=dict)
    # Seconds per stage ("load", "preprocess", "predict", "export", ...).
    timings: Dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    # Human-readable notes about fallbacks taken (CUDA OOM -> CPU, fewer tiles per batch, ...).
    notes: List[str] = field(default_factory=list)
    # Plain sentences saying the result is unreliable (scan outside the model's body region, most
    # segments flagged low-confidence): shown by the CLI, the worker and the Slicer panel.
    warnings: List[str] = field(default_factory=list)

    def present_segments(self) -> List[SegmentInfo]:
        values = set(np.unique(self.labels.array).tolist())
        return [s for s in self.segments if s.value in values]
