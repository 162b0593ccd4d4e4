"""The job boundary between a caller (Slicer Logic, CLI, server) and the runner.

A job is a JSON file (:class:`JobSpec`); ``python -m medsegai.service.worker JOB.json`` runs it
in its own process and streams :mod:`events <medsegai.service.events>` as JSON lines on stdout;
:class:`WorkerProcess` launches and follows such a process from the caller's side.
"""
from .client import WorkerProcess, worker_command
from .events import WorkerEvent, decode_event, encode_event
from .job import JobSpec, JobSpecError

__all__ = ["JobSpec", "JobSpecError", "WorkerEvent", "encode_event", "decode_event", "WorkerProcess",
           "worker_command"]
