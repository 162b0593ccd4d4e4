"""One runner session in the worker that stays, seen from Slicer's GUI thread: requests go out at
once and replies are collected later, so the GUI never waits on the worker.

The worker serves one session's requests in the order they came (``medsegai.service.sessions``),
so "open, image, set_mask, prompt" can leave together and only the prompt's reply is waited for;
the replies before it are in by then and are checked at that moment. The session lives in one
worker process (one of its *generations*); when that process dies, or forgets the session after
an idle time, the next prompt opens a new one from the segment as it is then.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from medsegai.service import WorkerProcess
from medsegai.service import regions

_ids = itertools.count(1)


@dataclass
class Check:
    """A reply nobody waits for, looked at when the next awaited reply is in."""
    request_id: str
    op: str
    on_reply: Optional[Callable[[dict], None]] = None


@dataclass
class Reply:
    op: str
    data: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.data.get("ok"))

    @property
    def lost(self) -> bool:
        return bool(self.data.get("lost"))

    @property
    def error(self) -> str:
        return str(self.data.get("error") or "The interactive session failed.")

    @property
    def error_type(self) -> str:
        return str(self.data.get("error_type") or "")

    def region(self):
        """(values uint8 [k, j, i], region slices) of the voxels the request changed."""
        values, offset = regions.decode(self.data.get("region"))
        return values, regions.region_of(values, offset)


class RunnerSession:
    """``session.*`` requests of one session id, and whether the worker still holds it."""

    def __init__(self, worker: Callable[[], WorkerProcess], *, engine="auto", model=None, device="auto",
                 threads=None):
        self._worker = worker
        self.options = {"engine": engine, "model": None if model is None else str(model), "device": device,
                        "threads": threads}
        self.session_id = f"slicer-{os.getpid()}-{next(_ids)}"
        self.generation = 0  # counts opens: a history step remembers the one that holds its runner step
        self.open_in: Optional[int] = None  # the worker generation holding the session; None: not open
        self.engine_name: Optional[str] = None
        self.engine_note: Optional[str] = None
        self.problem: Optional[Reply] = None  # a failed request nobody waited for (open, image, amend, ...)
        self._checks: List[Check] = []
        # request id -> the worker it went to: the user may switch between this computer and a server
        # (another worker object) while a reply is on its way, and it comes back from where it was sent.
        self._sent_to: Dict[str, object] = {}

    @property
    def worker(self) -> WorkerProcess:
        return self._worker()

    # -- state ----------------------------------------------------------------------------------
    def state(self) -> str:
        """``open``; ``closed`` (never opened, closed, or its worker was replaced or stopped normally);
        ``crashed`` (the worker holding it died)."""
        if self.open_in is None:
            return "closed"
        worker = self.worker
        if worker.generation != self.open_in:
            return "closed"
        if worker.running:
            return "open"
        return "crashed" if worker.exit_code not in (0, None) else "closed"

    def forget(self) -> None:
        """The worker no longer holds this session (it died, or it said so)."""
        self.open_in = None
        for check in self._checks:
            self._sent_to.pop(check.request_id, None)
        self._checks.clear()

    # -- requests -------------------------------------------------------------------------------
    def send(self, op: str, **data) -> str:
        worker = self.worker
        request_id = worker.send_request(op, session_id=self.session_id, **data)
        self._sent_to[request_id] = worker
        return request_id

    def _reply(self, request_id: str):
        event = self._sent_to.get(request_id, self.worker).poll_reply(request_id)
        if event is not None:
            self._sent_to.pop(request_id, None)
        return event

    def discard(self, request_id: str) -> None:
        """Nobody will collect this reply."""
        self._sent_to.pop(request_id, self.worker).discard_reply(request_id)

    def fire(self, op: str, on_reply: Optional[Callable[[dict], None]] = None, **data) -> str:
        """Send a request whose reply is only checked later (see :meth:`collect`)."""
        request_id = self.send(op, **data)
        self._checks.append(Check(request_id, op, on_reply))
        return request_id

    def open(self, image_path: str, initial_mask=None) -> None:
        """Open (or re-open) the session, give it the image and the segment it starts from; nothing is waited for."""
        self._checks.clear()
        self.problem = None
        self.fire("session.open", self._opened, **self.options)
        self.open_in = self.worker.generation  # the worker was started by that send if it was not running
        self.generation += 1
        self.fire("session.image", path=str(image_path))
        if initial_mask is not None:
            crop, offset = initial_mask
            self.fire("session.set_mask", mask=regions.encode(crop, offset))

    def _opened(self, data: dict) -> None:
        self.engine_name, self.engine_note = data.get("engine"), data.get("engine_note")

    def poll(self, request_id: str, op: str) -> Optional[Reply]:
        event = self._reply(request_id)
        return None if event is None else Reply(op, dict(event.data))

    def collect(self) -> None:
        """Look at the replies of fired requests that are in; the first failure is kept in :attr:`problem`."""
        keep = []
        for check in self._checks:
            event = self._reply(check.request_id)
            if event is None:
                keep.append(check)
                continue
            reply = Reply(check.op, dict(event.data))
            if reply.ok:
                if check.on_reply is not None:
                    check.on_reply(reply.data)
            elif self.problem is None:
                self.problem = reply
        self._checks = keep

    @property
    def checks_pending(self) -> int:
        return len(self._checks)

    def close(self) -> None:
        """Free the session in the worker (the reply is not waited for)."""
        if self.state() == "open":
            self.discard(self.send("session.close"))
        for check in self._checks:
            self.discard(check.request_id)
        self.forget()
