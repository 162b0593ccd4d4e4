"""``session.*`` requests answered by a MedSegAI server, in the shape of a local worker's replies.

A caller that drives interactive sessions through :class:`medsegai.service.WorkerProcess`
(``send_request`` now, ``poll_reply`` later) can be given a :class:`SessionRelay` instead and its
sessions run on the server: the same requests, the same reply fields (``ok``, ``error``,
``error_type``, ``lost``, ``region``), the prompts served in the order they were sent by one thread
so the caller's GUI never waits on the network. The image file named by ``session.image`` is read
here and uploaded, so the server never sees a client path.

Failures map onto what a worker reports: a refusal is ``ok: false`` with the server's one-line
reason and ``error_type`` (an expired session is ``UnknownSession``, so the caller opens a new one
as it does when its worker forgot an idle session); a server that cannot be reached is ``lost``,
like a worker that died, and the session is forgotten here.
"""
from __future__ import annotations

import itertools
import queue
import threading
from typing import Any, Dict, Optional, Set

from ..service.events import WorkerEvent
from .protocol import UNREACHABLE, RemoteError

_generations = itertools.count(1)


class SessionRelay:
    """Implements the part of ``WorkerProcess`` that session callers use: ``send_request``,
    ``poll_reply``, ``discard_reply``, ``generation``, ``running``, ``exit_code``."""

    def __init__(self, client):
        self.client = client  # a medsegai.remote.RemoteClient
        # Negative, so it never equals a local worker's generation: a session opened on one is
        # seen as closed on the other when the user switches between this computer and the server.
        self.generation = -next(_generations)
        self.exit_code: Optional[int] = None
        self._remote: Dict[str, str] = {}  # the caller's session id -> the server's
        self._replies: Dict[str, WorkerEvent] = {}
        self._unwanted: Set[str] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._queue: "queue.Queue[Optional[tuple]]" = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="medsegai-session-relay", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- the worker's interface -------------------------------------------------------------------
    def send_request(self, op: str, **data) -> str:
        request_id = f"relay{self.generation}-{next(self._ids)}"
        self._queue.put((request_id, op, data))
        return request_id

    def poll_reply(self, request_id: str) -> Optional[WorkerEvent]:
        with self._lock:
            return self._replies.pop(request_id, None)

    def discard_reply(self, request_id: str) -> None:
        with self._lock:
            if self._replies.pop(request_id, None) is None:
                self._unwanted.add(request_id)

    def stop(self, timeout: float = 2.0) -> None:
        """Close the server's sessions this relay opened, then end its thread; waits at most
        ``timeout`` seconds (0: not at all; the closes go on in the background, a dead server
        must not hold up the caller, and the server reaps what it cannot be told about)."""
        for local in list(self._remote):
            self._queue.put((None, "session.close", {"session_id": local}))
        self._queue.put(None)
        self._thread.join(timeout)

    # -- the thread -------------------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            request_id, op, data = item
            reply = self._answer(op, dict(data))
            if request_id is None:
                continue
            with self._lock:
                if request_id in self._unwanted:
                    self._unwanted.discard(request_id)
                else:
                    self._replies[request_id] = WorkerEvent("reply", {"request_id": request_id, **reply})

    def _answer(self, op: str, data: Dict[str, Any]) -> Dict[str, Any]:
        local = str(data.pop("session_id", ""))
        try:
            return {"ok": True, **self._forward(op, local, data)}
        except RemoteError as exc:
            if exc.error_type == UNREACHABLE:  # no answer at all: the server is down or cannot be reached
                self._remote.pop(local, None)
                return {"ok": False, "lost": True, "error_type": type(exc).__name__, "error": str(exc)}
            if exc.error_type == "UnknownSession":
                self._remote.pop(local, None)
            return {"ok": False, "error_type": exc.error_type or type(exc).__name__, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - an unreadable image file and such: the caller's message
            return {"ok": False, "error_type": type(exc).__name__, "error": str(exc).splitlines()[0] if str(exc)
                    else type(exc).__name__}

    def _forward(self, op: str, local: str, data: Dict[str, Any]) -> Dict[str, Any]:
        if op == "session.open":
            if local in self._remote:  # opening an id that exists replaces that session, as in a worker
                self._close_quietly(self._remote.pop(local))
            # The server chooses the model and device it serves; only the engine is asked for.
            reply = self.client.open_session(str(data.get("engine") or "auto"))
            self._remote[local] = reply["session_id"]
            return {"engine": reply.get("engine"), "engine_note": reply.get("engine_note")}
        remote = self._remote.get(local)
        if remote is None:
            if op == "session.close":
                return {}
            raise RemoteError("No such interactive session on the server; open a new one.", 404, "UnknownSession")
        if op == "session.close":
            del self._remote[local]
            return self.client.close_session(remote)
        if op == "session.image":
            from ..io.read import read_image

            return self.client.session_image(remote, read_image(str(data["path"])))
        if not op.startswith("session."):
            raise RemoteError(f"'{op}' is not a session request.", 400, "BadRequest")
        return self.client.session_edit(remote, op[len("session."):], **data)

    def _close_quietly(self, remote: str) -> None:
        try:
            self.client.close_session(remote)
        except RemoteError:
            pass  # the server reaps it after its lease anyway
