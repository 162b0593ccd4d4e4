"""Resumable, verified, cancellable HTTP(S) downloads with ``requests``.

Behaviour users behind proxies and on flaky links rely on:
- ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` are honoured (``requests`` with ``trust_env``);
- TLS verification is always on; a custom CA bundle (a TLS-inspecting company proxy) comes from
  ``DownloadOptions.ca_bundle``, ``$MEDSEGAI_CA_BUNDLE``, the ``ca_bundle`` setting, or requests'
  own ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``;
- bytes go to ``<dest>`` as they arrive, with a sidecar holding the URL and the server's
  validators, so a later attempt (same process or a later run) resumes with ``Range`` and
  ``If-Range`` instead of starting again;
- connection errors, time-outs, 5xx, 408 and 429 are retried with exponential back-off;
  404/401/403 and TLS failures are not (retrying cannot fix them);
- the cancel token is checked between reads, which return as soon as any data arrives.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import requests
import urllib3

from ..atomic import atomic_write_json
from ..errors import CancelledError
from ..progress import CancelToken, ProgressCallback, ProgressEvent
from .cache import read_settings
from .errors import DownloadError

CA_BUNDLE_ENV = "MEDSEGAI_CA_BUNDLE"
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def _user_agent() -> str:
    from .. import __version__

    return f"medsegai/{__version__} (+model download; no telemetry)"


@dataclass
class DownloadOptions:
    connect_timeout_s: float = 15.0
    read_timeout_s: float = 60.0  # longest silence tolerated between two reads
    retries: int = 5  # further attempts after a failure; an attempt that made progress restarts the count
    backoff_s: float = 1.0  # wait before the first retry; doubles each time
    max_backoff_s: float = 30.0
    chunk_size: int = 1 << 20
    ca_bundle: Optional[str] = None
    progress_interval_s: float = 0.2
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def resolved_ca_bundle(self) -> Optional[str]:
        return self.ca_bundle or os.environ.get(CA_BUNDLE_ENV) or read_settings().get("ca_bundle") or None


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    resumed_from: int  # bytes already on disk when this call started (0: fresh download)
    attempts: int


class _Retryable(Exception):
    pass


def make_session(options: DownloadOptions) -> requests.Session:
    session = requests.Session()
    session.trust_env = True  # proxies and CA bundles from the environment
    ca = options.resolved_ca_bundle()
    if ca:
        if not Path(ca).expanduser().exists():
            raise DownloadError(f"The CA bundle {ca} does not exist (from {CA_BUNDLE_ENV}, a setting or an option).")
        session.verify = str(Path(ca).expanduser())
    session.headers["User-Agent"] = _user_agent()
    return session


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".json")


def _read_sidecar(dest: Path) -> dict:
    try:
        d = json.loads(_sidecar(dest).read_text(encoding="utf-8"))
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_sidecar(dest: Path, data: dict) -> None:
    atomic_write_json(_sidecar(dest), data, indent=None)


def discard_partial(dest: Path) -> None:
    for p in (dest, _sidecar(dest)):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def download_file(
    url: str,
    dest: Path,
    *,
    options: Optional[DownloadOptions] = None,
    expected_size: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    session: Optional[requests.Session] = None,
) -> DownloadResult:
    """Download ``url`` into ``dest``, resuming what an earlier attempt left there for the same URL."""
    options = options or DownloadOptions()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    own_session = session is None
    session = session or make_session(options)
    meta = _read_sidecar(dest)
    if meta.get("url") != url or not dest.exists():
        discard_partial(dest)
        meta = {"url": url}
    start_size = dest.stat().st_size if dest.exists() else 0
    failures = 0
    attempts = 0
    last_error = ""
    try:
        while True:
            _check(cancel, dest)
            attempts += 1
            before = dest.stat().st_size if dest.exists() else 0
            try:
                done = _attempt(session, url, dest, meta, options, expected_size, progress, cancel)
                if done:
                    size = dest.stat().st_size
                    return DownloadResult(dest, size, start_size, attempts)
            except _Retryable as exc:
                last_error = str(exc)
            after = dest.stat().st_size if dest.exists() else 0
            # Consecutive failures count; an attempt that made progress forgives the earlier ones.
            failures = 1 if after > before else failures + 1
            if failures > options.retries:
                raise DownloadError(
                    f"Downloading {url} failed after {attempts} attempts: {last_error}. "
                    f"{_mb(after)} are kept and the next try resumes from there."
                    + _proxy_hint(url)
                )
            wait = min(options.backoff_s * (2 ** max(failures - 1, 0)), options.max_backoff_s)
            _sleep_cancellable(wait, options, cancel, dest)
    finally:
        if own_session:
            session.close()


def _proxy_hint(url: str) -> str:
    scheme = url.split(":", 1)[0].upper()
    proxy = os.environ.get(f"{scheme}_PROXY") or os.environ.get(f"{scheme.lower()}_proxy")
    if proxy:
        return f" (through the proxy from {scheme}_PROXY: {proxy})"
    return " Behind a proxy, set HTTPS_PROXY (and HTTP_PROXY); offline, download the zip elsewhere and run `medsegai models import ZIP`."


def _check(cancel: Optional[CancelToken], dest: Path) -> None:
    if cancel is not None and cancel.cancelled:
        kept = dest.stat().st_size if dest.exists() else 0
        raise CancelledError(f"The download was cancelled; {_mb(kept)} are kept and the next try resumes from there.")


def _sleep_cancellable(seconds: float, options: DownloadOptions, cancel: Optional[CancelToken], dest: Path) -> None:
    end = time.monotonic() + seconds
    while True:
        _check(cancel, dest)
        left = end - time.monotonic()
        if left <= 0:
            return
        options.sleep(min(left, 0.1))


def _attempt(
    session: requests.Session,
    url: str,
    dest: Path,
    meta: dict,
    options: DownloadOptions,
    expected_size: Optional[int],
    progress: Optional[ProgressCallback],
    cancel: Optional[CancelToken],
) -> bool:
    offset = dest.stat().st_size if dest.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # byte offsets must be offsets in the file itself
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator  # a changed file on the server answers 200: start again
    try:
        resp = session.get(
            url, headers=headers, stream=True, timeout=(options.connect_timeout_s, options.read_timeout_s),
            allow_redirects=True,
        )
    except requests.exceptions.SSLError as exc:
        raise DownloadError(
            f"TLS certificate verification failed for {url}: {_short(exc)}. If your network inspects TLS "
            f"(company proxy), set {CA_BUNDLE_ENV} or REQUESTS_CA_BUNDLE to your organisation's CA bundle (PEM). "
            "Verification is never switched off."
        ) from None
    except requests.exceptions.ProxyError as exc:
        raise _Retryable(f"the proxy refused or failed ({_short(exc)})") from None
    except requests.exceptions.Timeout as exc:
        raise _Retryable(f"timed out ({_short(exc)})") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise _Retryable(f"connection failed ({_short(exc)})") from None
    except requests.exceptions.RequestException as exc:
        raise DownloadError(f"Cannot download {url}: {_short(exc)}.") from None

    with resp:
        status = resp.status_code
        if status in _RETRY_STATUS:
            raise _Retryable(f"the server answered HTTP {status} {resp.reason}")
        if status == 416 and offset:
            total = meta.get("total")
            if total is not None and offset == total:
                return True  # already complete
            discard_partial(dest)
            meta.clear()
            meta["url"] = url
            raise _Retryable("the server refused to resume (HTTP 416); starting again")
        if status in (401, 403, 404, 410):
            raise DownloadError(
                f"Cannot download {url}: HTTP {status} {resp.reason}. "
                + ("The file is not there (moved or removed)." if status in (404, 410) else "Access was refused.")
            )
        if status not in (200, 206):
            raise DownloadError(f"Cannot download {url}: unexpected HTTP {status} {resp.reason}.")

        if status == 206:
            m = _CONTENT_RANGE_RE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                discard_partial(dest)
                meta.clear()
                meta["url"] = url
                raise _Retryable("the server resumed at the wrong offset; starting again")
            total = int(m.group(3)) if m.group(3) != "*" else None
            mode = "ab"
        else:
            offset = 0  # full body: a server without Range support, or the file changed (If-Range)
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        if total is None:
            total = expected_size
        meta.update(
            url=url, total=total, etag=resp.headers.get("ETag"), last_modified=resp.headers.get("Last-Modified")
        )
        _write_sidecar(dest, meta)

        received = offset
        reader = getattr(resp.raw, "read1", None)
        last_report = 0.0
        try:
            with open(dest, mode) as out:
                while True:
                    _check(cancel, dest)
                    # read1 returns whatever one socket read yields, so a slow link still
                    # reaches the cancel check often; plain read() would wait for a full chunk.
                    block = reader(options.chunk_size) if reader else resp.raw.read(min(options.chunk_size, 1 << 16))
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    now = time.monotonic()
                    if progress is not None and now - last_report >= options.progress_interval_s:
                        last_report = now
                        progress(_event(received, total))
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as exc:
            if isinstance(exc, OSError) and not _is_network_error(exc):
                raise DownloadError(f"Cannot write the download to {dest}: {exc}.") from None
            raise _Retryable(f"the connection broke after {_mb(received)} ({_short(exc)})") from None
        if total is not None and received < total:
            raise _Retryable(f"the connection closed after {_mb(received)} of {_mb(total)}")
        if total is not None and received > total:
            discard_partial(dest)
            raise _Retryable("the server sent more bytes than announced; starting again")
        if progress is not None:
            progress(_event(received, total or received))
        return True


def _is_network_error(exc: OSError) -> bool:
    import socket
    import ssl

    return isinstance(exc, (ConnectionError, TimeoutError, socket.timeout, ssl.SSLError))


def _event(received: int, total: Optional[int]) -> ProgressEvent:
    if total:
        return ProgressEvent("download", min(received / total, 1.0), f"{_mb(received)} of {_mb(total)}")
    return ProgressEvent("download", 0.0, f"{_mb(received)}")


def _short(exc: BaseException) -> str:
    text = str(exc)
    # requests nests urllib3's long reprs; the innermost reason is what a user needs.
    m = re.search(r"\(Caused by \w+\((.*)\)\)\s*$", text)
    if m:
        text = m.group(1)
    return text[:300]
