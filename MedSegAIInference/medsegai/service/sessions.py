"""Interactive sessions inside the worker that stays: the ``session.*`` requests.

They run on a thread of their own, one at a time and in the order they came, so a click never
waits behind a segmentation job (which has its thread) and one session's requests never overtake
each other. Every reply is a ``reply`` event with the request's ``request_id`` and ``ok``; a
changed region travels packed (:mod:`.regions`), never the whole mask.

* ``session.open`` {session_id, engine, model, device, threads}: reply {engine, engine_note}.
  Opening an id that exists replaces that session.
* ``session.image`` {session_id, path}: the image (a file the caller wrote once); sessions on
  the same file share one copy in memory. Reply {shape}.
* ``session.prompt`` {session_id, kind, positive, point | box | mask | text}: kind ``point``
  (point [k, j, i]), ``box`` (box [[k0, k1], [j0, j1], [i0, i1]], half-open), ``scribble`` or
  ``lasso`` (mask: a packed region, its offset placing it), ``text`` (text: a structure name).
* ``session.undo``, ``session.redo``, ``session.reset``, ``session.set_mask`` {mask: packed region,
  zero elsewhere}, ``session.amend`` {mask, last_step} (see InteractiveSession.amend),
  ``session.close``.

Replies to the editing requests carry ``region`` (the changed voxels' values, packed), ``can_undo``,
``can_redo`` and ``seconds`` (the session's own time). A refused request gets ``ok: false`` with
the session's one-line ``error`` and ``error_type`` (the mask and history are unchanged); an
unknown or reaped id gets ``error_type: "UnknownSession"``. A session unused for
``idle_timeout_s`` is closed (mask, history, engine and image freed).
"""
from __future__ import annotations

import gc
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

from ..errors import MedSegAIError
from . import regions

DEFAULT_SESSION_IDLE_TIMEOUT_S = 15 * 60.0
OPS = ("session.open", "session.image", "session.prompt", "session.undo", "session.redo", "session.reset",
       "session.set_mask", "session.amend", "session.close")
_REAP_EVERY_S = 5.0


class RequestError(MedSegAIError):
    """A session request that cannot be carried out; its message is the reply's ``error``."""

    def __init__(self, message: str, error_type: str = "InteractiveError"):
        super().__init__(message)
        self.error_type = error_type


@dataclass
class _Hosted:
    session: object  # medsegai.interactive.InteractiveSession
    image_key: Optional[tuple] = None
    last_used: float = field(default_factory=time.monotonic)


class SessionHost:
    """The worker's sessions, their shared images and the thread that serves them."""

    def __init__(self, emit: Callable[..., None], idle_timeout_s: float = DEFAULT_SESSION_IDLE_TIMEOUT_S):
        self.emit = emit
        self.idle_timeout_s = float(idle_timeout_s)
        self.requests: "queue.Queue[Optional[dict]]" = queue.Queue()
        self.sessions: Dict[str, _Hosted] = {}
        self.images: Dict[tuple, object] = {}  # (path, size, mtime) -> medsegai.Image, shared
        self.images_read = 0
        self.busy: Optional[str] = None  # the op being served
        self._lock = threading.Lock()

    # -- thread ---------------------------------------------------------------------------------
    def submit(self, request: dict) -> None:
        self.requests.put(request)

    def stop(self) -> None:
        self.requests.put(None)

    def run(self) -> None:
        while True:
            try:
                request = self.requests.get(timeout=min(_REAP_EVERY_S, max(self.idle_timeout_s / 2, 0.2)))
            except queue.Empty:
                self.reap()
                continue
            if request is None:
                self.close_all()
                return
            self.serve(request)
            self.reap()

    def serve(self, request: dict) -> None:
        op = str(request.get("op"))
        request_id = request.get("request_id")
        with self._lock:
            self.busy = op
        started = time.perf_counter()
        try:
            data = _HANDLERS[op](self, request)
            self.emit("reply", request_id=request_id, op=op, ok=True, seconds=time.perf_counter() - started, **data)
        except BaseException as exc:  # noqa: B902 - every failure is this request's reply
            self.emit("reply", request_id=request_id, op=op, ok=False, seconds=time.perf_counter() - started,
                      **_failure(exc))
        finally:
            with self._lock:
                self.busy = None

    def reap(self) -> None:
        now = time.monotonic()
        idle = [sid for sid, h in self.sessions.items() if now - h.last_used > self.idle_timeout_s]
        for sid in idle:
            self._drop(sid)
            self.emit("log", level="info", message=f"Interactive session {sid} was idle for "
                      f"{self.idle_timeout_s:.0f} s and was closed.")

    def close_all(self) -> None:
        for sid in list(self.sessions):
            self._drop(sid)

    def describe(self) -> dict:
        """For ``ping``: the open sessions and what they hold."""
        with self._lock:
            out = {}
            for sid, h in list(self.sessions.items()):
                s = h.session
                out[sid] = {"engine": getattr(s.engine, "name", "?"),
                            "shape": list(s.image.shape) if s.image is not None else None,
                            "history_bytes": s.history_nbytes if s.image is not None else 0,
                            "idle_s": round(time.monotonic() - h.last_used, 1)}
            return {"sessions": out, "session_images": len(self.images), "session_images_read": self.images_read,
                    "session_busy": self.busy}

    # -- bookkeeping ----------------------------------------------------------------------------
    def _hosted(self, request: dict) -> _Hosted:
        sid = _session_id(request)
        hosted = self.sessions.get(sid)
        if hosted is None:
            raise RequestError(f"No interactive session '{sid}' in this worker (closed, or idle for more than "
                               f"{self.idle_timeout_s:.0f} s); open a new one.", "UnknownSession")
        hosted.last_used = time.monotonic()
        return hosted

    def _drop(self, sid: str) -> None:
        with self._lock:
            hosted = self.sessions.pop(sid, None)
        if hosted is None:
            return
        try:
            hosted.session.close()
        finally:
            self._forget_unused_images()
            gc.collect()  # the mask, history and engine buffers go back to the system now, not later

    def _forget_unused_images(self) -> None:
        used = {h.image_key for h in self.sessions.values()}
        for key in [k for k in self.images if k not in used]:
            del self.images[key]

    def _image(self, path: str):
        from ..io.read import read_image

        try:
            st = os.stat(path)
        except OSError:
            raise RequestError(f"The image file {path} does not exist.") from None
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
        if key not in self.images:
            self.images[key] = read_image(path)
            self.images_read += 1
        return key, self.images[key]


def _session_id(request: dict) -> str:
    sid = request.get("session_id")
    if not isinstance(sid, str) or not sid:
        raise RequestError("A session request needs a session_id (a non-empty string).", "BadRequest")
    return sid


def _failure(exc: BaseException) -> dict:
    if isinstance(exc, RequestError):
        return {"error_type": exc.error_type, "error": str(exc)}
    if isinstance(exc, regions.RegionFormatError):
        return {"error_type": "BadRequest", "error": f"Malformed request: {exc}."}
    if isinstance(exc, MedSegAIError):
        return {"error_type": type(exc).__name__, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    if isinstance(exc, MemoryError):
        return {"error_type": "MemoryError", "error": "The computer ran out of memory in the interactive session."}
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)  # for the log only
    return {"error_type": type(exc).__name__, "error": f"Unexpected error: {type(exc).__name__}: {exc}"}


def _edited(session, region) -> dict:
    return {"region": regions.encode_region(session.mask, region), "can_undo": session.can_undo,
            "can_redo": session.can_redo}


def _decoded_mask(request: dict, what: str):
    if "mask" not in request:
        raise RequestError(f"A {what} request needs a mask (a packed region).", "BadRequest")
    return regions.decode(request["mask"])


# -- handlers ---------------------------------------------------------------------------------------
def _open(host: SessionHost, request: dict) -> dict:
    from ..interactive import InteractiveSession

    sid = _session_id(request)
    threads = request.get("threads")
    session = InteractiveSession(engine=request.get("engine") or "auto", model=request.get("model"),
                                 device=request.get("device") or "auto",
                                 threads=int(threads) if threads is not None else None)
    host._drop(sid)
    with host._lock:
        host.sessions[sid] = _Hosted(session)
    return {"session_id": sid, "engine": getattr(session.engine, "name", "?"), "engine_note": session.engine_note}


def _image(host: SessionHost, request: dict) -> dict:
    hosted = host._hosted(request)
    path = request.get("path")
    if not isinstance(path, str) or not path:
        raise RequestError("session.image needs the path of the image file.", "BadRequest")
    key, image = host._image(path)
    hosted.session.set_image(image)
    hosted.image_key = key
    host._forget_unused_images()
    return {"shape": list(image.shape)}


def _prompt(host: SessionHost, request: dict) -> dict:
    session = host._hosted(request).session
    kind = request.get("kind")
    positive = request.get("positive", True)
    if kind == "point":
        region = session.add_point(request.get("point"), positive)
    elif kind == "box":
        region = session.add_box(request.get("box"), positive)
    elif kind in ("scribble", "lasso"):
        crop, offset = _decoded_mask(request, kind)
        region = (session.add_scribble if kind == "scribble" else session.add_lasso)(crop, positive, offset=offset)
    elif kind == "text":
        region = session.add_text(request.get("text"))
        return {**_edited(session, region), "text_structures": list(session.text_structures),
                "text_warnings": list(session.text_warnings)}
    else:
        raise RequestError(f"Unknown prompt kind {kind!r}; known: point, box, scribble, lasso, text.", "BadRequest")
    return _edited(session, region)


def _full_mask(session, request: dict, what: str):
    import numpy as np

    if session.image is None:
        raise RequestError("No image yet: send session.image before masks.")
    crop, offset = _decoded_mask(request, what)
    mask = np.zeros(session.image.shape, np.uint8)
    if crop.size:
        box = regions.region_of(crop, offset)
        if any(s.stop > n for s, n in zip(box, mask.shape)):
            raise RequestError(f"The mask at offset {offset} with shape {crop.shape} is outside the image "
                               f"{session.image.shape}.")
        mask[box] = crop
    return mask


def _set_mask(host: SessionHost, request: dict) -> dict:
    session = host._hosted(request).session
    return _edited(session, session.set_mask(_full_mask(session, request, "session.set_mask")))


def _amend(host: SessionHost, request: dict) -> dict:
    session = host._hosted(request).session
    crop, offset = _decoded_mask(request, "session.amend")
    if crop.size == 0:
        return _edited(session, regions.EMPTY)
    return _edited(session, session.amend(crop, offset, last_step=bool(request.get("last_step"))))


def _history(name: str):
    def handler(host: SessionHost, request: dict) -> dict:
        session = host._hosted(request).session
        return _edited(session, getattr(session, name)())
    return handler


def _close(host: SessionHost, request: dict) -> dict:
    sid = _session_id(request)
    existed = sid in host.sessions
    host._drop(sid)
    return {"session_id": sid, "closed": existed}


_HANDLERS = {
    "session.open": _open, "session.image": _image, "session.prompt": _prompt, "session.undo": _history("undo"),
    "session.redo": _history("redo"), "session.reset": _history("reset"), "session.set_mask": _set_mask,
    "session.amend": _amend, "session.close": _close,
}
