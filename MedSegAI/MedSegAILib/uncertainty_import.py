"""The worker's uncertainty outputs, read and checked before anything touches the scene."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

from medsegai.errors import MedSegAIError
from medsegai.io.image import Image
from medsegai.io.read import read_image


@dataclass
class WorkerUncertainty:
    method: str
    image: Image  # float32 0..1 on the input volume's grid
    confidence: Dict[str, Dict[str, float]] = field(default_factory=dict)


def read_worker_uncertainty(final_event, input_image: Image, method: Optional[str]) -> Optional[WorkerUncertainty]:
    """None when no method was asked; raises when one was asked and the map is missing or misplaced."""
    if not method:
        return None
    outputs = final_event.get("outputs") or {}
    path = outputs.get("uncertainty")
    if not path or not Path(path).is_file():
        raise MedSegAIError(f"Uncertainty '{method}' was asked for but the worker wrote no uncertainty map.")
    image = read_image(path)
    if not image.same_grid(input_image):
        raise MedSegAIError("The uncertainty map does not lie on the input volume's grid; it was not imported.")
    confidence = final_event.get("segment_confidence") or {}
    return WorkerUncertainty(final_event.get("uncertainty_method") or method, image, dict(confidence))
