"""The Logic behind the widget and the console API (no Qt): validate, run in a worker, import.

Asynchronous use (the widget): ``job = logic.start(request)``, then ``job.poll()`` from a timer,
``job.cancel()`` on Cancel, and ``logic.finish(job)`` once ``job.done`` (or ``logic.discard(job)``
to import nothing). Synchronous use (the Python console, tests): ``logic.segment(volumeNode,
RunRequest(...))``. Nothing in the scene changes before ``finish`` succeeds, so a cancel or an
error leaves the scene as it was.

The worker process stays between runs (the model stays loaded there): the Logic owns one
:class:`~medsegai.service.WorkerProcess`, started on the first run; ``shutdown()`` stops it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

from medsegai import terminology
from medsegai.errors import MedSegAIError
from medsegai.io.segments import SegmentInfo
from medsegai.run_request import RunRequest, RunRequestError
from medsegai.service import WorkerEvent, WorkerProcess

from .errors import EditedSegmentsError, InputError
from .model_availability import MissingModel, missing_models, not_installed_error
from .model_choices import task_structures
from .run_options import check_subset
from .segmentation_bridge import SegmentationUpdate, write_segments
from .statistics import SegmentStatistics, segment_statistics
from .uncertainty_import import read_worker_uncertainty
from .uncertainty_overlay import add_uncertainty_volume
from .uncertainty_scores import jump_to_segment, least_confident_segment, write_confidence_tags
from .volume_bridge import image_from_volume
from .worker_job import WorkerJob, WorkerResult, default_python


@dataclass
class SegmentationRequest:
    """A run of ``run`` on a volume node, and what to do with the result in the scene."""
    volume_node: object
    run: RunRequest
    segmentation_node: object = None  # None: a new node
    on_edited: str = "error"  # see segmentation_bridge.write_segments
    known_structures: Sequence[str] = ()  # for checking the subset; from the model choice
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
        final = self.job.final_event
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
                 work_root: Optional[str] = None, worker_env: Optional[dict] = None, colors_logic=None,
                 worker_idle_timeout_s: Optional[float] = None):
        self.scene = scene
        self.segmentations_logic = segmentations_logic
        self.colors_logic = colors_logic  # for the uncertainty colour legend; None: no legend
        self.python = python
        self.work_root = work_root
        self.worker_env = worker_env
        self.worker_idle_timeout_s = worker_idle_timeout_s
        self._worker: Optional[WorkerProcess] = None
        self.remote = None  # a remote_job.RemoteSettings: "Run on: server"; None runs on this computer
        self._relay = None  # (RemoteSettings, SessionRelay): interactive sessions on that server

    # -- the worker that stays ------------------------------------------------------------------
    @property
    def worker(self) -> WorkerProcess:
        if self._worker is None:
            self._worker = WorkerProcess(python=self.python or default_python(), env=self.worker_env,
                                         idle_timeout_s=self.worker_idle_timeout_s)
        return self._worker

    @property
    def session_worker(self):
        """Where interactive sessions run: the local worker, or with "Run on: server" a relay of the
        same requests to that server (``medsegai.remote.session_relay``)."""
        if self.remote is None:
            self._stop_relay(wait_s=0.0)  # back on this computer: the server's sessions are closed
            return self.worker
        if self._relay is None or self._relay[0] != self.remote:
            from medsegai.remote.client import RemoteClient
            from medsegai.remote.session_relay import SessionRelay

            self._stop_relay(wait_s=0.0)  # another server chosen: the GUI does not wait for the old one
            client = RemoteClient(self.remote.url, self.remote.token, ca_bundle=self.remote.ca_bundle)
            self._relay = (self.remote, SessionRelay(client))
        return self._relay[1]

    def _stop_relay(self, wait_s: float = 2.0) -> None:
        if self._relay is not None:
            relay, self._relay = self._relay[1], None
            relay.stop(wait_s)

    def shutdown(self) -> None:
        """Stop the worker process (Slicer exits, the module is reloaded); the next run starts a new one."""
        self._stop_relay()
        if self._worker is not None:
            self._worker.shutdown()

    # -- asynchronous ---------------------------------------------------------------------------
    def missing_models(self, request: SegmentationRequest) -> List[MissingModel]:
        """The catalogue models the request needs that are not installed (for a download question)."""
        run = self._checked_run(request)
        if self.remote is not None:
            return []  # the server has its own models; a run names any it lacks
        return missing_models(run.task, run.quality, run.model, run.roi_subset)

    def _checked_run(self, request: SegmentationRequest) -> RunRequest:
        run = request.run
        if run.task is None and run.model is None:
            raise InputError("Choose a task or a model.")
        try:
            run.validate()
        except RunRequestError as e:
            raise InputError(str(e)) from None
        known = list(request.known_structures) or (list(task_structures(run.task)) if run.task else [])
        check_subset(run.roi_subset, known)
        return run

    def start(self, request: SegmentationRequest) -> RunningSegmentation:
        """Check everything that can be checked up front, then hand the job to the worker."""
        image = image_from_volume(request.volume_node)
        node = request.segmentation_node
        if node is not None and (not node.IsA("vtkMRMLSegmentationNode") or node.GetScene() is not self.scene):
            raise InputError("The output must be a segmentation node of this scene.")
        run = self._checked_run(request)
        if self.remote is not None:  # the server has its own models; it says which are missing
            from .remote_job import RemoteJob

            return RunningSegmentation(request, RemoteJob(image, run, self.remote, work_root=self.work_root).start())
        missing = missing_models(run.task, run.quality, run.model, run.roi_subset)
        if missing and not request.download:
            raise not_installed_error(missing)
        unaccepted = [m.model_id for m in missing if m.licence_must_be_accepted]
        if unaccepted and not request.accept_licenses:
            raise InputError(f"The licence of {', '.join(unaccepted)} must be accepted before it is downloaded "
                             "(accept_licenses=True once you have read it: medsegai.models.license_notice).")
        job = WorkerJob(image, run, download_models=bool(missing), accept_licenses=bool(request.accept_licenses),
                        work_root=self.work_root)
        try:
            job.start(self.worker)
        except Exception:
            job.cleanup()
            raise
        return RunningSegmentation(request, job)

    def discard(self, running: RunningSegmentation) -> None:
        """Import nothing from this run (cancelling it if it still runs) and remove its files."""
        running.job.cleanup()

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
            run = request.run
            unc = read_worker_uncertainty(running.job.final_event, running.job.image, run.uncertainty)
            name = node_name or f"{request.volume_node.GetName()} segmentation"
            source = run.task and f"task:{run.task}/{run.quality}" or f"model:{run.model}"
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
            write_confidence_tags(update.node, scores, unc.method, run.confidence_threshold)
            outcome.uncertainty_node = add_uncertainty_volume(
                self.scene, unc.image, request.volume_node, unc.method, colors_logic=self.colors_logic)
            outcome.uncertainty_method = unc.method
            outcome.confidence = unc.confidence
        return outcome

    # -- synchronous ----------------------------------------------------------------------------
    def segment(self, volume_node, run: RunRequest, *, segmentation_node=None, on_edited: str = "keep",
                timeout: Optional[float] = None, progress: Optional[Callable[[WorkerEvent], None]] = None,
                download: bool = True, accept_licenses: bool = False) -> SegmentationOutcome:
        """Run to completion (for the Python console); the outcome has the segmentation node and, with
        ``run.uncertainty``, the map's volume node and the per-segment confidence. Missing catalogue
        models are downloaded, as TotalSegmentator does, unless ``download=False``."""
        running = self.start(SegmentationRequest(
            volume_node, run, segmentation_node=segmentation_node, on_edited=on_edited, download=download,
            accept_licenses=accept_licenses))
        try:
            running.job.wait(timeout=timeout, on_event=progress)
        except BaseException:
            self.discard(running)  # e.g. KeyboardInterrupt in the console: stop the job too
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

    # -- DICOM SEG --------------------------------------------------------------------------------
    def export_dicom_seg(self, volume_node, segmentation_node, path, segmentation_type: str = "BINARY") -> List[str]:
        """The segmentation as a DICOM SEG over the series ``volume_node`` came from (Slicer's DICOM
        database); returns notes. Nothing is written, and the scene is only read, when it fails."""
        from .dicom_seg_bridge import export_dicom_seg

        if segmentation_node is None or volume_node is None:
            raise InputError("Choose the segmentation and the volume it was made on.")
        return export_dicom_seg(volume_node, segmentation_node, path, segmentation_type=segmentation_type)

    def import_dicom_seg(self, path, volume_node):
        """A DICOM SEG read onto ``volume_node``'s grid as a new segmentation: (node, notes)."""
        from .dicom_seg_bridge import import_dicom_seg

        if volume_node is None:
            raise InputError("Choose the volume the DICOM SEG was made on.")
        update, notes = import_dicom_seg(self.scene, path, volume_node)
        return update.node, notes


__all__ = ["SegmentLogic", "SegmentationRequest", "RunningSegmentation", "SegmentationOutcome", "RunRequest",
           "MedSegAIError"]
