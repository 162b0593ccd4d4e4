"""Segmentation jobs: a bounded queue, one runner thread per device with its predictor kept loaded.

A job is an uploaded image package (:mod:`medsegai.remote.payload`) with its RunRequest and
output options. Its runner writes the same files as ``medsegai segment`` into a staging folder
and zips them; only a complete zip makes the job ``done``. Events (progress, notes, the final
one) are kept in order for the progress stream. Finished jobs' files expire after
``result_ttl_s``. Messages that go to clients never carry the server's paths.
"""
from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional, Tuple

from ..errors import CancelledError, MedSegAIError
from ..progress import CancelToken, ProgressEvent
from ..remote.payload import unpack_image
from ..remote.protocol import OutputOptions
from ..remote.results import pack_folder, sha256_of
from ..run_request import RunRequest
from .config import ServerConfig
from .logs import log

FINAL = ("done", "error", "cancelled")
_PROGRESS_EVERY_S = 0.25
_TOMBSTONES = 1000  # expired jobs remembered, so a late client hears "expired" rather than "unknown"


class QueueFullError(MedSegAIError):
    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class Job:
    id: str
    owner: str
    request: RunRequest
    outputs: OutputOptions
    folder: Path
    state: str = "queued"
    events: List[Tuple[str, Dict[str, Any]]] = field(default_factory=list)
    token: CancelToken = field(default_factory=CancelToken)
    created: float = field(default_factory=time.time)
    started: Optional[float] = None
    ended: Optional[float] = None
    device: Optional[str] = None
    result: Dict[str, Any] = field(default_factory=dict)
    error: Optional[Dict[str, str]] = None
    _last_progress: float = 0.0
    _last_stage: Optional[str] = None

    @property
    def upload(self) -> Path:
        return self.folder / "upload.zip"

    @property
    def archive(self) -> Path:
        return self.folder / "result.zip"

    def describe(self) -> Dict[str, Any]:
        out = {"job_id": self.id, "state": self.state, "created": self.created, "started": self.started,
               "ended": self.ended, "device": self.device}
        if self.state == "done":
            out.update(self.result)
        if self.error:
            out.update(self.error)
        return out


class _Slot:
    """One device: its thread runs one job at a time; its predictor stays loaded between jobs."""

    def __init__(self, device: str, threads: Optional[int]):
        from ..service.worker import PredictorCache

        self.device = device
        self.threads = threads
        self.cache = PredictorCache()
        self.current: Optional[Job] = None


def scrub(message: str, *folders: Path) -> str:
    """The message without the server's own folders in it (a client has no business knowing them)."""
    for folder in folders:
        for form in {str(folder), str(folder.resolve())}:
            message = message.replace(form + "/", "").replace(form, "<server>")
    return message.replace("upload.zip", "the uploaded image")


class JobManager:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.jobs_dir = config.work_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.jobs: Dict[str, Job] = {}
        self.expired: Deque[str] = deque(maxlen=_TOMBSTONES)
        self.pending: Deque[Job] = deque()
        self.cond = threading.Condition()
        self.slots = [_Slot(d, config.threads) for d in _expand_devices(config.devices)]
        self.accepted = 0
        self.durations: Deque[float] = deque(maxlen=20)
        self.stopping = False
        self.threads = [threading.Thread(target=self._serve, args=(s,), name=f"medsegai-job-{s.device}", daemon=True)
                        for s in self.slots]
        self.threads.append(threading.Thread(target=self._reap, name="medsegai-job-reaper", daemon=True))
        for t in self.threads:
            t.start()

    # -- admission ----------------------------------------------------------------------------
    def retry_after_s(self) -> int:
        per_job = sum(self.durations) / len(self.durations) if self.durations else 30.0
        waiting = len(self.pending) + sum(s.current is not None for s in self.slots)
        return int(min(600.0, max(1.0, per_job * waiting / max(len(self.slots), 1))))

    def new_job(self, owner: str) -> Job:
        """A job folder for an upload that is about to arrive (admission is checked again at submit)."""
        self.check_capacity()
        job_id = secrets.token_urlsafe(12)
        folder = self.jobs_dir / job_id
        folder.mkdir()
        return Job(job_id, owner, RunRequest(), OutputOptions(), folder)

    def check_capacity(self) -> None:
        with self.cond:
            if self.stopping:
                raise QueueFullError("The server is shutting down.", 30)
            if len(self.pending) >= self.config.max_queue:
                raise QueueFullError(f"The job queue is full ({self.config.max_queue} waiting); try again later.",
                                     self.retry_after_s())

    def submit(self, job: Job) -> None:
        with self.cond:
            if self.stopping or len(self.pending) >= self.config.max_queue:
                shutil.rmtree(job.folder, ignore_errors=True)
                raise QueueFullError(f"The job queue is full ({self.config.max_queue} waiting); try again later.",
                                     self.retry_after_s())
            self.jobs[job.id] = job
            self.pending.append(job)
            self.accepted += 1
            job.events.append(("queued", {"job_id": job.id, "position": len(self.pending)}))
            self.cond.notify_all()
        log("job queued", job_id=job.id, user=job.owner, model=job.request.model, task=job.request.task)

    def discard(self, job: Job) -> None:
        shutil.rmtree(job.folder, ignore_errors=True)

    # -- queries ------------------------------------------------------------------------------
    def get(self, job_id: str, owner: str) -> Optional[Job]:
        job = self.jobs.get(job_id)
        return job if job is not None and job.owner == owner else None

    def is_expired(self, job_id: str) -> bool:
        return job_id in self.expired

    def events_since(self, job: Job, index: int) -> List[Tuple[str, Dict[str, Any]]]:
        with self.cond:
            return list(job.events[index:])

    def stats(self) -> Dict[str, Any]:
        with self.cond:
            return {"pending": len(self.pending), "running": sum(s.current is not None for s in self.slots),
                    "accepted": self.accepted, "max_queue": self.config.max_queue,
                    "devices": [s.device for s in self.slots]}

    # -- cancel -------------------------------------------------------------------------------
    def cancel(self, job: Job) -> str:
        with self.cond:
            if job.state == "queued":
                self.pending.remove(job)
                self._finish(job, "cancelled", {"message": "The run was cancelled before it started."})
            elif job.state == "running":
                job.token.cancel()
                job.events.append(("note", {"message": "Cancelling..."}))
                self.cond.notify_all()
            return job.state

    # -- running ------------------------------------------------------------------------------
    def _serve(self, slot: _Slot) -> None:
        while True:
            with self.cond:
                while not self.pending and not self.stopping:
                    self.cond.wait()
                if self.stopping:
                    return
                job = self.pending.popleft()
                job.state, job.started, job.device = "running", time.time(), slot.device
                slot.current = job
                job.events.append(("running", {"device": slot.device}))
                self.cond.notify_all()
            log("job started", job_id=job.id, user=job.owner, device=slot.device)
            try:
                payload = self._run(job, slot)
                with self.cond:
                    job.result = payload
                    self._finish(job, "done", payload)
                log("job done", job_id=job.id, user=job.owner, seconds=round(job.ended - job.started, 3))
            except BaseException as exc:  # noqa: B902 - every failure ends the job with a message
                kind, data = self._failure(job, exc)
                with self.cond:
                    self._finish(job, kind, data)
            finally:
                with self.cond:
                    slot.current = None
                    if job.started is not None and job.ended is not None and job.state == "done":
                        self.durations.append(job.ended - job.started)
                job.upload.unlink(missing_ok=True)
                shutil.rmtree(job.folder / "out", ignore_errors=True)

    def _progress(self, job: Job):
        def on_progress(ev: ProgressEvent) -> None:
            now = time.monotonic()
            # Tiles report hundreds of times on a big CT; a client needs a few updates a second.
            if ev.stage == job._last_stage and ev.fraction < 1.0 and now - job._last_progress < _PROGRESS_EVERY_S:
                return
            job._last_stage, job._last_progress = ev.stage, now
            kind = "note" if ev.stage == "note" else "progress"
            with self.cond:
                job.events.append((kind, {"stage": ev.stage, "fraction": ev.fraction, "message": ev.message}))
                self.cond.notify_all()
        return on_progress

    def _run(self, job: Job, slot: _Slot) -> Dict[str, Any]:
        from ..outputs import write_result_files, write_structure_masks

        progress = self._progress(job)
        image, _meta = unpack_image(job.upload, self.config.max_voxels)
        job.upload.unlink(missing_ok=True)
        request = replace(job.request, device=slot.device, threads=slot.threads).validate()
        predictor = slot.cache.get(request, progress, job.token)
        result = predictor.predict(image, request=request, progress=progress, cancel=job.token)
        job.token.raise_if_cancelled()
        progress(ProgressEvent("write", 0.0, "writing outputs"))
        out, o = job.folder / "out", job.outputs
        write_result_files(result, out, stem=o.stem, probabilities=o.probabilities, label_suffix=o.label_suffix)
        if o.masks and o.label_suffix is None:
            write_structure_masks(result, out)
        if o.preview:
            from ..preview import write_preview

            write_preview(image, result, out / f"{o.stem}_preview.png")
        job.token.raise_if_cancelled()
        files = pack_folder(out, job.archive)
        present = {s.value for s in result.present_segments()}
        return {"files": files, "sha256": sha256_of(job.archive), "notes": list(result.notes),
                "warnings": list(result.warnings), "timings": dict(result.timings), "device": result.device,
                "segment_confidence": result.segment_confidence, "uncertainty_method": result.uncertainty_method,
                "segments": [{"value": s.value, "name": s.name, "present": s.value in present}
                             for s in result.segments]}

    def _failure(self, job: Job, exc: BaseException) -> Tuple[str, Dict[str, str]]:
        if isinstance(exc, CancelledError):
            log("job cancelled", job_id=job.id, user=job.owner)
            return "cancelled", {"message": "The run was cancelled."}
        if isinstance(exc, MedSegAIError):
            message = scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, job.folder,
                            self.config.work_dir)
            log("job failed", logging.WARNING, job_id=job.id, user=job.owner, error_type=type(exc).__name__,
                message=message)
            return "error", {"error_type": type(exc).__name__, "message": message}
        if isinstance(exc, MemoryError):
            log("job failed", logging.WARNING, job_id=job.id, error_type="MemoryError")
            return "error", {"error_type": "MemoryError", "message": "The server ran out of memory. Try quality "
                             "'fast' or 'fastest', or a structure subset."}
        log("job crashed", logging.ERROR, exc_info=(type(exc), exc, exc.__traceback__), job_id=job.id, user=job.owner)
        return "error", {"error_type": "InternalError",
                         "message": f"The server failed unexpectedly on job {job.id}; its log has the details."}

    def _finish(self, job: Job, state: str, data: Dict[str, Any]) -> None:
        """With ``self.cond`` held."""
        job.state, job.ended = state, time.time()
        if state != "done":
            job.error = {k: v for k, v in data.items() if k in ("error_type", "message")}
            job.archive.unlink(missing_ok=True)
        job.events.append(({"done": "result"}.get(state, state), {"job_id": job.id, **data}))
        self.cond.notify_all()

    # -- expiry -------------------------------------------------------------------------------
    def _reap(self) -> None:
        every = max(0.2, min(5.0, self.config.result_ttl_s / 4))
        while not self.stopping:
            time.sleep(every)
            now = time.time()
            with self.cond:
                old = [j for j in self.jobs.values()
                       if j.state in FINAL and j.ended is not None and now - j.ended > self.config.result_ttl_s]
                for j in old:
                    del self.jobs[j.id]
                    self.expired.append(j.id)
            for j in old:
                shutil.rmtree(j.folder, ignore_errors=True)
                log("job expired", job_id=j.id, user=j.owner)

    def shutdown(self) -> None:
        with self.cond:
            self.stopping = True
            for job in list(self.pending):
                self.pending.remove(job)
                self._finish(job, "cancelled", {"message": "The server stopped before the job started."})
            for slot in self.slots:
                if slot.current is not None:
                    slot.current.token.cancel()
            self.cond.notify_all()


def _expand_devices(devices: List[str]) -> List[str]:
    """'auto' becomes every CUDA device (or the CPU): one runner each."""
    out: List[str] = []
    for d in devices:
        if d == "auto":
            import torch

            out += [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]
        else:
            out.append(d)
    return list(dict.fromkeys(out)) or ["cpu"]
