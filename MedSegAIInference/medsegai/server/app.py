"""The HTTP routes. Every reply is JSON (or a stream, or the result zip); every error is one line.

* ``GET /healthz`` (no auth), ``GET /v1/info``
* ``POST /v1/jobs`` (body: an image package, :mod:`medsegai.remote.payload`) -> 202 {job_id};
  ``GET /v1/jobs/{id}``, ``GET /v1/jobs/{id}/events`` (server-sent events),
  ``DELETE /v1/jobs/{id}`` (cancel), ``GET /v1/jobs/{id}/result`` (zip; SHA256 in a header)
* ``POST /v1/sessions`` {engine} -> {session_id, lease_s}; ``PUT /v1/sessions/{id}/image``;
  ``POST /v1/sessions/{id}/{prompt|undo|redo|reset|set_mask|amend}``; ``DELETE /v1/sessions/{id}``

A full queue is 429 and a full session table 503, both with ``Retry-After``. Tracebacks go to the
server's log with the request id; a client gets a sentence and that id.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Dict, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import MedSegAIError
from ..remote.payload import check_upload
from ..remote.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, SHA256_HEADER, OutputOptions
from ..run_request import RunRequest
from .config import ServerConfig
from .jobs import JobManager, QueueFullError
from .logs import log
from .sessions_http import HttpSessions, SessionError

MAX_JSON_BYTES = 64 << 20
KEEPALIVE_S = 2.0
_CHUNK_FLUSH = 8 << 20


class ApiError(Exception):
    def __init__(self, status: int, message: str, error_type: str = "BadRequest",
                 headers: Optional[Dict[str, str]] = None, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type
        self.headers = headers or {}
        self.extra = extra


def _error(status: int, message: str, error_type: str, headers=None, **extra) -> JSONResponse:
    return JSONResponse({"error": message, "error_type": error_type, **extra}, status_code=status, headers=headers)


def create_app(config: ServerConfig) -> FastAPI:
    state: Dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app):
        state["jobs"] = JobManager(config)
        state["sessions"] = HttpSessions(config)
        log("server ready", version=__version__, protocol=PROTOCOL_VERSION, devices=state["jobs"].stats()["devices"],
            auth=config.tokens.enabled)
        try:
            yield
        finally:
            state["jobs"].shutdown()
            state["sessions"].shutdown()
            log("server stopped")

    app = FastAPI(title="MedSegAI", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)

    # -- errors: one line each, never a traceback or a path ---------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return _error(exc.status, exc.message, exc.error_type, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"Malformed request: {where or 'body'}: {first.get('msg', 'invalid')}.", "BadRequest")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), "HTTPError")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        rid = getattr(request.state, "request_id", "?")
        log("request crashed", logging.ERROR, exc_info=(type(exc), exc, exc.__traceback__), request_id=rid,
            path=request.url.path)
        return _error(500, f"The server failed unexpectedly (request {rid}); its log has the details.", "InternalError")

    @app.middleware("http")
    async def _log_requests(request: Request, call_next):
        request.state.request_id = rid = secrets.token_hex(6)
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > config.max_upload_bytes):
            response = _error(413, f"The request is larger than this server accepts "
                                   f"({config.max_upload_bytes} bytes).", "TooLarge")
        else:
            try:
                response = await call_next(request)
            except Exception as exc:  # noqa: BLE001 - answered as a 500, logged with the request id
                response = await _unexpected(request, exc)
        log("request", request_id=rid, method=request.method, path=_route(request), status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
            client=request.client.host if request.client else None)
        return response

    # -- helpers ---------------------------------------------------------------------------------
    def user(request: Request) -> str:
        if not config.tokens.enabled:
            return "local"
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        name = config.tokens.user_for(presented.strip()) if scheme.lower() == "bearer" else None
        if name is None:
            log("auth refused", logging.WARNING, path=request.url.path,
                client=request.client.host if request.client else None, reason="missing" if not header else "wrong")
            raise ApiError(401, "A valid token is needed (Authorization: Bearer TOKEN; medsegai --token).",
                           "Unauthorized", {"WWW-Authenticate": "Bearer"})
        return name

    def protocol(request: Request) -> None:
        sent = request.headers.get(PROTOCOL_HEADER)
        if sent != str(PROTOCOL_VERSION):
            raise ApiError(409, f"This server speaks MedSegAI protocol {PROTOCOL_VERSION}, the client "
                                f"{sent or 'did not say'}; install the same MedSegAI version on both.",
                           "ProtocolMismatch", server_protocol=PROTOCOL_VERSION, client_protocol=sent)

    async def receive_file(request: Request, target: Path) -> int:
        size = 0
        buffer = bytearray()
        with open(target, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > config.max_upload_bytes:
                    raise ApiError(413, f"The upload is larger than this server accepts ({config.max_upload_bytes} "
                                        f"bytes).", "TooLarge")
                buffer += chunk
                if len(buffer) >= _CHUNK_FLUSH:
                    await run_in_threadpool(fh.write, bytes(buffer))
                    buffer.clear()
            fh.write(buffer)
        if size == 0:
            raise ApiError(400, "The request has no image in its body.")
        return size

    async def read_json(request: Request) -> Dict[str, Any]:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_JSON_BYTES:
                raise ApiError(413, f"The request is larger than {MAX_JSON_BYTES} bytes.", "TooLarge")
        if not body:
            return {}
        try:
            data = json.loads(body)
        except ValueError:
            raise ApiError(400, "The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return data

    def job_of(job_id: str, owner: str):
        job = state["jobs"].get(job_id, owner)
        if job is None:
            if state["jobs"].is_expired(job_id):
                raise ApiError(410, f"Job {job_id} has expired; its results were deleted "
                                    f"{config.result_ttl_s:.0f} s after it ended.", "Expired")
            raise ApiError(404, f"No job {job_id} on this server.", "UnknownJob")
        return job

    def session_call(fn, *args):
        try:
            return fn(*args)
        except SessionError as exc:
            headers = {"Retry-After": str(int(exc.retry_after_s))} if exc.retry_after_s else None
            raise ApiError(exc.status, str(exc), exc.error_type, headers) from None
        except MedSegAIError as exc:
            raise ApiError(400, str(exc).splitlines()[0], type(exc).__name__) from None

    # -- routes ----------------------------------------------------------------------------------
    @app.get("/healthz")
    async def healthz():
        return {"ok": True}

    @app.get("/v1/info")
    async def info(request: Request):
        user(request)
        from .info import devices, installed_models

        models = await run_in_threadpool(installed_models)
        return {"server": "medsegai", "version": __version__, "protocol": PROTOCOL_VERSION,
                "models": models, "devices": await run_in_threadpool(devices), "queue": state["jobs"].stats(),
                "sessions": {"open": state["sessions"].count(), "max": config.max_sessions,
                             "lease_s": config.session_idle_s},
                "limits": {"max_upload_bytes": config.max_upload_bytes, "max_voxels": config.max_voxels,
                           "result_ttl_s": config.result_ttl_s}}

    @app.post("/v1/jobs", status_code=202)
    async def submit(request: Request):
        owner = user(request)
        protocol(request)
        jobs: JobManager = state["jobs"]
        try:
            job = jobs.new_job(owner)
        except QueueFullError as exc:
            raise ApiError(429, str(exc), "QueueFull", {"Retry-After": str(int(exc.retry_after_s))}) from None
        try:
            await receive_file(request, job.upload)
            meta, shape = await run_in_threadpool(check_upload, job.upload, config.max_voxels)
            job.request = _remote_request(meta.get("request", {}))
            job.outputs = OutputOptions.from_dict(meta.get("outputs", {}))
            jobs.submit(job)
        except QueueFullError as exc:
            raise ApiError(429, str(exc), "QueueFull", {"Retry-After": str(int(exc.retry_after_s))}) from None
        except MedSegAIError as exc:
            jobs.discard(job)
            raise ApiError(400, str(exc).splitlines()[0], type(exc).__name__) from None
        except BaseException:
            jobs.discard(job)
            raise
        log("upload", job_id=job.id, user=owner, shape=list(shape))
        return JSONResponse({"job_id": job.id, "state": job.state}, status_code=202)

    @app.get("/v1/jobs/{job_id}")
    async def status(job_id: str, request: Request):
        return job_of(job_id, user(request)).describe()

    @app.delete("/v1/jobs/{job_id}")
    async def cancel(job_id: str, request: Request):
        owner = user(request)
        job = job_of(job_id, owner)
        state_now = state["jobs"].cancel(job)
        log("cancel requested", job_id=job_id, user=owner, state=state_now)
        return JSONResponse({"job_id": job_id, "state": state_now}, status_code=202 if state_now == "running" else 200)

    @app.get("/v1/jobs/{job_id}/events")
    async def events(job_id: str, request: Request):
        job = job_of(job_id, user(request))
        jobs: JobManager = state["jobs"]
        start = int(request.headers.get("last-event-id", "-1")) + 1 if \
            request.headers.get("last-event-id", "").lstrip("-").isdigit() else 0

        async def stream():
            index, quiet_since = start, time.monotonic()
            while True:
                batch = jobs.events_since(job, index)
                for kind, data in batch:
                    yield f"id: {index}\nevent: {kind}\ndata: {json.dumps(data, default=str)}\n\n"
                    index += 1
                    if kind in ("result", "error", "cancelled"):
                        return
                if batch:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > KEEPALIVE_S:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.05)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/v1/jobs/{job_id}/result")
    async def result(job_id: str, request: Request):
        job = job_of(job_id, user(request))
        if job.state != "done":
            message = {"queued": "is still waiting", "running": "is still running"}.get(
                job.state, f"ended with state '{job.state}' and has no result")
            raise ApiError(409, f"Job {job_id} {message}.", "NotReady", state=job.state)
        if not job.archive.is_file():
            raise ApiError(410, f"Job {job_id}'s results were deleted.", "Expired")
        return FileResponse(job.archive, media_type="application/zip", filename=f"{job_id}.zip",
                            headers={SHA256_HEADER: job.result["sha256"]})

    @app.post("/v1/sessions", status_code=201)
    async def open_session(request: Request):
        owner = user(request)
        protocol(request)
        data = await read_json(request)
        engine = str(data.get("engine") or "auto")
        reply = await run_in_threadpool(session_call, state["sessions"].open, owner, engine)
        return JSONResponse(reply, status_code=201)

    @app.put("/v1/sessions/{session_id}/image")
    async def session_image(session_id: str, request: Request):
        owner = user(request)
        protocol(request)
        sessions: HttpSessions = state["sessions"]
        session_call(sessions._check_owner, session_id, owner)
        upload = sessions.folder / f"{session_id}.{secrets.token_hex(4)}.upload.zip"
        try:
            await receive_file(request, upload)
        except BaseException:
            upload.unlink(missing_ok=True)
            raise
        return await run_in_threadpool(session_call, sessions.set_image, session_id, owner, upload)

    @app.post("/v1/sessions/{session_id}/{op}")
    async def session_edit(session_id: str, op: str, request: Request):
        owner = user(request)
        protocol(request)
        data = await read_json(request)
        return await run_in_threadpool(session_call, state["sessions"].edit, session_id, owner, op, data)

    @app.delete("/v1/sessions/{session_id}")
    async def close_session(session_id: str, request: Request):
        owner = user(request)
        return await run_in_threadpool(session_call, state["sessions"].close, session_id, owner)

    return app


def _remote_request(data: Any) -> RunRequest:
    """The client's RunRequest, minus what only the server decides (device, threads) and with models named
    by id: a client must not make the server load an arbitrary folder of its disk."""
    request = RunRequest.from_dict(data)
    for name in ("model", "task"):
        value = getattr(request, name)
        if value is not None and ("/" in value or "\\" in value or value.startswith((".", "~"))):
            raise ApiError(400, f"A remote run names its {name} by id (see GET /v1/info), not by a path on the "
                                f"server.", "BadRequest")
    return request


def _route(request: Request) -> str:
    """The path with ids left out, so the logs do not index secrets (session ids are capabilities)."""
    route = request.scope.get("route")
    return getattr(route, "path", None) or request.url.path
