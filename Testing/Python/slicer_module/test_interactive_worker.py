"""The ``session.*`` requests on the worker that stays, driven through the real client and process.

Every reply is compared with ``InteractiveSession`` run in this process on the same real CT with
the same prompts (the classical engine: deterministic, no network), so the channel is shown to
carry exactly what the session computed, and only the changed region.
"""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from medsegai.interactive import InteractiveSession
from medsegai.io.read import read_image
from medsegai.io.write import write_image
from medsegai.run_request import RunRequest
from medsegai.service import JobSpec, WorkerProcess, regions

POINT = (60, 50, 60)  # inside the abdomen of the example CT (k, j, i)


@pytest.fixture(scope="module")
def ct(data_dir):
    return read_image(data_dir / "ct/totalsegmentator-examples/tests/reference_files/example_ct.nii.gz")


@pytest.fixture
def ct_file(ct, tmp_path):
    path = tmp_path / "ct.nrrd"
    write_image(ct, path, compress=False)
    return path


@pytest.fixture
def worker(worker_env):
    w = WorkerProcess(env=worker_env)
    yield w
    w.shutdown()


def _open(worker, ct_file, sid="s1", engine="classical"):
    reply = worker.request("session.open", timeout=120, session_id=sid, engine=engine, device="cpu", threads=1)
    assert reply.get("ok"), reply.data
    reply = worker.request("session.image", timeout=120, session_id=sid, path=str(ct_file))
    assert reply.get("ok"), reply.data
    return reply


def _apply(mask, reply):
    values, offset = regions.decode(reply.get("region"))
    region = regions.region_of(values, offset)
    if not regions.is_empty(region):
        mask[region] = values
    return region


def test_region_codec_round_trips_and_refuses_what_does_not_match():
    rng = np.random.default_rng(3)
    values = (rng.random((7, 9, 11)) > 0.5).astype(np.uint8)
    packed = regions.encode(values, (1, 2, 3))
    back, offset = regions.decode(packed)
    np.testing.assert_array_equal(back, values)
    assert offset == (1, 2, 3) and regions.decode(regions.encode(np.zeros((0, 0, 0))))[0].size == 0
    with pytest.raises(regions.RegionFormatError, match="needs"):
        regions.decode({**packed, "shape": [7, 9, 12]})
    with pytest.raises(regions.RegionFormatError):
        regions.decode({"offset": [0, 0, 0]})


def test_session_over_the_channel_matches_the_session_in_process(worker, ct, ct_file):
    assert _open(worker, ct_file).get("shape") == list(ct.shape)
    local = InteractiveSession(engine="classical")
    local.set_image(ct)
    mirror = np.zeros(ct.shape, np.uint8)  # what a viewer holding only the replies sees

    reply = worker.request("session.prompt", timeout=60, session_id="s1", kind="point", positive=True,
                           point=list(POINT))
    assert reply.get("ok") and reply.get("can_undo") and not reply.get("can_redo"), reply.data
    region = _apply(mirror, reply)
    assert region == local.add_point(POINT)
    np.testing.assert_array_equal(mirror, local.mask)
    # Only the changed region travels, packed: far smaller than the image.
    assert 0 < len(reply.get("region")["bits"]) < ct.array.size / 50

    box = [[55, 66], [40, 60], [50, 75]]
    _apply(mirror, worker.request("session.prompt", timeout=60, session_id="s1", kind="box", positive=True, box=box))
    local.add_box(box)
    stroke = np.zeros((1, 6, 8), np.uint8)
    stroke[0, 2:4, 1:7] = 1
    _apply(mirror, worker.request("session.prompt", timeout=60, session_id="s1", kind="scribble", positive=False,
                                  mask=regions.encode(stroke, (60, 45, 55))))
    local.add_scribble(stroke, False, offset=(60, 45, 55))
    np.testing.assert_array_equal(mirror, local.mask)
    for op in ("undo", "undo", "redo"):
        _apply(mirror, worker.request(f"session.{op}", timeout=60, session_id="s1"))
        getattr(local, op)()
        np.testing.assert_array_equal(mirror, local.mask)

    ping = worker.request("ping").data
    assert list(ping["sessions"]) == ["s1"] and ping["sessions"]["s1"]["engine"] == "classical"
    assert ping["session_images"] == 1 and ping["sessions"]["s1"]["history_bytes"] > 0
    assert worker.request("session.close", session_id="s1").get("closed")
    ping = worker.request("ping").data
    assert ping["sessions"] == {} and ping["session_images"] == 0  # the mask, history and image are freed


def test_bad_requests_get_one_line_errors_and_change_nothing(worker, ct, ct_file):
    _open(worker, ct_file)
    first = worker.request("session.prompt", session_id="s1", kind="point", point=list(POINT), timeout=60)
    for bad, words in (({"kind": "point", "point": [500, 0, 0]}, "outside the image"),
                       ({"kind": "box", "box": [[5, 5], [0, 10], [0, 10]]}, "zero size"),
                       ({"kind": "wave"}, "Unknown prompt kind"),
                       ({"kind": "scribble", "mask": {"offset": [0, 0, 0], "shape": [1, 1, 9], "bits": "x"}},
                        "Malformed")):
        reply = worker.request("session.prompt", session_id="s1", timeout=60, **bad)
        assert reply.get("ok") is False and words in reply.get("error"), reply.data
        assert "\n" not in reply.get("error") and "Traceback" not in reply.get("error")
    reply = worker.request("session.undo", session_id="nobody", timeout=60)
    assert reply.get("error_type") == "UnknownSession"
    # The refused prompts left the history as it was: one undo takes back the first click.
    undo = worker.request("session.undo", session_id="s1", timeout=60)
    undone, offset = regions.decode(undo.get("region"))
    assert regions.region_of(undone, offset) == regions.region_of(*regions.decode(first.get("region")))
    assert not undone.any()
    assert not undo.get("can_undo") and undo.get("can_redo")


def test_amend_keeps_the_runner_mask_equal_to_what_the_caller_kept(worker, ct, ct_file):
    _open(worker, ct_file)
    mirror = np.zeros(ct.shape, np.uint8)
    region = _apply(mirror, worker.request("session.prompt", session_id="s1", kind="point", point=list(POINT),
                                           timeout=60))
    kept = mirror[region].copy()
    kept[: kept.shape[0] // 2] = 0  # the caller's masking refused half of it
    reply = worker.request("session.amend", session_id="s1", mask=regions.encode(kept, [s.start for s in region]),
                           last_step=True, timeout=60)
    assert reply.get("ok"), reply.data
    mirror[region] = kept
    for op in ("undo", "redo"):  # redo puts back what was kept, not what the engine proposed
        _apply(mirror, worker.request(f"session.{op}", session_id="s1", timeout=60))
    assert mirror.sum() == kept.sum() and np.array_equal(mirror[region], kept)
    outside = worker.request("session.amend", session_id="s1", mask=regions.encode(np.ones((2, 2, 2)), [0, 0, 0]),
                             last_step=True, timeout=60)
    assert outside.get("ok") is False and "not inside what the last prompt changed" in outside.get("error")
    # Without last_step it is an edit made elsewhere: no history step, undo still takes back the click only.
    painted = worker.request("session.amend", session_id="s1", mask=regions.encode(np.ones((2, 2, 2)), [0, 0, 0]),
                             timeout=60)
    assert painted.get("ok")
    _apply(mirror, painted)
    _apply(mirror, worker.request("session.undo", session_id="s1", timeout=60))
    assert mirror.sum() == 8 and mirror[:2, :2, :2].all()


def test_requests_have_a_non_blocking_form(worker, ct_file):
    rid = worker.send_request("session.open", session_id="s1", engine="classical")
    assert isinstance(rid, str)
    deadline = time.monotonic() + 60
    reply = None
    while reply is None:  # what a Qt timer does
        reply = worker.poll_reply(rid)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert reply.get("ok") and reply.get("engine") == "classical"
    assert worker.poll_reply(rid) is None  # collected once


def test_a_prompt_does_not_wait_behind_a_long_job(worker, ct, ct_file, tiny_model, tmp_path):
    _open(worker, ct_file)
    spec = JobSpec(input_path=str(ct_file), output_dir=str(tmp_path / "out"),
                   run=RunRequest(model=str(tiny_model), device="cpu", threads=1, uncertainty="tta",
                                  uncertainty_passes=8))
    job = worker.submit(spec)
    deadline = time.monotonic() + 120
    while not any(e.kind == "progress" and e.get("stage") == "predict" for e in job.poll()):
        assert time.monotonic() < deadline and not job.finished
        time.sleep(0.02)
    t0 = time.monotonic()
    reply = worker.request("session.prompt", session_id="s1", kind="point", point=list(POINT), timeout=60)
    answered = time.monotonic() - t0
    assert reply.get("ok"), reply.data
    assert not job.finished, "the job ended first: the test proves nothing"
    assert answered < 10.0
    job.cancel()
    assert job.wait(timeout=30).kind == "cancelled"


def test_a_killed_worker_ends_pending_requests_with_a_message(worker, ct_file):
    _open(worker, ct_file)
    os.kill(worker.pid, signal.SIGSTOP)  # holds the next requests unanswered
    rid = worker.send_request("session.prompt", session_id="s1", kind="point", point=list(POINT))
    os.kill(worker.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    reply = None
    while reply is None:
        reply = worker.poll_reply(rid)
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert reply.get("ok") is False and reply.get("lost") and reply.get("error_type") == "WorkerCrashed"
    assert "stopped unexpectedly (exit code -9)" in reply.get("error")
    # The next session starts a new worker.
    _open(worker, ct_file, sid="s2")
    assert worker.starts == 2 and worker.generation == 2
    assert worker.request("session.prompt", session_id="s2", kind="point", point=list(POINT), timeout=60).get("ok")


def test_idle_sessions_are_closed_and_say_so(worker_env, ct_file):
    w = WorkerProcess(env=worker_env, session_idle_timeout_s=1.0)
    try:
        _open(w, ct_file)
        deadline = time.monotonic() + 30
        while w.request("ping").get("sessions"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        reply = w.request("session.prompt", session_id="s1", kind="point", point=list(POINT), timeout=60)
        assert reply.get("error_type") == "UnknownSession" and "idle" in reply.get("error")
        assert w.request("ping").get("session_images") == 0
    finally:
        w.shutdown()
