"""``add_text("liver")``: a structure name segmented by an auto-segmentation model MedSegAI has.

The model: TotalSegmentator's ``total`` task when the parts that hold the structure are installed
(best quality first), else the bundled demo model ``medsegai_ct_demo``. A model is loaded once per
session (``medsegai.Predictor``) and kept, so a second name does not reload it. The bundled model is
a single network that segments all its structures in one pass whatever the subset, so its full
label map is kept for the current image and a second name costs nothing; a multi-part task runs
only the parts that hold the structure (``roi_subset``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import MedSegAIError
from ..io.image import Image
from .errors import StructureNotFoundError, UnknownStructureError
from .names import Alternatives, choose, lookup

TASK = "total"
from ..run_request import QUALITIES  # noqa: E402 - one definition
BUNDLED = ("bundled", None)


@dataclass
class TextResult:
    mask: np.ndarray  # uint8 0/1 on the image grid
    names: List[str]  # the model's structures that make it up
    model: str
    warnings: List[str] = field(default_factory=list)


class TextSegmenter:
    def __init__(self, device: str = "auto", threads: Optional[int] = None):
        self.device, self.threads = device, threads
        self._predictors: Dict[Tuple[str, Optional[str]], object] = {}
        self._full: Optional[Tuple[Image, object]] = None  # (image, result of the bundled model on it)

    def segment(self, image: Image, text: str, progress=None, cancel=None) -> TextResult:
        alternatives = lookup(text)  # an unknown name fails before any model is loaded
        source = _installed_task(alternatives)
        predictor, known = self._predictor(source)
        names = choose(alternatives, known)
        if names is None:
            wanted = " + ".join(alternatives[0])
            hint = "" if source != BUNDLED else (
                f" Install TotalSegmentator's '{TASK}' task (medsegai models pull) for more structures.")
            raise UnknownStructureError(f"{predictor.model_name} does not segment {text!r} ({wanted}).{hint}")
        if source == BUNDLED:
            if self._full is None or self._full[0] is not image:
                self._full = None  # the previous image's labels are not kept beside the new one's
                self._full = (image, predictor.predict(image, progress=progress, cancel=cancel))
            result = self._full[1]
        else:
            result = predictor.predict(image, roi_subset=names, progress=progress, cancel=cancel)
        values = {s.value: s.name for s in result.segments if s.name in names}
        labels = result.labels.array
        found = [n for v, n in values.items() if np.any(labels == v)]
        if not found:
            raise StructureNotFoundError(f"{predictor.model_name} found no {text!r} ({', '.join(names)}) in this "
                                         "image; the mask is unchanged.")
        mask = np.isin(labels, list(values)).astype(np.uint8)
        return TextResult(mask, found, predictor.model_name, list(result.warnings))

    def _predictor(self, source) -> Tuple[object, List[str]]:
        from ..predictor import Predictor

        if source not in self._predictors:
            if source == BUNDLED:  # the runner's default model
                self._predictors[source] = Predictor(device=self.device, threads=self.threads)
            else:
                self._predictors[source] = Predictor(task=TASK, quality=source[1], device=self.device,
                                                     threads=self.threads)
        predictor = self._predictors[source]
        names = [n for v, n in predictor.label_names.items() if v != 0]
        if source == BUNDLED:
            names = _learned(predictor) or names
        return predictor, names


def _learned(predictor) -> List[str]:
    """The structures a model folder says it learned (label_names.json beside it): the bundled model
    lists all of TotalSegmentator's names so that values match, but never outputs most of them."""
    for model in predictor.loaded_models:
        path = Path(model.folder).parent / "label_names.json"
        if path.is_file():
            return [s["name"] for s in json.loads(path.read_text(encoding="utf-8"))["structures"]]
    return []


def _installed_task(alternatives: Alternatives):
    """(TASK, quality) for the best quality whose parts holding the structure are all installed, else BUNDLED."""
    from ..totalseg.tasks import get_task

    try:
        from ..models.requirements import missing_models, models_for_run
    except ImportError:  # a bare runner without the model manager has only the bundled model
        return BUNDLED
    task_names = set(get_task(TASK).class_map.values())
    wanted = sorted({n for names in alternatives for n in names if n in task_names})
    if not wanted:
        return BUNDLED
    for quality in QUALITIES:
        try:
            ids = models_for_run(TASK, quality, roi_subset=wanted)
            if ids and not missing_models(ids):
                return TASK, quality
        except (MedSegAIError, OSError):  # an unreadable catalogue or cache: not installed, as far as we know
            continue
    return BUNDLED
