"""Worker process: ``python -m medsegai.service.worker --serve`` (stays) or ``... JOB.json`` (one job).

Serving, it reads one JSON request per stdin line and writes events on stdout (see
:mod:`.events`); the model of the last job stays loaded, so the next job on the same model skips
the load. Requests (``op``):

* ``run`` ``{job_id, job}``: run a :class:`~.job.JobSpec`; events carry the ``job_id`` and end with
  exactly one of ``result``, ``error`` or ``cancelled``. Jobs run one at a time, in order.
* ``cancel`` ``{job_id}``: stop that job between tiles (a queued one never starts).
* ``ping`` ``{request_id}``: a ``reply`` saying which job runs, which models are loaded and which
  interactive sessions are open.
* ``session.*`` ``{request_id, session_id, ...}``: interactive segmentation (:mod:`.sessions`), on a
  thread of their own so a click never waits behind a job; sessions idle for
  ``--session-idle-timeout`` seconds are closed.
* ``shutdown``: cancel what runs and exit.

Other requests can be added to :data:`HANDLERS`. A
``heartbeat`` event goes out every :data:`HEARTBEAT_S` seconds, so the caller can tell a hung
worker from a busy one. The worker exits when stdin closes (its caller is gone), on SIGTERM, on
``shutdown``, or after ``--idle-timeout`` seconds without a request.

Outputs are written into a staging folder beside ``output_dir`` and renamed into place only when
complete, so a caller never sees half a result. One-job exit codes: 0 done, 2 a user-facing
error, 3 cancelled, 1 an unexpected failure.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional

from .. import __version__
from ..errors import CancelledError, MedSegAIError
from ..progress import CancelToken, ProgressEvent
from .events import PROTOCOL_VERSION, encode_event
from .job import JobSpec, JobSpecError
from .sessions import DEFAULT_SESSION_IDLE_TIMEOUT_S, OPS as SESSION_OPS, SessionHost

EXIT_OK, EXIT_UNEXPECTED, EXIT_ERROR, EXIT_CANCELLED = 0, 1, 2, 3
HEARTBEAT_S = 2.0
DEFAULT_IDLE_TIMEOUT_S = 30 * 60.0

_emit_lock = threading.Lock()


def emit(kind: str, **data) -> None:
    # One locked write per event so lines from different threads never interleave.
    line = encode_event(kind, **data) + "\n"
    with _emit_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def _publish(staging: Path, target: Path) -> None:
    """Move the finished staging folder to ``target`` (which may exist only as an empty folder)."""
    if target.exists():
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        else:
            raise MedSegAIError(f"The output folder {target} already holds files; choose an empty or new folder.")
    os.replace(staging, target)


class PredictorCache:
    """The last job's predictor, kept while the next job asks for the same model options.

    One at a time: a second model would double the memory, and users switch models rarely.
    """

    def __init__(self):
        self.key = None
        self.predictor = None

    def get(self, request, progress, cancel):
        from ..predictor import Predictor

        key = request.predictor_key()
        if self.predictor is None or key != self.key:
            self.predictor = self.key = None  # free the old model before loading the new one
            self.predictor = Predictor(request=request, progress=progress, cancel=cancel)
            self.key = key
        return self.predictor

    def describe(self):
        return [] if self.predictor is None else [m.folder.name for m in self.predictor.loaded_models]


def run_job(spec: JobSpec, token: CancelToken, predictors: PredictorCache, job_id: Optional[str] = None) -> dict:
    import medsegai

    def on_progress(event: ProgressEvent) -> None:
        emit("progress", job_id=job_id, stage=event.stage, fraction=event.fraction, message=event.message)

    target = Path(spec.output_dir)
    staging = target.with_name(f".{target.name}.part-{os.getpid()}")
    run = spec.run
    if spec.download_models:
        from ..models.requirements import fetch_missing, models_for_run

        needed = models_for_run(run.task, run.quality, run.model, run.roi_subset)
        for model_id in fetch_missing(needed, accept_license=spec.accept_licenses, progress=on_progress, cancel=token):
            emit("log", job_id=job_id, level="info", message=f"Installed model {model_id}")
    started = time.perf_counter()
    try:
        reused = predictors.predictor is not None and predictors.key == run.predictor_key()
        predictor = predictors.get(run, on_progress, token)
        result = predictor.predict(spec.input_path, request=run, progress=on_progress, cancel=token)
        token.raise_if_cancelled()
        emit("progress", job_id=job_id, stage="write", fraction=0.0, message="Writing outputs")
        outputs = medsegai.write_outputs(result, staging, stem=spec.output_stem)
        token.raise_if_cancelled()
        _publish(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    outputs = {kind: str(target / Path(p).name) for kind, p in outputs.items()}
    present = {s.value for s in result.present_segments()}
    return {
        "outputs": outputs,
        "segments": [
            {"value": s.value, "name": s.name, "color": list(s.color), "terminology": s.terminology,
             "present": s.value in present}
            for s in result.segments
        ],
        "segment_confidence": result.segment_confidence,
        "uncertainty_method": result.uncertainty_method,
        "timings": result.timings,
        "notes": result.notes,
        "warnings": result.warnings,
        "device": result.device,
        "model_reused": reused,
        "job_s": time.perf_counter() - started,
    }


def _error_event(exc: BaseException) -> tuple:
    """(event kind, event data, one-job exit code) for a failed job: a message, never a traceback."""
    if isinstance(exc, CancelledError):
        return "cancelled", {"message": "The run was cancelled."}, EXIT_CANCELLED
    if isinstance(exc, MedSegAIError):
        return "error", {"error_type": type(exc).__name__, "message": str(exc)}, EXIT_ERROR
    if isinstance(exc, MemoryError):
        return "error", {"error_type": "MemoryError", "message": "The computer ran out of memory. Try quality "
                         "'fast' or 'fastest', or a structure subset."}, EXIT_ERROR
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)  # for the log only
    return "error", {"error_type": type(exc).__name__,
                     "message": f"Unexpected error: {type(exc).__name__}: {exc}"}, EXIT_UNEXPECTED


@dataclass
class _Job:
    job_id: str
    spec: Optional[JobSpec]
    token: CancelToken = field(default_factory=CancelToken)
    problem: Optional[str] = None  # a malformed job: answered with an error without running


class Worker:
    """The serving loop's state: the job queue, the running job, the kept predictor."""

    def __init__(self, idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
                 session_idle_timeout_s: float = DEFAULT_SESSION_IDLE_TIMEOUT_S):
        self.idle_timeout_s = idle_timeout_s
        self.sessions = SessionHost(emit, session_idle_timeout_s)
        self.jobs: "queue.Queue[Optional[_Job]]" = queue.Queue()
        self.pending: Dict[str, _Job] = {}
        self.current: Optional[_Job] = None
        self.predictors = PredictorCache()
        self.last_activity = time.monotonic()
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    # -- threads ---------------------------------------------------------------------------------
    def run_jobs(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            with self._lock:
                self.pending.pop(job.job_id, None)
                if job.token.cancelled:
                    emit("cancelled", job_id=job.job_id, message="The run was cancelled.")
                    continue
                self.current = job
            try:
                if job.problem:
                    raise JobSpecError(job.problem)
                payload = run_job(job.spec, job.token, self.predictors, job.job_id)
                emit("result", job_id=job.job_id, **payload)
            except BaseException as exc:  # noqa: B902 - every failure is reported as the job's end
                kind, data, _code = _error_event(exc)
                emit(kind, job_id=job.job_id, **data)
            finally:
                with self._lock:
                    self.current = None
                    self.last_activity = time.monotonic()

    def heartbeat(self) -> None:
        while not self.stopping.wait(HEARTBEAT_S):
            with self._lock:
                busy = self.current.job_id if self.current else None
                idle_for = time.monotonic() - self.last_activity
            session_busy = self.sessions.busy
            emit("heartbeat", busy=busy, session_busy=session_busy)
            if busy is None and session_busy is None and not self.pending and idle_for > self.idle_timeout_s:
                emit("exit", reason="idle", message=f"No job for {self.idle_timeout_s:.0f} s; the worker stops.")
                os._exit(EXIT_OK)  # the main thread is blocked reading stdin

    # -- requests --------------------------------------------------------------------------------
    def handle(self, line: str) -> None:
        try:
            request = json.loads(line)
            op = request["op"]
        except (ValueError, KeyError, TypeError):
            emit("log", level="error", message=f"Ignored a malformed request: {line[:200]!r}")
            return
        handler = HANDLERS.get(op)
        if handler is None:
            emit("reply", request_id=request.get("request_id"), op=op, ok=False, error=f"Unknown request '{op}'.")
            return
        with self._lock:
            self.last_activity = time.monotonic()
        handler(self, request)

    def cancel_all(self) -> None:
        with self._lock:
            for job in list(self.pending.values()) + ([self.current] if self.current else []):
                job.token.cancel()


def _op_run(worker: Worker, request: dict) -> None:
    job_id = str(request.get("job_id") or "")
    try:
        spec, problem = JobSpec.from_dict(request.get("job")), None
    except MedSegAIError as e:
        spec, problem = None, str(e)
    job = _Job(job_id, spec, problem=problem)
    with worker._lock:
        worker.pending[job_id] = job
    worker.jobs.put(job)


def _op_cancel(worker: Worker, request: dict) -> None:
    job_id = str(request.get("job_id") or "")
    with worker._lock:
        job = worker.pending.get(job_id) or (worker.current if worker.current and worker.current.job_id == job_id
                                             else None)
    if job is not None:
        job.token.cancel()


def _op_ping(worker: Worker, request: dict) -> None:
    with worker._lock:
        busy = worker.current.job_id if worker.current else None
    emit("reply", request_id=request.get("request_id"), op="ping", ok=True, busy=busy,
         models=worker.predictors.describe(), pid=os.getpid(), **worker.sessions.describe())


def _op_session(worker: Worker, request: dict) -> None:
    worker.sessions.submit(request)


def _op_shutdown(worker: Worker, request: dict) -> None:
    worker.stopping.set()


HANDLERS: Dict[str, Callable[[Worker, dict], None]] = {
    "run": _op_run, "cancel": _op_cancel, "ping": _op_ping, "shutdown": _op_shutdown,
    **{op: _op_session for op in SESSION_OPS},
}


def serve(idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
          session_idle_timeout_s: float = DEFAULT_SESSION_IDLE_TIMEOUT_S) -> int:
    worker = Worker(idle_timeout_s, session_idle_timeout_s)

    def on_signal(signum, _frame):
        worker.stopping.set()
        worker.cancel_all()
        raise SystemExit(EXIT_OK)  # interrupts the stdin read below

    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, on_signal)
    runner = threading.Thread(target=worker.run_jobs, name="medsegai-jobs", daemon=True)
    runner.start()
    sessions = threading.Thread(target=worker.sessions.run, name="medsegai-sessions", daemon=True)
    sessions.start()
    threading.Thread(target=worker.heartbeat, name="medsegai-heartbeat", daemon=True).start()
    emit("ready", pid=os.getpid(), version=__version__, protocol=PROTOCOL_VERSION)
    reason = "stdin closed"
    try:
        for line in sys.stdin:
            if line.strip():
                worker.handle(line)
            if worker.stopping.is_set():
                reason = "shutdown"
                break
    except SystemExit:
        reason = "signal"
    finally:
        worker.stopping.set()
        worker.cancel_all()
        worker.jobs.put(None)
        worker.sessions.stop()
        runner.join(timeout=10.0)  # a cancelled job stops at its next tile and cleans its staging folder
        sessions.join(timeout=2.0)  # a prompt in progress is not waited for: its caller is gone
        emit("exit", reason=reason, message="The worker stops.")
    return EXIT_OK


def run_one(job_path: str) -> int:
    """One job from a file, then exit (for scripts): SIGTERM cancels it."""
    token = CancelToken()
    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, lambda *_: token.cancel())
    try:
        spec = JobSpec.read(job_path)
        emit("progress", stage="start", fraction=0.0, message="Worker started")
        emit("result", **run_job(spec, token, PredictorCache()))
        return EXIT_OK
    except BaseException as exc:  # noqa: B902 - reported as an event and an exit code
        kind, data, code = _error_event(exc)
        emit(kind, **data)
        return code


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medsegai.service.worker")
    parser.add_argument("job", nargs="?", help="run this one job file and exit")
    parser.add_argument("--serve", action="store_true", help="serve requests from stdin until it closes")
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S,
                        help="exit after this many seconds without a request (serve mode)")
    parser.add_argument("--session-idle-timeout", type=float, default=DEFAULT_SESSION_IDLE_TIMEOUT_S,
                        help="close an interactive session unused for this many seconds (serve mode)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve == bool(args.job):
        emit("error", error_type="UsageError",
             message="usage: python -m medsegai.service.worker (--serve [--idle-timeout S] | JOB.json)")
        return EXIT_ERROR
    return serve(args.idle_timeout, args.session_idle_timeout) if args.serve else run_one(args.job)


if __name__ == "__main__":
    sys.exit(main())
