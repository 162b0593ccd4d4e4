"""``Predictor``: a model resolved, verified and built once, then run on many images.

Like nnU-Net's ``nnUNetPredictor``: construction does what depends only on the model (catalogue
look-up, file hashes, checkpoint loading, network building, thread and device settings);
``predict`` does what depends on the image and the per-call options (structure subset,
uncertainty, ...). ``medsegai.segment()``, the CLI and the worker are thin wrappers over it.

Layering: this module sits on top of the plain prediction (``inference``) and of ``uncertainty``,
which itself sits on top of ``inference``; neither of those imports this module.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from .errors import InvalidModelError, MedSegAIError
from .inference.crop import box_around, crop_image, paste
from .inference.device import check_precision, configure_threads, select_device
from .inference.speed import choose_speed
from .inference.pipeline import (CROP_MARGIN_MM, DEFAULT_MODEL, locate_model, parts_to_check, run_with_fallback,
                                 terminology_lookup, validate_subset, value_map)
from .inference.probabilities import ProbabilitySink
from .inference.single_model import RunOptions
from .io.image import Image, validate_image
from .io.read import read_image
from .io.segments import segments_from_names
from .nnunet.model_folder import LoadedModel, load_model_folder
from .progress import CancelToken, ProgressCallback, Reporter
from .reliability import reliability_warnings
from .result import SegmentationResult
from .run_request import PREDICTOR_FIELDS, RunRequest, RunRequestError
from .totalseg.tasks import TaskSpec, get_task

ImageLike = Union[Image, str, os.PathLike]


class Predictor:
    """``Predictor(task=..., quality=..., model=..., device=..., precision=..., threads=..., folds=...)``.

    A single model (a folder, a catalogue id, or the bundled model) is loaded at construction. A
    multi-part TotalSegmentator task loads each part on first use, so a structure subset needs only
    the parts that hold it installed; a loaded part is kept.
    """

    def __init__(self, task: Optional[str] = None, quality: str = "normal", model=None, *, folds=None,
                 device: str = "auto", precision: str = "auto", threads: Optional[int] = None,
                 request: Optional[RunRequest] = None, progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelToken] = None):
        if request is None:
            request = RunRequest(task=task, model=None if model is None else os.fspath(model), quality=quality,
                                 folds=folds, device=device, precision=precision, threads=threads)
        self.request = replace(request).validate()  # our own copy: the caller may reuse theirs
        r = self.request
        configure_threads(r.threads)
        self.device = select_device(r.device)
        self.speed = choose_speed(r.speed, self.device, r.precision)  # the precision runs use
        check_precision(self.device, self.speed.precision)
        self.task: Optional[TaskSpec] = get_task(r.task, r.quality) if r.task else None
        # With a task, --model names a folder that holds the task's model folders.
        self._search_dir = Path(r.model) if (r.model is not None and self.task is not None) else None
        self._models: Dict[str, LoadedModel] = {}
        self._pending_load_s = 0.0  # load time not yet reported in a result's timings
        reporter = Reporter(progress, cancel)
        if self.task is not None:
            self.label_names: Dict[int, str] = dict(self.task.class_map)
        else:
            reporter("load", 0.0, "loading the model")
            single = self._load(r.model or DEFAULT_MODEL)
            if single.config.region_based:
                raise InvalidModelError("Region-based nnU-Net models (overlapping label regions) are not supported yet.")
            self.label_names = dict(single.config.label_names)
            reporter("load", 1.0, "model loaded")

    # -- models ------------------------------------------------------------------------------------
    def _load(self, model_id: str) -> LoadedModel:
        loaded = self._models.get(model_id)
        if loaded is None:
            t = time.perf_counter()
            loaded = load_model_folder(locate_model(model_id, self._search_dir), self.request.folds)
            self._models[model_id] = loaded
            self._pending_load_s += time.perf_counter() - t
        return loaded

    @property
    def model_name(self) -> str:
        """What the user asked for, for messages: the task, the catalogue id or the folder's name."""
        r = self.request
        if self.task is not None:
            return self.task.title
        return Path(r.model).name if r.model and os.sep in r.model else (r.model or DEFAULT_MODEL)

    @property
    def loaded_models(self) -> List[LoadedModel]:
        return list(self._models.values())

    def _models_for(self, subset: Optional[List[str]]) -> List[LoadedModel]:
        if self.task is None:
            return [self._load(self.request.model or DEFAULT_MODEL)]
        ids = parts_to_check(self.task.model_ids, subset, self._search_dir) if subset else self.task.model_ids
        models = [self._load(mid) for mid in ids]
        if subset:  # run only the parts that hold a requested structure
            models = [m for m in models if set(m.config.label_names.values()) & set(subset)]
        if models and models[0].config.region_based:
            raise InvalidModelError("Region-based nnU-Net models (overlapping label regions) are not supported yet.")
        return models

    # -- one image ---------------------------------------------------------------------------------
    def predict(self, image: ImageLike, *, request: Optional[RunRequest] = None,
                progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                **options) -> SegmentationResult:
        """Segment one image. ``options`` are the per-call run options (``roi_subset``, ``mode``,
        ``tile_step``, ``return_probabilities``, ``uncertainty``, ``uncertainty_passes``,
        ``confidence_threshold``); ``request`` passes them as a whole RunRequest instead, whose
        model options must be this predictor's."""
        if request is not None:
            if options:
                raise RunRequestError("Pass the run options either as a request or as keywords, not both.")
            request = replace(request).validate()
            if request.predictor_key() != self.request.predictor_key():
                differ = [f for f in PREDICTOR_FIELDS if getattr(request, f) != getattr(self.request, f)]
                raise RunRequestError(f"This predictor was built for other {', '.join(differ)}; build another one.")
        else:
            request = self.request.with_call_options(**options)
        reporter = Reporter(progress, cancel)
        if request.uncertainty is not None:
            from .uncertainty import check_method  # before any heavy work

            check_method(request.uncertainty)
        if not isinstance(image, Image):
            image = read_image(image)
        validate_image(image)
        return self._predict(image, request, reporter)

    def _predict(self, image: Image, r: RunRequest, reporter: Reporter) -> SegmentationResult:
        timings: Dict[str, float] = {}
        notes: List[str] = [self.speed.note] if self.speed.note else []
        names = self.label_names
        subset = validate_subset(r.roi_subset, names)
        reporter("load", 0.0, "loading model(s)")
        models = self._models_for(subset)
        reporter("load", 1.0, f"{len(models)} model(s) ready")
        if (r.return_probabilities or r.uncertainty) and len(models) > 1:
            raise MedSegAIError("Probabilities and uncertainty need a single-model run (use quality fast/fastest).")

        # TotalSegmentator's pipeline for its tasks and for models trained on canonical (RAS) arrays,
        # such as ours: a network that never saw a mirrored body must not get a DICOM's LPS array.
        canonical = self.task is not None or models[0].config.canonical_input
        mode = r.mode if r.mode != "auto" else ("totalseg" if canonical else "nnunet")
        step = r.tile_step if r.tile_step is not None else (
            self.task.tile_step if (self.task is not None and mode == "totalseg") else 0.5)
        opts = RunOptions(device=self.device, mode=mode, tile_step=step, precision=self.speed.precision,
                          fp32_full_resolution=self.speed.fp32_full_resolution, use_mirroring=(mode != "totalseg"))

        work_image, box = image, self._subset_box(image, subset, opts, reporter, notes, timings)
        if box is not None:
            work_image = crop_image(image, box)
        if self._pending_load_s:  # the loads this call needed (none on a second call)
            timings["load"], self._pending_load_s = self._pending_load_s, 0.0

        t = time.perf_counter()
        merged = np.zeros(work_image.shape, dtype=np.uint8 if max(names) < 256 else np.uint16)
        sink, out, unc = None, None, None
        for n, m in enumerate(models):
            reporter("predict", 0.0, f"model {n + 1}/{len(models)}: {m.folder.parent.name or m.folder.name}")
            if r.uncertainty is not None:
                from .uncertainty import run_with_uncertainty

                out, unc = run_with_uncertainty(m, work_image, opts, reporter, r.uncertainty, r.uncertainty_passes,
                                                r.return_probabilities, r.confidence_threshold)
                sink = out.sink
            else:
                sink = ProbabilitySink(m.config.num_classes, work_image.shape) if r.return_probabilities else None
                out = run_with_fallback(m, work_image, opts, reporter, notes, sink)
            mapped = value_map(m, names)[out.labels].astype(merged.dtype)
            merged = np.where(mapped > 0, mapped, merged)
        timings["predict"] = time.perf_counter() - t

        if subset:
            merged[~np.isin(merged, [v for v, n in names.items() if n in subset])] = 0
        labels = image.with_array(paste(merged, box, image.shape))
        segs = segments_from_names({v: n for v, n in names.items() if not subset or n in subset}, terminology_lookup())
        result = SegmentationResult(labels=labels, segments=segs, timings=timings, device=str(self.device), notes=notes)
        if sink is not None:
            result.probabilities = sink.finish(out.scores_grid, image.shape, box)
        if unc is not None:
            unc.apply(result, image, box)
        result.warnings = reliability_warnings(image, models[0].config.body_regions, result.segment_confidence,
                                               model_name=self.model_name)
        result.notes.extend(result.warnings)
        reporter("done", 1.0, "finished")
        return result

    def _subset_box(self, image: Image, subset, opts: RunOptions, reporter: Reporter, notes: List[str],
                    timings: Dict[str, float]):
        """Where a structure subset lies, from the task's low-resolution model (None: the whole image)."""
        spec = self.task
        if spec is None or not subset or len(spec.model_ids) < 2 or not spec.crop_model:
            return None
        try:
            crop_model = self._load(spec.crop_model)
        except InvalidModelError as exc:
            notes.append(f"No cropping with the low-resolution model ({exc}); running the parts on the whole image.")
            return None
        t = time.perf_counter()
        reporter("crop", 0.0, "finding the region with the low-resolution model")
        low = run_with_fallback(crop_model, image, opts, reporter, notes)
        lut = value_map(crop_model, self.label_names)
        mask = np.isin(lut[low.labels], [v for v, n in self.label_names.items() if n in subset])
        timings["crop"] = time.perf_counter() - t
        return box_around(mask, image.spacing, CROP_MARGIN_MM) if mask.any() else None
