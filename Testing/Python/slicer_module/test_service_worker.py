"""The job/worker boundary: job files, event lines, a real worker process run, error and cancel."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import medsegai
from medsegai.io.read import read_image
from medsegai.io.seg_nrrd import read_seg_nrrd
from medsegai.io.write import write_image
from medsegai.run_request import RunRequest
from medsegai.service import JobSpec, JobSpecError, WorkerProcess, decode_event, encode_event
from real_data import REFERENCE, ct_and_labels


def test_job_spec_round_trip_and_refusals(tmp_path):
    spec = JobSpec(input_path="in.nrrd", output_dir="out",
                   run=RunRequest(task="total", quality="fast", roi_subset=["liver"], precision="fp32"))
    path = spec.write(tmp_path / "job.json")
    assert JobSpec.read(path) == spec
    assert [p.name for p in tmp_path.iterdir()] == ["job.json"]  # no temporary file left beside it
    doc = json.loads(spec.to_json())
    for bad, words in (({"run": {**doc["run"], "quality": "best"}}, "quality"),
                       ({"run": {**doc["run"], "roi_subset": [""]}}, "subset"),
                       ({"run": {**doc["run"], "qualty": "fast"}}, "Unknown run option"),
                       ({"version": 1}, "version 1"), ({"colour": 1}, "unknown field")):
        with pytest.raises(JobSpecError, match=words):
            JobSpec.from_dict({**doc, **bad})
    with pytest.raises(JobSpecError, match="does not exist"):
        JobSpec.read(tmp_path / "missing.json")


def test_event_lines_round_trip_and_foreign_output_becomes_log():
    ev = decode_event(encode_event("progress", stage="predict", fraction=0.5, message="tile 3/6") + "\n")
    assert ev.kind == "progress" and ev.get("fraction") == 0.5 and not ev.final
    assert decode_event(encode_event("result", outputs={})).final
    stray = decode_event("Some library printed this\n")
    assert stray.kind == "log" and stray.get("message") == "Some library printed this"


def test_worker_with_a_broken_job_file_reports_an_error(tmp_path):
    job = tmp_path / "job.json"
    job.write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "medsegai.service.worker", str(job)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    events = [decode_event(line) for line in proc.stdout.splitlines()]
    assert events[-1].kind == "error" and "cannot be read" in events[-1].get("message")


@pytest.fixture
def ct_file(data_dir, tmp_path):
    img = read_image(str(data_dir / REFERENCE / "example_ct_sm.nii.gz"))
    crop = img.with_array(img.array)  # same grid; cropping keeps the test fast
    arr = img.array[6:26, 15:85, 20:100]
    origin = (img.ijk_to_lps() @ np.array([20, 15, 6, 1.0]))[:3]
    crop = medsegai.Image(np.ascontiguousarray(arr), img.spacing, tuple(origin), img.direction)
    path = tmp_path / "ct.nrrd"
    write_image(crop, path)
    return path, crop


def _spec(path, out, model, **run):
    return JobSpec(input_path=str(path), output_dir=str(out), run=RunRequest(model=str(model), device="cpu", **run))


@pytest.fixture
def worker(worker_env):
    w = WorkerProcess(env=worker_env)
    yield w
    w.shutdown()


def test_worker_stays_and_reuses_the_model(tiny_model, ct_file, tmp_path, worker):
    path, image = ct_file
    seen = []
    final = worker.submit(_spec(path, tmp_path / "out", tiny_model, threads=1)).wait(timeout=120, on_event=seen.append)
    assert final.kind == "result", final.data
    assert "write" in [e.get("stage") for e in seen if e.kind == "progress"]
    labels, segments = read_seg_nrrd(final.get("outputs")["seg_nrrd"])
    assert labels.same_grid(image)
    expected = medsegai.segment(image, model=str(tiny_model), device="cpu", threads=1)
    np.testing.assert_array_equal(labels.array, expected.labels.array)
    assert [s["name"] for s in final.get("segments")] == [s.name for s in expected.segments]
    # Only the finished folder is visible: no staging folder left beside it.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []
    assert not final.get("model_reused") and "load" in final.get("timings")

    pid = worker.pid
    second = worker.submit(_spec(path, tmp_path / "out2", tiny_model, threads=1, uncertainty="entropy")).wait(120)
    assert second.kind == "result", second.data
    assert worker.pid == pid and worker.starts == 1
    assert second.get("model_reused") and "load" not in second.get("timings")
    labels2, _ = read_seg_nrrd(second.get("outputs")["seg_nrrd"])
    np.testing.assert_array_equal(labels2.array, labels.array)
    reply = worker.request("ping")
    assert reply.get("ok") and reply.get("busy") is None and reply.get("models") == [tiny_model.name]


def test_worker_error_is_a_message_and_the_worker_goes_on(tiny_model, ct_file, tmp_path, worker):
    path, _ = ct_file
    final = worker.submit(_spec(path, tmp_path / "out", tmp_path / "no_such_model")).wait(timeout=120)
    assert final.kind == "error"
    assert "no_such_model" in final.get("message") and "Traceback" not in final.get("message")
    assert not (tmp_path / "out").exists()
    pid = worker.pid
    assert worker.submit(_spec(path, tmp_path / "ok", tiny_model, threads=1)).wait(timeout=120).kind == "result"
    assert worker.pid == pid


def _wait_for_prediction(job, timeout_s=60.0):
    """Until the network runs: a cancel or a kill then lands mid-job."""
    deadline = time.monotonic() + timeout_s
    while not any(e.kind == "progress" and e.get("stage") == "predict" for e in job.poll()):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_cancel_stops_the_job_within_two_seconds(tiny_model, ct_file, tmp_path, worker):
    path, _ = ct_file
    job = worker.submit(_spec(path, tmp_path / "out", tiny_model))
    _wait_for_prediction(job)
    t0 = time.monotonic()
    job.cancel()
    final = job.wait(timeout=30)
    assert time.monotonic() - t0 < 2.5
    assert final.kind == "cancelled"
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    # The next job runs, in this worker or (if it had to be killed) a new one.
    assert worker.submit(_spec(path, tmp_path / "next", tiny_model, threads=1)).wait(timeout=120).kind == "result"


def test_killed_worker_is_a_message_and_the_next_job_starts_a_new_one(tiny_model, ct_file, tmp_path, worker):
    path, _ = ct_file
    job = worker.submit(_spec(path, tmp_path / "out", tiny_model))
    _wait_for_prediction(job)
    os.kill(worker.pid, signal.SIGKILL)
    final = job.wait(timeout=30)
    assert final.kind == "error" and "stopped unexpectedly" in final.get("message")
    assert not (tmp_path / "out").exists()
    assert worker.submit(_spec(path, tmp_path / "next", tiny_model, threads=1)).wait(timeout=120).kind == "result"
    assert worker.starts == 2


def test_hung_worker_is_stopped_with_a_message(tiny_model, ct_file, tmp_path, worker_env):
    path, _ = ct_file
    worker = WorkerProcess(env=worker_env, heartbeat_timeout_s=4.0)
    try:
        job = worker.submit(_spec(path, tmp_path / "out", tiny_model))
        worker.request("ping", timeout=60)  # started and answering
        os.kill(worker.pid, signal.SIGSTOP)  # alive but silent, as a deadlocked process would be
        final = job.wait(timeout=60)
        assert final.kind == "error" and "stopped responding" in final.get("message")
        assert not worker.running
    finally:
        worker.shutdown()


def test_worker_exits_when_its_caller_goes_or_it_idles(worker_env):
    w = WorkerProcess(env=worker_env, idle_timeout_s=1.0)
    w.request("ping", timeout=60)
    deadline = time.monotonic() + 30
    while w.running:  # a heartbeat after the idle time ends it
        assert time.monotonic() < deadline
        time.sleep(0.1)
    w = WorkerProcess(env=worker_env)
    w.request("ping", timeout=60)
    w._process.popen.stdin.close()  # what Slicer exiting does to the pipe
    w._process.popen.wait(timeout=30)
    w = WorkerProcess(env=worker_env)
    w.request("ping", timeout=60)
    w.shutdown(timeout=30)
    assert not w.running


def test_unknown_request_gets_an_answer(worker):
    reply = worker.request("fly", timeout=60)
    assert reply.get("ok") is False and "Unknown request 'fly'" in reply.get("error")
