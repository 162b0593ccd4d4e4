"""``medsegai serve`` over real HTTP on 127.0.0.1: auth, protocol, jobs, cancel, queue, errors, sessions."""
from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from medsegai.remote.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from server_support import TOKEN, Server, run_cli, same_files

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'medsegai[server]'")

SLOW = {"model": "medsegai_ct_demo", "uncertainty": "tta", "uncertainty_passes": 64}  # minutes: only to cancel


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("srv"), "--max-queue", "2", "--max-upload-mb", "5", "--session-idle", "4",
               "--max-sessions", "2", "--interactive-engine", "classical").wait_ready()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ct(ts_ref) -> Path:
    return ts_ref / "example_ct_sm.nii.gz"


@pytest.fixture(scope="module")
def image(ct):
    from medsegai.io.read import read_image

    return read_image(ct)


def _package(image, request=None, outputs=None) -> bytes:  # what RemoteClient uploads, for raw requests
    from medsegai.remote.payload import pack_image

    buf = io.BytesIO()
    pack_image(image, buf, {"request": request or {"model": "medsegai_ct_demo"}, "outputs": outputs or {}})
    return buf.getvalue()


def _post(server, body: bytes, headers=None, token=TOKEN):
    h = {"Content-Type": "application/zip", PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
    if token:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    return requests.post(server.url + "/v1/jobs", data=body, headers=h, timeout=60)


def _accepted(server) -> int:
    return requests.get(server.url + "/v1/info", headers=server.auth, timeout=30).json()["queue"]["accepted"]


def _wait_state(server, job_id, states, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = requests.get(f"{server.url}/v1/jobs/{job_id}", headers=server.auth, timeout=30).json()
        if st["state"] in states:
            return st
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {states}: {st}")


def _client(server, **kw):
    from medsegai.remote.client import RemoteClient

    return RemoteClient(server.url, server.token, **kw)


# -- auth and protocol ------------------------------------------------------------------------------
def test_healthz_is_open_info_needs_the_token(server):
    assert requests.get(server.url + "/healthz", timeout=10).json() == {"ok": True}
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
        r = requests.get(server.url + "/v1/info", headers=headers, timeout=10)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", r.text
    info = requests.get(server.url + "/v1/info", headers=server.auth, timeout=30).json()
    from medsegai.remote.protocol import PROTOCOL_VERSION

    assert info["protocol"] == PROTOCOL_VERSION and info["server"] == "medsegai"
    demo = [m for m in info["models"] if m["id"] == "medsegai_ct_demo"]
    assert demo and len(demo[0]["weights_sha256"]) == 64
    assert info["devices"][0]["device"] == "cpu" and info["devices"][0]["free_memory_bytes"] > 0


def test_a_wrong_or_missing_token_runs_nothing(server, image, ct, tmp_path):
    before = _accepted(server)
    for token in (None, "wrong-token-0123456789"):
        r = _post(server, _package(image), token=token)
        assert r.status_code == 401, r.text
    out = tmp_path / "out"
    p = run_cli("segment", "-i", ct, "-o", out, "--server", server.url, "--token", "wrong-token-0123456789")
    assert p.returncode == 1 and "refused" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not out.exists()
    assert _accepted(server) == before


def test_protocol_mismatch_is_said_plainly_before_any_upload(server, image, ct, tmp_path):
    from medsegai import RunRequest
    from medsegai.remote.protocol import PROTOCOL_VERSION, ProtocolMismatchError

    before = _accepted(server)
    with pytest.raises(ProtocolMismatchError) as e:
        _client(server, protocol=PROTOCOL_VERSION + 1).submit(image, RunRequest(model="medsegai_ct_demo"))
    msg = str(e.value)
    assert f"protocol {PROTOCOL_VERSION}" in msg and f"speaks {PROTOCOL_VERSION + 1}" in msg and "nothing was uploaded" in msg
    r = _post(server, _package(image), headers={"X-MedSegAI-Protocol": str(PROTOCOL_VERSION + 1)})
    assert r.status_code == 409 and r.json()["error_type"] == "ProtocolMismatch"
    assert _accepted(server) == before


# -- results --------------------------------------------------------------------------------------------
def test_remote_run_writes_the_same_files_as_a_local_run(server, ct, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "remote"
    p = run_cli("segment", "-i", ct, "-o", local, "-d", "cpu", "-nt", "1", "-q")
    assert p.returncode == 0, p.stderr
    p = run_cli("segment", "-i", ct, "-o", remote, "--server", server.url, "--token", TOKEN)
    assert p.returncode == 0, p.stderr
    assert "server: " + server.url in p.stdout
    assert len(list(local.rglob("*.nii.gz"))) > 10  # the labels and every structure's mask
    assert same_files(local, remote) == []
    # one label file (as -o x.seg.nrrd), plus the side files named after it
    p1 = run_cli("segment", "-i", ct, "-o", tmp_path / "l1" / "liver.seg.nrrd", "-d", "cpu", "-nt", "1", "-q",
                 "--uncertainty", "entropy")
    p2 = run_cli("segment", "-i", ct, "-o", tmp_path / "r1" / "liver.seg.nrrd", "--server", server.url, "--token",
                 TOKEN, "-q", "--uncertainty", "entropy")
    assert p1.returncode == 0 and p2.returncode == 0, p2.stderr
    assert (tmp_path / "r1" / "liver_uncertainty.nii.gz").is_file()
    assert same_files(tmp_path / "l1", tmp_path / "r1") == []


def test_bad_input_gets_one_line_without_traceback_or_server_path(server, image, tmp_path):
    work = str(server.work)
    replies = [
        _post(server, b"not a zip at all"),
        _post(server, _package(image, request={"model": "medsegai_ct_demo", "qualty": "fast"})),
        _post(server, _package(image, request={"model": "/etc/passwd"})),
        _post(server, _package(image, outputs={"stem": "../../escape"})),
        _post(server, _package(image, outputs={"label_suffix": ".dcm"})),
        _post(server, _package(image, request={"model": "no_such_model_here"})),
    ]
    for r in replies[:5]:
        assert r.status_code == 400, r.text
    assert "valid:" in replies[1].json()["error"]  # the typo's message lists the option names
    assert "by id" in replies[2].json()["error"]
    # an image the runner refuses is refused at upload, before any job exists
    from medsegai.io.image import Image

    flat = Image(image.array[:1].copy(), image.spacing, image.origin, image.direction)
    flat_reply = _post(server, _package(flat))
    assert flat_reply.status_code == 400 and "single slice" in flat_reply.json()["error"], flat_reply.text
    assert "\n" not in flat_reply.json()["error"]
    # a model the server lacks: accepted, then the job ends with the one-line reason
    missing_end = _wait_state(server, replies[5].json()["job_id"], ("error",))
    assert "no_such_model_here" in missing_end["message"] and "medsegai models" in missing_end["message"]
    for text in [r.text for r in replies] + [flat_reply.text, json.dumps(missing_end)]:
        assert "Traceback" not in text and work not in text and "/tmp/" not in text, text
    assert "\n" not in missing_end["message"]


def test_uploads_over_the_limit_are_refused_with_413(server):
    r = _post(server, b"\0" * (6 << 20))  # the fixture's limit is 5 MB
    assert r.status_code == 413 and r.json()["error_type"] == "TooLarge"


# -- cancel, queue, concurrency ---------------------------------------------------------------------
def test_cancel_stops_a_running_job_within_seconds(server, image):
    job = _post(server, _package(image, request=SLOW)).json()["job_id"]
    _wait_state(server, job, ("running",))
    time.sleep(1.0)
    t = time.monotonic()
    r = requests.delete(f"{server.url}/v1/jobs/{job}", headers=server.auth, timeout=30)
    assert r.status_code == 202
    end = _wait_state(server, job, ("cancelled",), timeout=30)
    assert time.monotonic() - t < 15, "cancel took too long"
    assert end["state"] == "cancelled"
    r = requests.get(f"{server.url}/v1/jobs/{job}/result", headers=server.auth, timeout=30)
    assert r.status_code == 409 and r.json()["state"] == "cancelled"
    assert not (server.work / "jobs" / job / "result.zip").exists()


def test_a_full_queue_answers_429_with_retry_after(server, image):
    from medsegai import RunRequest
    from medsegai.remote.protocol import ServerBusyError

    running = _post(server, _package(image, request=SLOW)).json()["job_id"]
    _wait_state(server, running, ("running",))
    queued = [_post(server, _package(image, request=SLOW)) for _ in range(2)]
    assert [r.status_code for r in queued] == [202, 202]
    try:
        full = _post(server, _package(image))
        assert full.status_code == 429, full.text
        assert int(full.headers["Retry-After"]) >= 1 and full.json()["error_type"] == "QueueFull"
        with pytest.raises(ServerBusyError) as e:
            _client(server, busy_wait_s=0).submit(image, RunRequest(model="medsegai_ct_demo"))
        assert e.value.retry_after_s >= 1
    finally:
        for job in [running] + [r.json()["job_id"] for r in queued]:
            requests.delete(f"{server.url}/v1/jobs/{job}", headers=server.auth, timeout=30)
        for job in [running] + [r.json()["job_id"] for r in queued]:
            _wait_state(server, job, ("cancelled",), timeout=30)


def test_several_concurrent_clients_are_all_served(server, image, tmp_path):
    """Five clients at once on a queue of 2: the client waits out 429s (Retry-After); every one gets the
    same, correct files, in bounded time."""
    from medsegai import RunRequest
    from medsegai.io.read import read_image

    results, errors = {}, []

    def one(n):
        try:
            written, final = _client(server).run(image, RunRequest(model="medsegai_ct_demo"), tmp_path / f"c{n}")
            results[n] = final
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    before = _accepted(server)
    t = time.monotonic()
    threads = [threading.Thread(target=one, args=(n,)) for n in range(5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not errors, errors
    assert len(results) == 5 and time.monotonic() - t < 240
    assert _accepted(server) == before + 5
    first = read_image(tmp_path / "c0" / "segmentation.nii.gz").array
    assert first.any()
    for n in range(1, 5):
        assert same_files(tmp_path / "c0", tmp_path / f"c{n}") == []


def test_ctrl_c_cancels_the_remote_job(server, ct, tmp_path):
    import signal
    import subprocess

    from server_support import CLI, env

    out = tmp_path / "out"
    started = server.log_text().count('"job started"')
    proc = subprocess.Popen(CLI + ["segment", "-i", str(ct), "-o", str(out), "--server", server.url, "--token", TOKEN,
                                   "--uncertainty", "tta", "--uncertainty-passes", "64"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    deadline = time.monotonic() + 60
    while server.log_text().count('"job started"') == started:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "cancelled" in err and "No output was written" in err and "Traceback" not in err
    assert not out.exists()
    assert '"event": "job cancelled"' in server.log_text()


# -- interactive sessions -----------------------------------------------------------------------------
def _decode_into(mask, reply):
    from medsegai.service.regions import decode, region_of

    values, offset = decode(reply["region"])
    if values.size:
        mask[region_of(values, offset)] = values


def test_interactive_session_over_http_matches_a_local_session(server, image):
    from medsegai.interactive import InteractiveSession

    c = _client(server)
    opened = c.open_session("classical")
    sid = opened["session_id"]
    assert opened["engine"] == "classical" and opened["lease_s"] == 4
    assert c.session_image(sid, image)["shape"] == list(image.shape)
    point = [15, 50, 40]
    reply = c.session_edit(sid, "prompt", kind="point", point=point, positive=True)
    remote = np.zeros(image.shape, np.uint8)
    _decode_into(remote, reply)
    assert reply["can_undo"] and remote.any()
    assert reply["region"]["shape"] != list(image.shape) or remote.all()  # only the changed box travels
    with InteractiveSession(engine="classical", device="cpu") as local:
        local.set_image(image)
        local.add_point(point, True)
        assert np.array_equal(local.mask, remote)
    undone = c.session_edit(sid, "undo")
    _decode_into(remote, undone)
    assert not remote.any() and not undone["can_undo"]
    headers = {**server.auth, PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
    bad = requests.post(f"{server.url}/v1/sessions/{sid}/prompt", headers=headers,
                        json={"kind": "point", "point": [999, 0, 0]}, timeout=30)
    assert bad.status_code == 400 and "Traceback" not in bad.text
    assert c.close_session(sid)["closed"] is True
    gone = requests.post(f"{server.url}/v1/sessions/{sid}/undo", headers=headers, json={}, timeout=30)
    assert gone.status_code == 404


def test_sessions_are_bounded_and_idle_ones_are_reaped(server):
    c = _client(server)
    a, b = c.open_session("classical"), c.open_session("classical")
    full = requests.post(server.url + "/v1/sessions", headers={**server.auth, PROTOCOL_HEADER: str(PROTOCOL_VERSION)},
                         json={"engine": "classical"}, timeout=30)
    assert full.status_code == 503 and int(full.headers["Retry-After"]) >= 1
    time.sleep(4 + 6)  # the lease (4 s) plus the reaper's round
    for s in (a, b):
        r = requests.post(f"{server.url}/v1/sessions/{s['session_id']}/undo",
                          headers={**server.auth, PROTOCOL_HEADER: str(PROTOCOL_VERSION)}, json={}, timeout=30)
        assert r.status_code == 404, r.text
    c.close_session(c.open_session("classical")["session_id"])  # the places are free again


def test_interactive_cli_remote_equals_local(server, ct, tmp_path):
    args = ["-i", ct, "--engine", "classical", "--point", "15,50,40", "--negative", "15,20,20", "-q"]
    p1 = run_cli("interactive", *args, "-o", tmp_path / "local.nii.gz", "-d", "cpu")
    p2 = run_cli("interactive", *args, "-o", tmp_path / "remote.nii.gz", "--server", server.url, "--token", TOKEN)
    assert p1.returncode == 0 and p2.returncode == 0, p2.stderr
    from medsegai.io.read import read_image

    a, b = read_image(tmp_path / "local.nii.gz", validate=False), read_image(tmp_path / "remote.nii.gz", validate=False)
    assert a.array.any() and np.array_equal(a.array, b.array) and a.origin == b.origin and a.spacing == b.spacing
