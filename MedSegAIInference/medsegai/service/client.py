"""The caller's side of the worker that stays: submit jobs, stream their events, cancel, never block.

:class:`WorkerProcess` starts ``python -m medsegai.service.worker --serve`` on the first job and
keeps it for the next ones (the model stays loaded there). Reader threads turn its stdout into
:class:`WorkerEvent` objects; the caller drains them with :meth:`JobHandle.poll` from its own
loop (a Qt timer in Slicer), which routes each event to its job. A cancel asks the worker to stop
the job and kills the worker if the job has not ended within the grace period, so a long tile on
the CPU cannot delay it. A worker that dies or stops sending heartbeats ends its jobs with a
clear error; the next job starts a new worker.

Requests that get a ``reply`` (``ping``, the ``session.*`` requests) have a non-blocking form for
the GUI: :meth:`WorkerProcess.send_request` returns the request id at once and
:meth:`WorkerProcess.poll_reply` returns the reply once it is there; a request whose worker died
gets a reply too (``ok: false``, ``lost: true`` and the crash message), so nothing waits forever.
:meth:`WorkerProcess.request` is the blocking form.
"""
from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .events import WorkerEvent, decode_event
from .job import JobSpec

CANCEL_GRACE_S = 1.5
# Heartbeats come every 2 s, also while a job computes; this much silence means a hung worker.
HEARTBEAT_TIMEOUT_S = 30.0
STDERR_TAIL = 20
_ids = itertools.count(1)


def _runner_root() -> str:
    """The folder that holds the ``medsegai`` package, so the worker imports this same copy."""
    return str(Path(__file__).resolve().parents[2])


def worker_command(python: Optional[str] = None, idle_timeout_s: Optional[float] = None,
                   session_idle_timeout_s: Optional[float] = None) -> List[str]:
    cmd = [python or sys.executable, "-m", "medsegai.service.worker", "--serve"]
    if idle_timeout_s is not None:
        cmd += ["--idle-timeout", str(idle_timeout_s)]
    if session_idle_timeout_s is not None:
        cmd += ["--session-idle-timeout", str(session_idle_timeout_s)]
    return cmd


class _Process:
    """One generation of the worker: the OS process, its pipes and its event queue."""

    def __init__(self, command: List[str], env: Dict[str, str]):
        kwargs = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True  # a Ctrl+C in the caller's terminal is not our cancel
        else:
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) | getattr(
                subprocess, "CREATE_NO_WINDOW", 0)
        self.popen = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            encoding="utf-8", errors="replace", bufsize=1, env=env, **kwargs)
        self.events: "queue.Queue[WorkerEvent]" = queue.Queue()
        self.stderr_tail: List[str] = []
        self.last_heard = time.monotonic()
        self.broken = False
        self.hung = False  # killed for sending no heartbeat
        self.readers = [threading.Thread(target=self._read, args=(s, e), daemon=True)
                        for s, e in ((self.popen.stdout, False), (self.popen.stderr, True))]
        for r in self.readers:
            r.start()

    def _read(self, stream, is_err: bool) -> None:
        for line in stream:
            self.last_heard = time.monotonic()
            if is_err:
                text = line.rstrip("\r\n")
                self.stderr_tail = (self.stderr_tail + [text])[-STDERR_TAIL:]
                self.events.put(WorkerEvent("log", {"level": "stderr", "message": text}))
            else:
                self.events.put(decode_event(line))
        stream.close()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def drained(self) -> bool:
        """Exited, and every line it wrote has been read."""
        return not self.alive and not any(r.is_alive() for r in self.readers) and self.events.empty()

    def send(self, request: dict) -> bool:
        if self.broken or not self.alive:
            return False
        try:
            self.popen.stdin.write(json.dumps(request) + "\n")
            self.popen.stdin.flush()
            return True
        except (OSError, ValueError):  # the worker died: its pipe is closed
            self.broken = True
            return False

    def kill(self) -> None:
        if self.alive:
            try:
                self.popen.kill()
            except OSError:
                pass


class JobHandle:
    """One submitted job: its events, its cancel and its one final event."""

    def __init__(self, worker: "WorkerProcess", process: _Process, job_id: str, spec: JobSpec):
        self.worker = worker
        self.process = process
        self.job_id = job_id
        self.spec = spec
        self.events: List[WorkerEvent] = []
        self.final_event: Optional[WorkerEvent] = None
        self.cancel_requested = False
        self.kill_at: Optional[float] = None

    @property
    def finished(self) -> bool:
        return self.final_event is not None

    def poll(self) -> List[WorkerEvent]:
        """Events since the last call; the last one is the final event once the job has ended."""
        self.worker.poll()
        out, self.events = self.events, []
        return out

    def cancel(self, grace_s: float = CANCEL_GRACE_S) -> None:
        """Ask the worker to stop this job; :meth:`poll` kills the worker if it has not within ``grace_s``."""
        if self.finished or self.cancel_requested:
            return
        self.cancel_requested = True
        self.process.send({"op": "cancel", "job_id": self.job_id})
        self.kill_at = time.monotonic() + grace_s
        self.worker.poll()

    def wait(self, timeout: Optional[float] = None, on_event: Optional[Callable[[WorkerEvent], None]] = None,
             interval: float = 0.05) -> WorkerEvent:
        """Block until the final event (for scripts and tests); ``on_event`` sees every event.
        Past ``timeout`` the job is cancelled (and its worker killed) and the wait goes on for the end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for ev in self.poll():
                if on_event is not None:
                    on_event(ev)
            if self.final_event is not None:
                return self.final_event
            if deadline is not None and time.monotonic() > deadline:
                self.cancel(grace_s=0.0)
                deadline = None
            time.sleep(interval)

    def _finish(self, event: WorkerEvent) -> None:
        if self.final_event is None:
            self.final_event = event
            self.events.append(event)


class WorkerProcess:
    """The worker that stays, seen from the caller; safe to use from one thread (the GUI's)."""

    def __init__(self, python: Optional[str] = None, env: Optional[Dict[str, str]] = None,
                 idle_timeout_s: Optional[float] = None, heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S,
                 session_idle_timeout_s: Optional[float] = None):
        self.python = python
        self.extra_env = dict(env or {})
        self.idle_timeout_s = idle_timeout_s
        self.session_idle_timeout_s = session_idle_timeout_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self._process: Optional[_Process] = None
        self._jobs: Dict[str, JobHandle] = {}
        self.info: Dict[str, object] = {}  # the worker's "ready" event: pid, version, protocol
        self.replies: Dict[str, WorkerEvent] = {}
        self._awaiting: Dict[str, _Process] = {}  # request id -> the worker it was sent to, until its reply
        self._unwanted: set = set()  # ids whose replies nobody will collect
        self.log: List[str] = []
        self.starts = 0  # how many worker processes were started (tests, benchmarks)

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process is not None and self._process.alive

    @property
    def pid(self) -> Optional[int]:
        return self._process.popen.pid if self.running else None

    @property
    def generation(self) -> int:
        """Which worker process this is (1 for the first); state kept in a worker (sessions, the loaded
        model) belongs to one generation."""
        return self.starts

    @property
    def exit_code(self) -> Optional[int]:
        """The exit code of the last worker once it stopped; None while it runs or before the first."""
        return None if self._process is None else self._process.popen.poll()

    def start(self) -> "WorkerProcess":
        if self.running and not self._process.broken:
            return self
        if self._process is not None:
            self._retire(self._process)
        env = dict(os.environ)
        env.update(self.extra_env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_runner_root(), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        self._process = _Process(worker_command(self.python, self.idle_timeout_s, self.session_idle_timeout_s), env)
        self.info = {}
        self.starts += 1
        return self

    def _retire(self, proc: _Process) -> None:
        """Before a new worker replaces ``proc`` (dead, or alive with a broken pipe): whatever it still
        owed its jobs and requests ends now, with its crash message."""
        proc.kill()
        deadline = time.monotonic() + 1.0
        while not proc.drained and time.monotonic() < deadline:
            time.sleep(0.01)
        self.poll()  # routes its last events; ends its jobs and requests once drained
        for job in [j for j in self._jobs.values() if j.process is proc and not j.finished]:
            job._finish(self._lost(job, proc))
        self._jobs = {k: j for k, j in self._jobs.items() if not j.finished}
        self._fail_awaiting(proc)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the worker (cancelling its job); killed if it has not exited within ``timeout``."""
        proc = self._process
        if proc is None:
            return
        proc.send({"op": "shutdown"})
        try:
            proc.popen.stdin.close()
        except OSError:
            pass
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.popen.wait(timeout=timeout)
        deadline = time.monotonic() + 1.0
        while not proc.drained and time.monotonic() < deadline:
            time.sleep(0.01)
        self.poll()
        self._fail_awaiting(proc)
        self._process = None

    # -- requests -------------------------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> JobHandle:
        spec.validate()
        if not self.running or self._process.broken:
            self.start()
        job_id = f"job-{os.getpid()}-{next(_ids)}"
        job = JobHandle(self, self._process, job_id, spec)
        self._jobs[job_id] = job
        if not self._process.send({"op": "run", "job_id": job_id, "job": spec.to_dict()}):
            self.poll()  # the worker died at once: the job ends with the crash message
        return job

    def send_request(self, op: str, **data) -> str:
        """Send a request that gets a ``reply``; returns its request id at once (a worker that is not
        running, or whose pipe broke, is started first). Collect the reply with :meth:`poll_reply`."""
        if not self.running or self._process.broken:
            self.start()
        request_id = f"req-{os.getpid()}-{next(_ids)}"
        self._awaiting[request_id] = self._process
        if not self._process.send({"op": op, "request_id": request_id, **data}):
            self.poll()  # the worker died at once: the reply says so once its pipes are drained
        return request_id

    def poll_reply(self, request_id: str) -> Optional[WorkerEvent]:
        """The reply to ``request_id`` once it has come (then forgotten here), else None. The worker
        dying or hanging is a reply too: ``ok`` false, ``lost`` true, ``error`` saying what happened."""
        self.poll()
        return self.replies.pop(request_id, None)

    def discard_reply(self, request_id: str) -> None:
        """Nobody will collect this reply: drop it when it comes (a failed one goes to :attr:`log`)."""
        if self.replies.pop(request_id, None) is None and request_id in self._awaiting:
            self._unwanted.add(request_id)

    def request(self, op: str, timeout: float = 10.0, **data) -> WorkerEvent:
        """A request that gets a ``reply`` (``ping``, ``session.*``); blocks until it comes. A worker
        that stops first raises ConnectionError; past ``timeout``, TimeoutError."""
        request_id = self.send_request(op, **data)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.poll_reply(request_id)
            if reply is not None:
                if reply.get("lost"):
                    raise ConnectionError(reply.get("error"))
                return reply
            if time.monotonic() > deadline:
                self.discard_reply(request_id)
                raise TimeoutError(f"The worker did not answer '{op}' within {timeout:.0f} s.")
            time.sleep(0.005)

    # -- events ---------------------------------------------------------------------------------------
    def poll(self) -> None:
        """Route the worker's events to their jobs; end the jobs of a dead, hung or killed worker."""
        proc = self._process
        if proc is None:
            return
        now = time.monotonic()
        for job in self._jobs.values():
            if job.kill_at is not None and now >= job.kill_at and not job.finished:
                proc.kill()  # the job did not stop in time; the next job starts a new worker
        if proc.alive and now - proc.last_heard > self.heartbeat_timeout_s:
            self.log.append(f"The worker sent nothing for {self.heartbeat_timeout_s:.0f} s; it was stopped.")
            proc.kill()
            proc.hung = True
        while True:
            try:
                ev = proc.events.get_nowait()
            except queue.Empty:
                break
            self._route(ev)
        if proc.drained:
            for job in list(self._jobs.values()):
                if job.process is proc and not job.finished:
                    job._finish(self._lost(job, proc))
            self._jobs = {k: j for k, j in self._jobs.items() if not j.finished}
            self._fail_awaiting(proc)

    def _fail_awaiting(self, proc: _Process) -> None:
        """Requests the stopped worker ``proc`` never answered get a reply saying so."""
        for request_id in [r for r, p in self._awaiting.items() if p is proc]:
            del self._awaiting[request_id]
            if request_id in self._unwanted:
                self._unwanted.discard(request_id)
                continue
            self.replies[request_id] = WorkerEvent("reply", {
                "request_id": request_id, "ok": False, "lost": True, "error_type": self._lost_kind(proc),
                "error": self._lost_message(proc)})

    def _route(self, ev: WorkerEvent) -> None:
        job = self._jobs.get(ev.get("job_id")) if ev.get("job_id") else None
        if job is not None:
            if ev.final:
                job._finish(ev)
                del self._jobs[job.job_id]
            else:
                job.events.append(ev)
        elif ev.kind == "ready":
            self.info = dict(ev.data)
        elif ev.kind == "reply":
            request_id = str(ev.get("request_id"))
            self._awaiting.pop(request_id, None)
            if request_id in self._unwanted:
                self._unwanted.discard(request_id)
                if not ev.get("ok", True):
                    self.log.append(f"{ev.get('op')}: {ev.get('error')}")
            else:
                self.replies[request_id] = ev
        elif ev.kind == "log":
            self.log.append(str(ev.get("message", "")))
            self.log = self.log[-200:]
            for j in self._jobs.values():  # a library's output during a job belongs to that job's log
                j.events.append(ev)

    def _lost(self, job: JobHandle, proc: _Process) -> WorkerEvent:
        if job.cancel_requested:
            return WorkerEvent("cancelled", {"message": "The run was cancelled."})
        if proc.hung:
            return WorkerEvent("error", {"error_type": "WorkerHung", "message": (
                f"The segmentation process stopped responding for {self.heartbeat_timeout_s:.0f} s and was "
                "stopped. Run again to start a new one.")})
        tail = "\n".join(proc.stderr_tail[-5:])
        return WorkerEvent("error", {"error_type": "WorkerCrashed", "message": (
            f"The segmentation process stopped unexpectedly (exit code {proc.popen.returncode}). "
            "Run again to start a new one." + (f"\n{tail}" if tail else ""))})

    @staticmethod
    def _lost_kind(proc: _Process) -> str:
        if proc.hung:
            return "WorkerHung"
        return "WorkerStopped" if proc.popen.returncode == 0 else "WorkerCrashed"

    def _lost_message(self, proc: _Process) -> str:
        """One line, for a request its worker never answered."""
        if proc.hung:
            return (f"The segmentation process stopped responding for {self.heartbeat_timeout_s:.0f} s and was "
                    "stopped.")
        code = proc.popen.returncode
        if code == 0:
            return "The segmentation process had stopped (it was shut down or idle) before it answered."
        return f"The segmentation process stopped unexpectedly (exit code {code})."

