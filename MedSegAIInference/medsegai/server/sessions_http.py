"""Interactive sessions over HTTP: the worker's :class:`~medsegai.service.sessions.SessionHost`, reused.

The host serves requests on its own thread, one at a time (one engine busy at a time, like
nnInteractive's GPU lock), reaps sessions idle past their lease and packs each reply's changed
region (:mod:`medsegai.service.regions`). Here each HTTP request becomes a host request and
waits for its reply. Session ids are random and belong to the user who opened them; clients name
an engine, never a model path on the server.
"""
from __future__ import annotations

import secrets
import shutil
import threading
from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import MedSegAIError
from ..remote.payload import unpack_image
from ..service.sessions import SessionHost
from .config import ServerConfig
from .logs import log

ENGINES = ("auto", "classical", "nninteractive", "clicks")
EDIT_OPS = ("prompt", "undo", "redo", "reset", "set_mask", "amend")
REPLY_TIMEOUT_S = 600.0


class SessionError(MedSegAIError):
    def __init__(self, message: str, status: int = 400, error_type: str = "InteractiveError",
                 retry_after_s: Optional[float] = None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.retry_after_s = retry_after_s


class HttpSessions:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.folder = config.work_dir / "sessions"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.owners: Dict[str, str] = {}
        self._waiting: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self.host = SessionHost(self._emit, config.session_idle_s)
        self.thread = threading.Thread(target=self.host.run, name="medsegai-sessions", daemon=True)
        self.thread.start()

    def _emit(self, kind: str, **data) -> None:
        if kind == "reply":
            with self._lock:
                slot = self._waiting.get(data.get("request_id"))
            if slot is not None:
                slot["reply"] = data
                slot["event"].set()
        else:
            message = str(data.get("message", ""))
            log("session " + message if message else "session event", session_event=kind)
            self._forget_reaped()

    def _forget_reaped(self) -> None:
        with self._lock:
            gone = [sid for sid in self.owners if sid not in self.host.sessions]
            for sid in gone:
                del self.owners[sid]
        for sid in gone:
            (self.folder / f"{sid}.mha").unlink(missing_ok=True)

    def _ask(self, op: str, **data) -> Dict[str, Any]:
        request_id = secrets.token_hex(8)
        slot = {"event": threading.Event(), "reply": None}
        with self._lock:
            self._waiting[request_id] = slot
        try:
            self.host.submit({"op": op, "request_id": request_id, **data})
            if not slot["event"].wait(REPLY_TIMEOUT_S):
                raise SessionError("The interactive engine did not answer in time.", 504, "Timeout")
            reply = dict(slot["reply"])
        finally:
            with self._lock:
                self._waiting.pop(request_id, None)
        if not reply.pop("ok", False):
            error_type = reply.get("error_type", "InteractiveError")
            status = 404 if error_type == "UnknownSession" else 400
            message = str(reply.get("error", "The request failed."))
            if error_type == "UnknownSession":
                self._forget_reaped()
                message = (f"No such interactive session (closed, or idle for more than "
                           f"{self.config.session_idle_s:.0f} s); open a new one.")
            raise SessionError(message.replace(str(self.folder), "<server>"), status, error_type)
        reply.pop("request_id", None)
        return reply

    # -- requests -------------------------------------------------------------------------------
    def open(self, owner: str, engine: str) -> Dict[str, Any]:
        if engine not in ENGINES:
            raise SessionError(f"Unknown engine {engine!r} (use {', '.join(ENGINES)}).", 400, "BadRequest")
        self._forget_reaped()
        with self._lock:
            if len(self.owners) >= self.config.max_sessions:
                raise SessionError(f"All {self.config.max_sessions} interactive sessions are in use; try again "
                                   f"later.", 503, "Busy", retry_after_s=max(5.0, min(60.0, self.config.session_idle_s)))
            sid = secrets.token_urlsafe(16)
            self.owners[sid] = owner  # reserved now, so two opens cannot both take the last place
        engine = self.config.interactive_engine if engine == "auto" else engine
        try:
            reply = self._ask("session.open", session_id=sid, engine=engine, model=self.config.interactive_model,
                              device=self.config.devices[0] if self.config.devices else "auto",
                              threads=self.config.threads)
        except BaseException:
            with self._lock:
                self.owners.pop(sid, None)
            raise
        log("session opened", session_id=sid, user=owner, engine=reply.get("engine"))
        return {**reply, "session_id": sid, "lease_s": self.config.session_idle_s}

    def _check_owner(self, sid: str, owner: str) -> None:
        with self._lock:
            known = self.owners.get(sid)
        if known != owner:
            raise SessionError("No such interactive session (closed, or idle past its lease); open a new one.",
                               404, "UnknownSession")

    def set_image(self, sid: str, owner: str, upload: Path) -> Dict[str, Any]:
        from ..io.write import write_image

        self._check_owner(sid, owner)
        try:
            image, _meta = unpack_image(upload, self.config.max_voxels)
        finally:
            upload.unlink(missing_ok=True)
        # MetaImage keeps the float64 geometry exactly (NIfTI would round it to float32).
        path = write_image(image, self.folder / f"{sid}.mha", compress=False)
        return self._ask("session.image", session_id=sid, path=str(path))

    def edit(self, sid: str, owner: str, op: str, data: Dict[str, Any]) -> Dict[str, Any]:
        if op not in EDIT_OPS:
            raise SessionError(f"Unknown session request {op!r} (use {', '.join(EDIT_OPS)}).", 404, "BadRequest")
        self._check_owner(sid, owner)
        data = {k: v for k, v in data.items() if k not in ("op", "request_id", "session_id", "path")}
        return self._ask(f"session.{op}", session_id=sid, **data)

    def close(self, sid: str, owner: str) -> Dict[str, Any]:
        self._check_owner(sid, owner)
        reply = self._ask("session.close", session_id=sid)
        with self._lock:
            self.owners.pop(sid, None)
        (self.folder / f"{sid}.mha").unlink(missing_ok=True)
        log("session closed", session_id=sid, user=owner)
        return reply

    def count(self) -> int:
        self._forget_reaped()
        return len(self.owners)

    def shutdown(self) -> None:
        self.host.stop()
        self.thread.join(timeout=5.0)
        shutil.rmtree(self.folder, ignore_errors=True)
