"""Downloads against a real HTTP server on 127.0.0.1: success, resume, errors, time-outs, cancel,
proxies and a custom CA bundle."""
from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
import threading
import time

import pytest

from medsegai.errors import CancelledError
from medsegai.models.download import DownloadOptions, download_file
from medsegai.models.errors import DownloadError
from medsegai.progress import CancelToken
from models_support.fixtures import fast_options, model_env, server  # noqa: F401 (pytest fixtures)
from models_support.http_server import LocalServer, Route

pytestmark = pytest.mark.timeout(30)

BODY = bytes(range(256)) * 4096  # 1 MiB


def test_download_success_reports_progress(model_env, server, fast_options, tmp_path):
    server.routes["/m.zip"] = Route(BODY)
    events = []
    result = download_file(server.url("/m.zip"), tmp_path / "m.part", options=fast_options, progress=events.append)
    assert (tmp_path / "m.part").read_bytes() == BODY
    assert result.size == len(BODY) and result.resumed_from == 0
    assert events and events[-1].fraction == 1.0 and events[-1].stage == "download"
    assert all(b.fraction >= a.fraction for a, b in zip(events, events[1:]))
    req = server.gets("/m.zip")[0]
    assert req.headers["Accept-Encoding"] == "identity"
    assert req.headers["User-Agent"].startswith("medsegai/")


def test_resume_after_cut_connection_uses_range(model_env, server, fast_options, tmp_path):
    server.routes["/m.zip"] = Route(BODY, cut_after=300_000)
    download_file(server.url("/m.zip"), tmp_path / "m.part", options=fast_options)
    assert hashlib.sha256((tmp_path / "m.part").read_bytes()).digest() == hashlib.sha256(BODY).digest()
    first, second = server.gets("/m.zip")
    assert "Range" not in first.headers
    assert second.headers["Range"] == "bytes=300000-"
    assert second.headers["If-Range"] == server.routes["/m.zip"].etag


def test_resume_in_a_later_call_after_giving_up(model_env, server, tmp_path):
    server.routes["/m.zip"] = Route(BODY, cut_after=400_000, cut_times=1)
    no_retry = DownloadOptions(connect_timeout_s=2, read_timeout_s=1, retries=0, backoff_s=0.01)
    with pytest.raises(DownloadError, match="kept and the next try resumes"):
        download_file(server.url("/m.zip"), tmp_path / "m.part", options=no_retry)
    assert (tmp_path / "m.part").stat().st_size == 400_000
    result = download_file(server.url("/m.zip"), tmp_path / "m.part", options=no_retry)
    assert result.resumed_from == 400_000
    assert (tmp_path / "m.part").read_bytes() == BODY
    assert server.gets("/m.zip")[-1].headers["Range"] == "bytes=400000-"


def test_changed_file_on_server_restarts_instead_of_mixing(model_env, server, fast_options, tmp_path):
    server.routes["/m.zip"] = Route(BODY, cut_after=400_000)
    no_retry = DownloadOptions(connect_timeout_s=2, read_timeout_s=1, retries=0, backoff_s=0.01)
    with pytest.raises(DownloadError):
        download_file(server.url("/m.zip"), tmp_path / "m.part", options=no_retry)
    new_body = bytes(reversed(BODY))
    server.routes["/m.zip"] = Route(new_body)  # new ETag: If-Range makes the server send it all
    download_file(server.url("/m.zip"), tmp_path / "m.part", options=no_retry)
    assert (tmp_path / "m.part").read_bytes() == new_body


def test_server_without_range_support_restarts_cleanly(model_env, server, fast_options, tmp_path):
    server.routes["/m.zip"] = Route(BODY, cut_after=300_000, honour_range=False)
    download_file(server.url("/m.zip"), tmp_path / "m.part", options=fast_options)
    assert (tmp_path / "m.part").read_bytes() == BODY


def test_404_fails_at_once_without_retries(model_env, server, fast_options, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url("/missing.zip"), tmp_path / "m.part", options=fast_options)
    assert len(server.gets("/missing.zip")) == 1


def test_500_is_retried_then_reported(model_env, server, fast_options, tmp_path):
    server.routes["/m.zip"] = Route(BODY, status=500)
    with pytest.raises(DownloadError, match="HTTP 500") as err:
        download_file(server.url("/m.zip"), tmp_path / "m.part", options=fast_options)
    assert len(server.gets("/m.zip")) == fast_options.retries + 1
    assert "3 attempts" in str(err.value)


def test_backoff_doubles(model_env, server, tmp_path):
    server.routes["/m.zip"] = Route(BODY, status=503)
    waits = []
    opts = DownloadOptions(retries=3, backoff_s=0.01, max_backoff_s=0.03, sleep=lambda s: (waits.append(s), time.sleep(s)))
    with pytest.raises(DownloadError):
        download_file(server.url("/m.zip"), tmp_path / "m.part", options=opts)
    # sleeps are sliced into <= 0.1 s steps; their sums per retry are the back-off waits
    assert sum(waits) == pytest.approx(0.01 + 0.02 + 0.03, abs=0.01)


def test_stalled_server_times_out(model_env, server, tmp_path):
    server.routes["/m.zip"] = Route(BODY, delay_s=2.0)
    opts = DownloadOptions(connect_timeout_s=1, read_timeout_s=0.3, retries=1, backoff_s=0.01)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="timed out"):
        download_file(server.url("/m.zip"), tmp_path / "m.part", options=opts)
    assert time.monotonic() - t0 < 1.5


def test_silence_in_the_middle_of_the_body_times_out(model_env, server, tmp_path):
    server.routes["/m.zip"] = Route(BODY, trickle=(100_000, 1.0))
    opts = DownloadOptions(connect_timeout_s=1, read_timeout_s=0.3, retries=0, backoff_s=0.01)
    with pytest.raises(DownloadError, match="broke|timed out|Read timed out"):
        download_file(server.url("/m.zip"), tmp_path / "m.part", options=opts)
    assert (tmp_path / "m.part").stat().st_size == 100_000  # kept for resume


def test_slow_server_cancel_is_prompt_and_keeps_partial(model_env, server, fast_options, tmp_path):
    server.routes["/m.zip"] = Route(BODY, trickle=(2048, 0.01))  # ~200 KB/s: 5 s for the whole file
    token = CancelToken()
    timer = threading.Timer(0.4, token.cancel)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(CancelledError, match="cancelled"):
        download_file(server.url("/m.zip"), tmp_path / "m.part", options=fast_options, cancel=token)
    assert time.monotonic() - t0 < 1.5
    kept = (tmp_path / "m.part").stat().st_size
    assert 0 < kept < len(BODY)
    server.routes["/m.zip"] = Route(BODY)  # the server is fast again: the next call resumes
    result = download_file(server.url("/m.zip"), tmp_path / "m.part", options=fast_options)
    assert result.resumed_from == kept and (tmp_path / "m.part").read_bytes() == BODY


def test_http_proxy_from_environment_is_used(model_env, server, fast_options, tmp_path, monkeypatch):
    server.routes["/weights/m.zip"] = Route(BODY)
    monkeypatch.setenv("HTTP_PROXY", server.url(""))
    monkeypatch.setenv("NO_PROXY", "")
    download_file("http://models.example.invalid/weights/m.zip", tmp_path / "m.part", options=fast_options)
    assert (tmp_path / "m.part").read_bytes() == BODY
    (req,) = server.gets("/weights/m.zip")
    assert req.proxied and req.raw_target == "http://models.example.invalid/weights/m.zip"


def test_unreachable_proxy_is_reported_with_its_address(model_env, fast_options, tmp_path):
    # model_env points HTTP_PROXY at a closed port: the failure names it.
    with pytest.raises(DownloadError, match="127.0.0.1:9"):
        download_file("http://models.example.invalid/m.zip", tmp_path / "m.part", options=fast_options)


@pytest.fixture
def tls_cert(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,digitalSignature"],
        check=True, capture_output=True, timeout=20,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx, cert


def test_tls_verification_is_on_and_a_custom_ca_bundle_is_honoured(model_env, fast_options, tmp_path, tls_cert, monkeypatch):
    ctx, cert = tls_cert
    with LocalServer(ssl_context=ctx) as srv:
        srv.routes["/m.zip"] = Route(BODY)
        with pytest.raises(DownloadError, match="TLS certificate verification failed"):
            download_file(srv.url("/m.zip"), tmp_path / "a.part", options=fast_options)
        fast_options.ca_bundle = str(cert)
        download_file(srv.url("/m.zip"), tmp_path / "a.part", options=fast_options)
        assert (tmp_path / "a.part").read_bytes() == BODY
        fast_options.ca_bundle = None
        monkeypatch.setenv("MEDSEGAI_CA_BUNDLE", str(cert))
        download_file(srv.url("/m.zip"), tmp_path / "b.part", options=fast_options)
        assert (tmp_path / "b.part").read_bytes() == BODY
