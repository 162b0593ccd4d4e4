"""The job boundary between a caller (Slicer Logic, CLI, server) and the runner.

A job is a :class:`JobSpec` (a :class:`~medsegai.RunRequest` plus paths); the worker process
(``python -m medsegai.service.worker --serve``) stays between jobs with the model loaded, takes
requests on stdin and streams :mod:`events <medsegai.service.events>` as JSON lines on stdout;
:class:`WorkerProcess` starts and follows it from the caller's side, one :class:`JobHandle` per job.
"""
from .client import JobHandle, WorkerProcess, worker_command
from .events import WorkerEvent, decode_event, encode_event
from .job import JobSpec, JobSpecError

__all__ = ["JobSpec", "JobSpecError", "WorkerEvent", "encode_event", "decode_event", "WorkerProcess",
           "JobHandle", "worker_command"]
