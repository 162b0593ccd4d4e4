"""A real HTTP server on 127.0.0.1, in a thread of the test process, with scripted misbehaviour.

Each path maps to a :class:`Route` that can answer with an error status, stall before the headers,
trickle the body, cut the connection after some bytes, or ignore ``Range``. Absolute-URI requests
(``GET http://host/path``) are served too, so the same server acts as an HTTP proxy for tests of
``HTTP_PROXY``. Every request is logged with its headers.
"""
from __future__ import annotations

import hashlib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlsplit


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    delay_s: float = 0.0  # stall before sending the status line
    trickle: Optional[Tuple[int, float]] = None  # (bytes per piece, seconds between pieces)
    cut_after: Optional[int] = None  # close the connection after this many body bytes...
    cut_times: int = 1  # ...on this many requests
    honour_range: bool = True
    etag: Optional[str] = None

    def __post_init__(self) -> None:
        if self.etag is None:
            self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


@dataclass
class LoggedRequest:
    method: str
    path: str
    raw_target: str
    headers: Dict[str, str]
    proxied: bool


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        target = self.path
        proxied = target.startswith("http://") or target.startswith("https://")
        path = urlsplit(target).path if proxied else target.split("?", 1)[0]
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(LoggedRequest("GET", path, target, dict(self.headers.items()), proxied))
            route = owner.routes.get(path)
            hits = owner.hits.get(path, 0)
            owner.hits[path] = hits + 1
        if route is None:
            return self._simple(404, b"not found")
        if route.delay_s:
            time.sleep(route.delay_s)
        if route.status != 200:
            return self._simple(route.status, b"error")
        body, start, status = route.body, 0, 200
        rng = self.headers.get("Range")
        if rng and route.honour_range and rng.startswith("bytes=") and rng.endswith("-"):
            if_range = self.headers.get("If-Range")
            if if_range is None or if_range == route.etag:
                start = int(rng[len("bytes="):-1])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
        payload = body[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", route.etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        limit = len(payload)
        if route.cut_after is not None and hits < route.cut_times:
            limit = min(limit, route.cut_after)
        self._send_body(payload[:limit], route.trickle)
        if limit < len(payload):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _send_body(self, data: bytes, trickle) -> None:
        try:
            if trickle is None:
                self.wfile.write(data)
                return
            piece, pause = trickle
            for i in range(0, len(data), piece):
                if self.server.owner.stopping.is_set():
                    return
                self.wfile.write(data[i:i + piece])
                self.wfile.flush()
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass  # the client went away (a cancel): fine

    def _simple(self, status: int, text: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "LocalServer"


@dataclass
class LocalServer:
    ssl_context: Optional[ssl.SSLContext] = None
    routes: Dict[str, Route] = field(default_factory=dict)
    requests: List[LoggedRequest] = field(default_factory=list)
    hits: Dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> "LocalServer":
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        if self.ssl_context is not None:
            self._httpd.socket = self.ssl_context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def gets(self, path: str) -> List[LoggedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path == path]
