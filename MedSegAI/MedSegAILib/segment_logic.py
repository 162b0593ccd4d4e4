"""The Logic behind the widget and the console API (no Qt): validate, run in a worker, import.

Asynchronous use (the widget): ``job = logic.start(request)``, then ``job.poll()`` from a timer,
``job.cancel()`` on Cancel, and ``logic.finish(job)`` once ``job.done``. Synchronous use (the
Python console, tests): ``logic.segment(volumeNode, ...)``. Nothing in the scene changes before
``finish`` succeeds, so a cancel or an error leaves the scene as it was.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

from medsegai import terminology
from medsegai.errors import MedSegAIError
from medsegai.io.segments import SegmentInfo
from medsegai.service import WorkerEvent

from .errors import EditedSegmentsError, InputError
from .model_availability import MissingModel, missing_models, not_installed_error
from .model_choices import task_structures
from .run_options import check_options
from .segmentation_bridge import SegmentationUpdate, write_segments
from .statistics import SegmentStatistics, segment_statistics
from .uncertainty_import import read_worker_uncertainty
from .uncertainty_overlay import add_uncertainty_volume
from .uncertainty_scores import (DEFAULT_CONFIDENCE_THRESHOLD, jump_to_segment, least_confident_segment,
                                 write_confidence_tags)
from .volume_bridge import image_from_volume
from .worker_job import WorkerJob, WorkerResult


@dataclass
class SegmentationRequest:
    volume_node: object
    task: Optional[str] = "total"
    model: Optional[str] = None
    quality: str = "normal"
    subset: Optional[Sequence[str]] = None
    device: str = "auto"
    segmentation_node: object = None  # None: a new node
    on_edited: str = "error"  # see segmentation_bridge.write_segments
    known_structures: Sequence[str] = ()  # for checking the subset; from the model choice
    uncertainty: Optional[str] = None  # entropy | tta | mcdropout | ensemble
    uncertainty_passes: int = 8
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD  # Soft Dice Confidence below it: flagged
    download: bool = False  # fetch the catalogue models the run needs and lacks (the user agreed)
    accept_licenses: bool = False  # accept the licences of those models that ask for it


@dataclass
class RunningSegmentation:
    request: SegmentationRequest
    job: WorkerJob
    started: float = field(default_factory=time.monotonic)

    def poll(self) -> List[WorkerEvent]:
        return self.job.poll()

    def cancel(self) -> None:
        self.job.cancel()

    @property
    def done(self) -> bool:
        return self.job.done

    @property
    def cancelled(self) -> bool:
        final = self.job.process.final_event
        return final is not None and final.kind == "cancelled"


@dataclass
class SegmentationOutcome:
    update: SegmentationUpdate
    result: WorkerResult
    seconds: float
    uncertainty_node: object = None  # scalar volume (0..1) on the input grid, when asked for
    uncertainty_method: Optional[str] = None
    confidence: dict = field(default_factory=dict)  # {segment name: {soft_dice, mean_uncertainty, flagged}}

    @property
    def segmentation_node(self):
        return self.update.node


def _with_terminology(segments: Sequence[SegmentInfo]) -> List[SegmentInfo]:
    """Fill in colour/terminology for segments the runner left without a code."""
    out = []
    for s in segments:
        found = None if s.terminology else terminology.lookup(s.name)
        out.append(s if found is None else SegmentInfo(s.value, s.name, found[0], found[1]))
    return out


class SegmentLogic:
    def __init__(self, scene, segmentations_logic, *, python: Optional[str] = None,
                 work_root: Optional[str] = None, worker_env: Optional[dict] = None, colors_logic=None):
        self.scene = scene
        self.segmentations_logic = segmentations_logic
        self.colors_logic = colors_logic  # for the uncertainty colour legend; None: no legend
        self.python = python
        self.work_root = work_root
        self.worker_env = worker_env

    # -- asynchronous ---------------------------------------------------------------------------
    def missing_models(self, request: SegmentationRequest) -> List[MissingModel]:
        """The catalogue models the request needs that are not installed (for a download question)."""
        return missing_models(request.task, request.quality, request.model, self._checked_subset(request))

    def _checked_subset(self, request: SegmentationRequest):
        if request.task is None and request.model is None:
            raise InputError("Choose a task or a model.")
        known = list(request.known_structures) or (list(task_structures(request.task)) if request.task else [])
        return check_options(request.quality, request.device, request.subset, known)

    def start(self, request: SegmentationRequest) -> RunningSegmentation:
        """Check everything that can be checked up front, then launch the worker."""
        image = image_from_volume(request.volume_node)
        node = request.segmentation_node
        if node is not None and (not node.IsA("vtkMRMLSegmentationNode") or node.GetScene() is not self.scene):
            raise InputError("The output must be a segmentation node of this scene.")
        subset = self._checked_subset(request)
        _check_uncertainty(request)
        missing = missing_models(request.task, request.quality, request.model, subset)
        if missing and not request.download:
            raise not_installed_error(missing)
        unaccepted = [m.model_id for m in missing if m.licence_must_be_accepted]
        if unaccepted and not request.accept_licenses:
            raise InputError(f"The licence of {', '.join(unaccepted)} must be accepted before it is downloaded "
                             "(accept_licenses=True once you have read it: medsegai.models.license_notice).")
        job = WorkerJob(image, task=request.task, model=request.model, quality=request.quality, subset=subset,
                        device=request.device, python=self.python, work_root=self.work_root, env=self.worker_env)
        # The spec is written when the process starts, so the uncertainty request rides along.
        job.spec.uncertainty = request.uncertainty
        job.spec.uncertainty_passes = int(request.uncertainty_passes)
        job.spec.confidence_threshold = float(request.confidence_threshold)
        job.spec.download_models = bool(missing)
        job.spec.accept_licenses = bool(request.accept_licenses)
        try:
            job.start()
        except Exception:
            job.cleanup()
            raise
        return RunningSegmentation(request, job)

    def finish(self, running: RunningSegmentation, on_edited: Optional[str] = None,
               node_name: Optional[str] = None) -> SegmentationOutcome:
        """Import a finished run into the scene; raises the run's error (scene unchanged)."""
        request = running.request
        try:
            result = running.job.result()
            if request.segmentation_node is not None and request.segmentation_node.GetScene() is not self.scene:
                raise InputError("The output segmentation was deleted during the run; choose another one.")
            if request.volume_node.GetScene() is not self.scene:
                raise InputError("The input volume was deleted during the run; the result was not imported.")
            # Read and check the map before the scene changes: a bad map leaves the scene as it was.
            unc = read_worker_uncertainty(running.job.process.final_event, running.job.image, request.uncertainty)
            name = node_name or f"{request.volume_node.GetName()} segmentation"
            source = request.task and f"task:{request.task}/{request.quality}" or f"model:{request.model}"
            update = write_segments(
                self.scene, result.labels, _with_terminology(result.segments),
                reference_volume=request.volume_node, segmentation_node=request.segmentation_node,
                node_name=name, on_edited=on_edited or request.on_edited, source=source,
            )
        except EditedSegmentsError:
            raise  # the files stay: the caller asks the user and calls finish() again
        except Exception:
            running.job.cleanup()
            raise
        running.job.cleanup()
        outcome = SegmentationOutcome(update, result, time.monotonic() - running.started)
        if unc is not None:
            # A kept edited segment is the user's, not the model's: its old scores would mislead.
            scores = {n: v for n, v in unc.confidence.items() if n not in update.kept_edited}
            write_confidence_tags(update.node, scores, unc.method, request.confidence_threshold)
            outcome.uncertainty_node = add_uncertainty_volume(
                self.scene, unc.image, request.volume_node, unc.method, colors_logic=self.colors_logic)
            outcome.uncertainty_method = unc.method
            outcome.confidence = unc.confidence
        return outcome

    # -- synchronous ----------------------------------------------------------------------------
    def segment(self, volume_node, task: Optional[str] = "total", quality: str = "normal",
                subset: Optional[Sequence[str]] = None, device: str = "auto", model: Optional[str] = None,
                segmentation_node=None, on_edited: str = "keep", timeout: Optional[float] = None,
                progress: Optional[Callable[[WorkerEvent], None]] = None, download: bool = True,
                accept_licenses: bool = False):
        """Run to completion and return the segmentation node (for the Python console). Missing
        catalogue models are downloaded, as TotalSegmentator does, unless ``download=False``."""
        return self.segment_outcome(volume_node, task=task, quality=quality, subset=subset, device=device,
                                    model=model, segmentation_node=segmentation_node, on_edited=on_edited,
                                    timeout=timeout, progress=progress, download=download,
                                    accept_licenses=accept_licenses).segmentation_node

    def segment_outcome(self, volume_node, task: Optional[str] = "total", quality: str = "normal",
                        subset: Optional[Sequence[str]] = None, device: str = "auto", model: Optional[str] = None,
                        segmentation_node=None, on_edited: str = "keep", timeout: Optional[float] = None,
                        progress: Optional[Callable[[WorkerEvent], None]] = None, uncertainty: Optional[str] = None,
                        uncertainty_passes: int = 8,
                        confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD, download: bool = True,
                        accept_licenses: bool = False) -> SegmentationOutcome:
        """Run to completion; the outcome has the segmentation node and, with ``uncertainty``, the map's
        volume node and the per-segment confidence (for the Python console)."""
        running = self.start(SegmentationRequest(
            volume_node, task=task if model is None else None, model=model, quality=quality, subset=subset,
            device=device, segmentation_node=segmentation_node, on_edited=on_edited, uncertainty=uncertainty,
            uncertainty_passes=uncertainty_passes, confidence_threshold=confidence_threshold, download=download,
            accept_licenses=accept_licenses))
        try:
            running.job.process.wait(timeout=timeout, on_event=progress)
        except BaseException:
            running.job.cleanup()  # e.g. KeyboardInterrupt in the console: stop the worker too
            raise
        return self.finish(running)

    def statistics(self, segmentation_node, volume_node, uncertainty_volume=None,
                   confidence_threshold: Optional[float] = None) -> List[SegmentStatistics]:
        if segmentation_node is None or volume_node is None:
            raise InputError("Statistics need a segmentation and its intensity volume.")
        return segment_statistics(segmentation_node, volume_node, self.segmentations_logic,
                                  uncertainty_volume=uncertainty_volume, confidence_threshold=confidence_threshold)

    def jump_to_least_confident(self, segmentation_node, volume_node):
        """Centre the slice views on the segment with the lowest confidence; returns (segment id, RAS)."""
        if segmentation_node is None or volume_node is None:
            raise InputError("Choose the segmentation and its input volume.")
        segment_id = least_confident_segment(segmentation_node)
        if segment_id is None:
            raise InputError("This segmentation has no confidence scores: run it with an uncertainty method.")
        return segment_id, jump_to_segment(self.scene, segmentation_node, segment_id, volume_node)


def _check_uncertainty(request: SegmentationRequest) -> None:
    if request.uncertainty is None:
        return
    from medsegai.uncertainty import METHODS

    if request.uncertainty not in METHODS:
        raise InputError(f"Unknown uncertainty method '{request.uncertainty}'; choose one of {', '.join(METHODS)}.")
    if int(request.uncertainty_passes) < 2:
        raise InputError("Uncertainty needs at least 2 passes.")
    if not 0.0 <= float(request.confidence_threshold) <= 1.0:
        raise InputError("The confidence threshold must be between 0 and 1.")


__all__ = ["SegmentLogic", "SegmentationRequest", "RunningSegmentation", "SegmentationOutcome", "MedSegAIError"]
