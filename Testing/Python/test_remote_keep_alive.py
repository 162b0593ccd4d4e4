"""Keep-alive connections: a request must never be sent on a connection the server is closing.

CI once lost a client of five waiting out a full queue: it slept Retry-After (5 s) and sent on its
pooled connection just as uvicorn's 5 s keep-alive timer closed it ("Remote end closed connection
without response"). The server now keeps idle connections far longer than the client reuses them.
"""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from server_support import Server

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'medsegai[server]'")


def _read_reply(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        block = sock.recv(65536)
        if not block:
            return data
        data += block
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_the_server_keeps_an_idle_connection_past_the_usual_retry_after(tmp_path):
    from medsegai.remote.protocol import CLIENT_IDLE_REUSE_S, SERVER_KEEP_ALIVE_S

    assert SERVER_KEEP_ALIVE_S >= 2 * CLIENT_IDLE_REUSE_S + 5
    server = Server(tmp_path).wait_ready()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            sock.sendall(request)
            assert _read_reply(sock).startswith(b"HTTP/1.1 200")
            time.sleep(CLIENT_IDLE_REUSE_S + 3)  # past uvicorn's default of 5 s
            sock.sendall(request)
            assert _read_reply(sock).startswith(b"HTTP/1.1 200"), "the server closed an idle connection too early"
    finally:
        server.stop()


class _ClosingServer:
    """An HTTP/1.1 keep-alive server that makes the race deterministic: a request arriving on a
    connection idle for more than ``idle_s`` is dropped without an answer, as a server does whose
    keep-alive timer fires just as the request arrives."""

    def __init__(self, idle_s: float):
        from medsegai.remote.protocol import PROTOCOL_VERSION

        self.idle_s = idle_s
        self.body = json.dumps({"protocol": PROTOCOL_VERSION, "name": "medsegai"}).encode()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        last_reply = None
        with conn:
            data = b""
            while True:
                block = conn.recv(65536)
                if not block:
                    return
                data += block
                if b"\r\n\r\n" not in data:
                    continue
                data = b""
                if last_reply is not None and time.monotonic() - last_reply > self.idle_s:
                    return  # closed without a response
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(self.body)).encode() + b"\r\n\r\n" + self.body)
                last_reply = time.monotonic()

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("reuse_s, survives", [(0.5, True), (30.0, False)])
def test_the_client_opens_a_fresh_connection_after_an_idle_pause(monkeypatch, reuse_s, survives):
    """With reuse below the server's idle limit the second request gets its answer on a new
    connection; the control (reuse above it) shows the simulated server does reproduce the failure."""
    from medsegai.remote import client as client_module
    from medsegai.remote.protocol import UNREACHABLE, RemoteError

    monkeypatch.setattr(client_module, "CLIENT_IDLE_REUSE_S", reuse_s)
    server = _ClosingServer(idle_s=1.0)
    try:
        c = client_module.RemoteClient(server.url)
        assert c.info()["name"] == "medsegai"
        assert c.info()["name"] == "medsegai"  # quick reuse is kept: one connection so far
        assert server.connections == 1
        time.sleep(1.5)
        if survives:
            assert c.info()["name"] == "medsegai"
            assert server.connections == 2
        else:
            with pytest.raises(RemoteError) as e:
                c.info()
            assert e.value.error_type == UNREACHABLE and "closed connection without response" in str(e.value)
    finally:
        server.close()
