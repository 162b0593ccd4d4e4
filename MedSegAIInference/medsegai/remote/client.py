"""``RemoteClient``: runs, cancels and interactive sessions on a ``medsegai serve`` over HTTP(S).

TLS certificates are always verified (``ca_bundle`` adds a private CA, as for model downloads);
there is no switch to turn that off. A loopback server is reached without the environment's
proxies (a company proxy cannot reach 127.0.0.1); other hosts follow ``HTTPS_PROXY``/``NO_PROXY``.
"""
from __future__ import annotations

import ipaddress
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple
from urllib.parse import urlsplit

import requests

from ..errors import CancelledError
from ..progress import CancelToken, ProgressEvent
from ..run_request import RunRequest
from .payload import pack_image
from .protocol import (CLIENT_IDLE_REUSE_S, PROTOCOL_HEADER, PROTOCOL_VERSION, SHA256_HEADER, TOKEN_ENV, AuthError,
                       OutputOptions, UNREACHABLE, ProtocolMismatchError, RemoteError, ServerBusyError, mismatch_message)
from .results import extract_result

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 120.0  # the progress stream sends a keep-alive every few seconds
CANCEL_WAIT_S = 15.0


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _retry_after(resp: requests.Response, default: float = 2.0) -> float:
    try:
        return max(0.0, float(resp.headers.get("Retry-After", default)))
    except ValueError:
        return default


class RemoteClient:
    def __init__(self, url: str, token: Optional[str] = None, *, ca_bundle: Optional[str] = None,
                 protocol: int = PROTOCOL_VERSION, busy_wait_s: float = 600.0, read_timeout_s: float = READ_TIMEOUT_S):
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"The server address {url!r} is not an http:// or https:// URL.")
        self.url = url.rstrip("/")
        self.protocol = protocol
        self.busy_wait_s = busy_wait_s
        self.read_timeout_s = read_timeout_s
        self.http = requests.Session()
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        self.http.headers[PROTOCOL_HEADER] = str(protocol)
        if ca_bundle:
            if not Path(ca_bundle).expanduser().is_file():
                raise RemoteError(f"The CA bundle {ca_bundle} does not exist.")
            self.http.verify = str(Path(ca_bundle).expanduser())
        if _is_loopback(parts.hostname):
            self.http.trust_env = False  # no proxy for 127.0.0.1; verify stays as set above
        self._checked: Optional[Dict[str, Any]] = None
        self._idle_lock = threading.Lock()
        self._last_request = time.monotonic()

    # -- plumbing -------------------------------------------------------------------------------
    def _drop_idle_connections(self) -> None:
        """A pooled connection idle this long may be closing on the server's side as we send (see
        CLIENT_IDLE_REUSE_S): open a fresh one instead. Connections in use (a progress stream in
        another thread) are not touched; urllib3 closes them when they come back."""
        with self._idle_lock:
            now = time.monotonic()
            if now - self._last_request > CLIENT_IDLE_REUSE_S:
                self.http.close()
            self._last_request = now

    def _call(self, method: str, path: str, *, stream: bool = False, timeout=None, **kwargs) -> requests.Response:
        self._drop_idle_connections()
        try:
            return self.http.request(method, self.url + path, stream=stream,
                                        timeout=timeout or (CONNECT_TIMEOUT_S, self.read_timeout_s), **kwargs)
        except requests.exceptions.SSLError as exc:
            raise RemoteError(f"The TLS certificate of {self.url} could not be verified ({_reason(exc)}); if the server "
                              f"uses a private CA, pass its certificate with --ca-bundle.", error_type="TLS") from None
        except requests.exceptions.Timeout:
            raise RemoteError(f"The MedSegAI server at {self.url} did not answer in time.",
                              error_type=UNREACHABLE) from None
        except requests.exceptions.RequestException as exc:
            raise RemoteError(f"Cannot reach the MedSegAI server at {self.url} ({_reason(exc)}).",
                              error_type=UNREACHABLE) from None

    def _checked_reply(self, resp: requests.Response, what: str) -> requests.Response:
        if resp.status_code < 400:
            return resp
        try:
            body = resp.json()
            message = body.get("error") or str(body)
        except ValueError:
            body, message = {}, (resp.text or resp.reason or "").strip().splitlines()[0:1]
            message = message[0] if message else f"HTTP {resp.status_code}"
        if resp.status_code == 401:
            raise AuthError(f"The server at {self.url} refused {what}: {message}")
        if body.get("error_type") == "ProtocolMismatch":
            raise ProtocolMismatchError(mismatch_message(self.protocol, body.get("server_protocol"), self.url))
        if resp.status_code in (429, 503):
            raise ServerBusyError(f"The server at {self.url} is busy: {message}", _retry_after(resp))
        raise RemoteError(f"The server refused {what}: {message}", resp.status_code, body.get("error_type"))

    # -- info -----------------------------------------------------------------------------------
    def info(self) -> Dict[str, Any]:
        resp = self._checked_reply(self._call("GET", "/v1/info"), "the info request")
        try:
            return resp.json()
        except ValueError:
            raise RemoteError(f"{self.url} answered, but not as a MedSegAI server.") from None

    def check(self) -> Dict[str, Any]:
        """The server's info, once its protocol is known to be ours (before anything is uploaded)."""
        if self._checked is None:
            info = self.info()
            if info.get("protocol") != self.protocol:
                raise ProtocolMismatchError(mismatch_message(self.protocol, info.get("protocol"), self.url))
            self._checked = info
        return self._checked

    # -- jobs -----------------------------------------------------------------------------------
    def submit(self, image, request: RunRequest, outputs: Optional[OutputOptions] = None) -> str:
        """Upload the image (a medsegai.Image) with the run options; returns the job id. A full queue is
        waited out (Retry-After) for up to ``busy_wait_s``, then ServerBusyError."""
        self.check()
        request = request.validate()
        outputs = (outputs or OutputOptions()).validate()
        with tempfile.TemporaryDirectory(prefix="medsegai-upload-") as tmp:
            package = Path(tmp) / "image.zip"
            pack_image(image, package, {"request": request.to_dict(), "outputs": outputs.to_dict()})
            deadline = time.monotonic() + self.busy_wait_s
            while True:
                with open(package, "rb") as body:
                    resp = self._call("POST", "/v1/jobs", data=body, headers={"Content-Type": "application/zip"})
                try:
                    return self._checked_reply(resp, "the job").json()["job_id"]
                except ServerBusyError as busy:
                    if time.monotonic() + busy.retry_after_s > deadline:
                        raise
                    time.sleep(busy.retry_after_s)

    def status(self, job_id: str) -> Dict[str, Any]:
        return self._checked_reply(self._call("GET", f"/v1/jobs/{job_id}"), "the status request").json()

    def cancel(self, job_id: str) -> Dict[str, Any]:
        return self._checked_reply(self._call("DELETE", f"/v1/jobs/{job_id}"), "the cancel").json()

    def events(self, job_id: str) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """(kind, data) for each server-sent event of the job, ending with its final event; a keep-alive
        yields ("keepalive", {}) so a caller can look at its cancel token."""
        resp = self._checked_reply(self._call("GET", f"/v1/jobs/{job_id}/events", stream=True), "the progress stream")
        kind, data = "message", []
        try:
            for raw in resp.iter_lines(decode_unicode=True):
                if raw is None:
                    continue
                if raw == "":
                    if data:
                        payload = json.loads("\n".join(data))
                        yield kind, payload
                        if kind in ("result", "error", "cancelled"):
                            return
                    kind, data = "message", []
                elif raw.startswith(":"):
                    yield "keepalive", {}
                elif raw.startswith("event:"):
                    kind = raw[6:].strip()
                elif raw.startswith("data:"):
                    data.append(raw[5:].strip())
        except (requests.exceptions.RequestException, ValueError) as exc:
            raise RemoteError(f"The connection to the MedSegAI server at {self.url} broke during job {job_id} "
                              f"({_reason(exc)}); the server may have stopped. No output was written.") from None
        finally:
            resp.close()
        raise RemoteError(f"The MedSegAI server at {self.url} closed the progress stream of job {job_id} before the "
                          f"job ended; the server may have stopped. No output was written.")

    def download(self, job_id: str, out_dir: Path) -> Dict[str, Path]:
        resp = self._checked_reply(self._call("GET", f"/v1/jobs/{job_id}/result", stream=True), "the result download")
        with tempfile.TemporaryDirectory(prefix="medsegai-result-") as tmp:
            archive = Path(tmp) / "result.zip"
            try:
                with open(archive, "wb") as fh:
                    for block in resp.iter_content(1 << 20):
                        fh.write(block)
            except requests.exceptions.RequestException as exc:
                raise RemoteError(f"The result download from {self.url} broke ({_reason(exc)}); nothing was "
                                  f"written.") from None
            return extract_result(archive, Path(out_dir), resp.headers.get(SHA256_HEADER, ""))

    def run(self, image, request: RunRequest, out_dir, outputs: Optional[OutputOptions] = None, *,
            progress: Optional[Callable[[ProgressEvent], None]] = None,
            cancel: Optional[CancelToken] = None) -> Tuple[Dict[str, Path], Dict[str, Any]]:
        """Submit, follow, download: ({relative name: written path}, the job's final status). Ctrl+C
        or ``cancel`` cancels the remote job and raises CancelledError; no file is written then."""
        job_id = self.submit(image, request, outputs)
        final: Dict[str, Any] = {}
        try:
            for kind, data in self.events(job_id):
                if cancel is not None and cancel.cancelled:
                    raise KeyboardInterrupt
                if kind == "progress" and progress is not None:
                    progress(ProgressEvent(str(data.get("stage", "")), float(data.get("fraction", 0.0)),
                                           str(data.get("message", ""))))
                elif kind == "note" and progress is not None:
                    progress(ProgressEvent("note", 1.0, str(data.get("message", ""))))
                elif kind in ("result", "error", "cancelled"):
                    final = dict(data, state=kind)
        except KeyboardInterrupt:
            self._cancel_and_wait(job_id)
            raise CancelledError(f"The run was cancelled; job {job_id} on {self.url} was stopped.") from None
        if final.get("state") == "cancelled":
            raise CancelledError(f"Job {job_id} was cancelled on the server.")
        if final.get("state") == "error":
            raise RemoteError(f"The server could not segment the image: {final.get('message')}")
        return self.download(job_id, Path(out_dir)), final

    def _cancel_and_wait(self, job_id: str) -> None:
        try:
            self.cancel(job_id)
            deadline = time.monotonic() + CANCEL_WAIT_S
            while time.monotonic() < deadline and self.status(job_id).get("state") in ("queued", "running"):
                time.sleep(0.2)
        except RemoteError:
            pass  # the server is gone: nothing is left to cancel

    # -- interactive sessions ---------------------------------------------------------------------
    def open_session(self, engine: str = "auto") -> Dict[str, Any]:
        self.check()
        deadline = time.monotonic() + self.busy_wait_s
        while True:
            try:
                return self._checked_reply(self._call("POST", "/v1/sessions", json={"engine": engine}),
                                           "the interactive session").json()
            except ServerBusyError as busy:
                if time.monotonic() + busy.retry_after_s > deadline:
                    raise
                time.sleep(busy.retry_after_s)

    def session_image(self, session_id: str, image) -> Dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="medsegai-upload-") as tmp:
            package = Path(tmp) / "image.zip"
            pack_image(image, package)
            with open(package, "rb") as body:
                return self._checked_reply(self._call("PUT", f"/v1/sessions/{session_id}/image", data=body,
                                                      headers={"Content-Type": "application/zip"}),
                                           "the session image").json()

    def session_edit(self, session_id: str, op: str, **data) -> Dict[str, Any]:
        """One editing request (prompt, undo, redo, reset, set_mask, amend); the reply's ``region`` is
        the changed voxels, packed (:mod:`medsegai.service.regions`)."""
        return self._checked_reply(self._call("POST", f"/v1/sessions/{session_id}/{op}", json=data),
                                   f"the session request '{op}'").json()

    def close_session(self, session_id: str) -> Dict[str, Any]:
        return self._checked_reply(self._call("DELETE", f"/v1/sessions/{session_id}"), "the session close").json()


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, in one line (urllib3 nests them deeply)."""
    while exc.__context__ is not None and exc.__context__ is not exc and len(str(exc)) > 200:
        exc = exc.__context__
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
