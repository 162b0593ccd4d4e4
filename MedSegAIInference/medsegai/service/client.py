"""The caller's side of a worker process: launch, stream events, cancel, never block.

Reader threads turn stdout/stderr lines into :class:`WorkerEvent` objects on a queue; the caller
drains it with :meth:`WorkerProcess.poll` from its own loop (a Qt timer in Slicer). A cancel asks
politely (cancel file + SIGTERM) and kills the process if it has not stopped within the grace
period, so a long tile on the CPU cannot delay the cancel.
"""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .events import WorkerEvent, decode_event
from .job import JobSpec

CANCEL_GRACE_S = 1.5
# A worker that has sent its final event but is still alive after this is killed (e.g. a hung
# CUDA tear-down): its result is already on disk.
EXIT_GRACE_S = 5.0
STDERR_TAIL = 20


def _runner_root() -> str:
    """The folder that holds the ``medsegai`` package, so the worker imports this same copy."""
    return str(Path(__file__).resolve().parents[2])


def worker_command(spec_path, python: Optional[str] = None) -> List[str]:
    return [python or sys.executable, "-m", "medsegai.service.worker", str(spec_path)]


class WorkerProcess:
    def __init__(self, spec: JobSpec, spec_path, python: Optional[str] = None,
                 env: Optional[Dict[str, str]] = None):
        self.spec = spec
        self.spec_path = Path(spec_path)
        self.python = python
        self.extra_env = dict(env or {})
        self._proc: Optional[subprocess.Popen] = None
        self._queue: "queue.Queue[WorkerEvent]" = queue.Queue()
        self._readers: List[threading.Thread] = []
        self._stderr_tail: List[str] = []
        self._final: Optional[WorkerEvent] = None
        self._pending_final: Optional[WorkerEvent] = None  # received, but the process is still exiting
        self._kill_at: Optional[float] = None
        self.cancel_requested = False

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "WorkerProcess":
        self.spec.write(self.spec_path)
        env = dict(os.environ)
        env.update(self.extra_env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_runner_root(), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        kwargs = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True  # a Ctrl+C in the caller's terminal is not our cancel
        else:
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) | getattr(
                subprocess, "CREATE_NO_WINDOW", 0)
        self._proc = subprocess.Popen(
            worker_command(self.spec_path, self.python), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace", bufsize=1, env=env,
            **kwargs,
        )
        for stream, is_err in ((self._proc.stdout, False), (self._proc.stderr, True)):
            t = threading.Thread(target=self._read, args=(stream, is_err), daemon=True)
            t.start()
            self._readers.append(t)
        return self

    def _read(self, stream, is_err: bool) -> None:
        for line in stream:
            if is_err:
                text = line.rstrip("\r\n")
                self._stderr_tail = (self._stderr_tail + [text])[-STDERR_TAIL:]
                self._queue.put(WorkerEvent("log", {"level": "stderr", "message": text}))
            else:
                self._queue.put(decode_event(line))
        stream.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> Optional[int]:
        return None if self._proc is None else self._proc.poll()

    @property
    def finished(self) -> bool:
        return self._final is not None

    @property
    def final_event(self) -> Optional[WorkerEvent]:
        return self._final

    def cancel(self, grace_s: float = CANCEL_GRACE_S) -> None:
        """Ask the worker to stop; :meth:`poll` kills it if it is still alive after ``grace_s``."""
        if self._proc is None or self.cancel_requested:
            return
        self.cancel_requested = True
        if self.spec.cancel_file:
            try:
                Path(self.spec.cancel_file).touch()
            except OSError:
                pass
        if self.running:
            try:
                self._proc.terminate()  # SIGTERM: the worker turns it into a cancel token
            except OSError:
                pass
        self._kill_at = time.monotonic() + grace_s

    # -- events ---------------------------------------------------------------------------------
    def poll(self) -> List[WorkerEvent]:
        """Events since the last call; ends with exactly one final event once the worker is gone."""
        events: List[WorkerEvent] = []
        if self._kill_at is not None and self.running and time.monotonic() >= self._kill_at:
            self._proc.kill()
        while True:
            try:
                ev = self._queue.get_nowait()
            except queue.Empty:
                break
            if ev.final:
                if self._pending_final is None:
                    self._pending_final = ev
                    if self._kill_at is None or self._kill_at > time.monotonic() + EXIT_GRACE_S:
                        self._kill_at = time.monotonic() + EXIT_GRACE_S
            else:
                events.append(ev)
        if self._final is not None or self._proc is None or self._proc.poll() is None:
            return events
        # The final event is delivered only once the process has exited: "done" then means that
        # nothing of the run is still alive (its temporary files can go, a new run can start).
        if self._pending_final is not None:
            self._final = self._pending_final
        elif not any(r.is_alive() for r in self._readers) and self._queue.empty():
            self._final = self._synthesized_final()
        if self._final is not None:
            events.append(self._final)
        return events

    def _synthesized_final(self) -> WorkerEvent:
        if self.cancel_requested:
            return WorkerEvent("cancelled", {"message": "The run was cancelled."})
        tail = "\n".join(self._stderr_tail[-5:])
        return WorkerEvent("error", {
            "error_type": "WorkerCrashed",
            "message": f"The segmentation process stopped unexpectedly (exit code {self.returncode})."
                       + (f"\n{tail}" if tail else ""),
        })

    def wait(self, timeout: Optional[float] = None, on_event=None, interval: float = 0.05) -> WorkerEvent:
        """Block until the final event (for scripts and tests); ``on_event`` sees every event."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for ev in self.poll():
                if on_event is not None:
                    on_event(ev)
            if self._final is not None:
                return self._final
            if deadline is not None and time.monotonic() > deadline:
                self.cancel(grace_s=0.0)
                deadline = None
            time.sleep(interval)
