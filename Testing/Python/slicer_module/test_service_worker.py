"""The job/worker boundary: job files, event lines, a real worker process run, error and cancel."""
from __future__ import annotations

import json
import os
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
from medsegai.service import JobSpec, JobSpecError, WorkerProcess, decode_event, encode_event
from real_data import REFERENCE, ct_and_labels


def test_job_spec_round_trip_and_refusals(tmp_path):
    spec = JobSpec(input_path="in.nrrd", output_dir="out", task="total", quality="fast", roi_subset=["liver"])
    path = spec.write(tmp_path / "job.json")
    assert JobSpec.read(path) == spec
    for bad, words in (({"quality": "best"}, "quality"), ({"roi_subset": [""]}, "subset"),
                       ({"task": None}, "neither a model nor a task"), ({"colour": 1}, "unknown field")):
        doc = {**json.loads(spec.to_json()), **bad}
        with pytest.raises(JobSpecError, match=words):
            JobSpec.from_dict(doc)
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


def test_worker_runs_a_job_and_matches_the_in_process_runner(tiny_model, ct_file, tmp_path, worker_env):
    path, image = ct_file
    spec = JobSpec(input_path=str(path), output_dir=str(tmp_path / "out"), model=str(tiny_model), device="cpu",
                   threads=1, cancel_file=str(tmp_path / "cancel"))
    proc = WorkerProcess(spec, tmp_path / "job.json", env=worker_env).start()
    seen = []
    final = proc.wait(timeout=120, on_event=seen.append)
    assert final.kind == "result", final.data
    stages = [e.get("stage") for e in seen if e.kind == "progress"]
    assert stages[0] == "start" and "write" in stages
    labels, segments = read_seg_nrrd(final.get("outputs")["seg_nrrd"])
    assert labels.same_grid(image)
    expected = medsegai.segment(image, model=str(tiny_model), device="cpu", threads=1)
    np.testing.assert_array_equal(labels.array, expected.labels.array)
    assert [s["name"] for s in final.get("segments")] == [s.name for s in expected.segments]
    # Only the finished folder is visible: no staging folder left beside it.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []


def test_worker_error_is_a_message_not_a_traceback(ct_file, tmp_path, worker_env):
    path, _ = ct_file
    spec = JobSpec(input_path=str(path), output_dir=str(tmp_path / "out"), model=str(tmp_path / "no_such_model"),
                   device="cpu")
    final = WorkerProcess(spec, tmp_path / "job.json", env=worker_env).start().wait(timeout=120)
    assert final.kind == "error"
    assert "no_such_model" in final.get("message") and "Traceback" not in final.get("message")
    assert not (tmp_path / "out").exists()


def test_cancel_stops_the_worker_within_two_seconds(tiny_model, ct_file, tmp_path, worker_env):
    path, _ = ct_file
    spec = JobSpec(input_path=str(path), output_dir=str(tmp_path / "out"), model=str(tiny_model), device="cpu",
                   cancel_file=str(tmp_path / "cancel"))
    proc = WorkerProcess(spec, tmp_path / "job.json", env=worker_env).start()
    deadline = time.monotonic() + 60
    while not any(e.kind == "progress" for e in proc.poll()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    t0 = time.monotonic()
    proc.cancel()
    final = proc.wait(timeout=30)
    assert time.monotonic() - t0 < 2.5
    assert final.kind == "cancelled"
    assert not proc.running
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
