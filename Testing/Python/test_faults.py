"""Faults survived with nothing lost or corrupted (issue 17, item 3).

Covered here: the Logic's worker killed mid-run; a download cut at random offsets; a file changed on
the server between two attempts; the disk filling up while the outputs of a rerun are written.
Covered elsewhere, not repeated: a batch killed with SIGKILL and resumed
(test_batch.py::test_kill_9_mid_batch_then_rerun_does_every_study_once_with_no_partial_files), the
server killed mid-job (test_remote.py::test_a_server_killed_mid_job_gives_the_client_a_clear_error),
a pull killed mid-download (test_models_install.py::test_pull_in_another_process_killed_mid_download).
"""
from __future__ import annotations

import hashlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medsegai.models.download import DownloadOptions, download_file
from medsegai.models.errors import DownloadError
from models_support.fixtures import model_env, server  # noqa: F401 (pytest fixtures)
from models_support.http_server import Route
from server_support import CLI, env

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Testing"))

from Robustness.corpus import DEMO_MODEL  # noqa: E402

NO_RETRY = DownloadOptions(connect_timeout_s=2, read_timeout_s=2, retries=0, backoff_s=0.01, chunk_size=16 * 1024,
                           progress_interval_s=0.0)


# -- the worker killed during a run ---------------------------------------------------------------
def test_a_worker_killed_mid_run_is_reported_the_scene_is_unchanged_and_the_next_run_works(ts_ref, tmp_path):
    from medsegai.errors import MedSegAIError
    from medsegai.run_request import RunRequest
    from Robustness.entry_logic import LogicStand

    stand = LogicStand(tmp_path / "work", {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    try:
        from MedSegAILib.segment_logic import SegmentationRequest

        volume = stand._volume(ts_ref / "example_ct.nii.gz")
        before = stand.snapshot(stand.mrml.scene)
        # a small tile step: many tiles, so the kill lands inside the network passes
        run = RunRequest(model=str(DEMO_MODEL), device="cpu", threads=1, tile_step=0.2)
        running = stand.logic.start(SegmentationRequest(volume, run))
        deadline = time.monotonic() + 600
        while not any(ev.kind == "progress" and ev.get("stage") == "predict" for ev in running.job.poll()):
            assert time.monotonic() < deadline, "the run never reached the network"
            time.sleep(0.05)
        os.kill(stand.logic.worker.pid, signal.SIGKILL)
        running.job.wait(timeout=120)
        with pytest.raises(MedSegAIError) as info:
            stand.logic.finish(running)
        message = str(info.value)
        assert "\n" not in message and "Traceback" not in message
        assert "worker" in message.lower() or "stopped" in message.lower(), message
        assert stand.snapshot(stand.mrml.scene) == before
        assert not list((tmp_path / "work").glob("MedSegAI-*")), "work files left behind"

        outcome = stand.logic.segment(volume, RunRequest(model=str(DEMO_MODEL), device="cpu", threads=1),
                                      timeout=600)
        assert outcome.segmentation_node.GetSegmentation().GetNumberOfSegments() > 0
        assert outcome.result.labels.array.shape == (112, 101, 122)
    finally:
        stand.shutdown()


# -- downloads ----------------------------------------------------------------------------------
BODY = np.random.default_rng(17).bytes(1 << 20)


def _cut_next_request(server, path: str, body: bytes, at: int) -> None:
    """The next request for ``path`` (whatever came before) is cut after ``at`` body bytes."""
    server.routes[path] = Route(body, cut_after=at, cut_times=server.hits.get(path, 0) + 1)


@pytest.mark.timeout(60)
def test_a_download_cut_at_random_offsets_resumes_each_time_and_ends_with_the_right_hash(model_env, server, tmp_path):
    rng = np.random.default_rng(1)
    part = tmp_path / "m.part"
    have, ranges_sent = 0, [None]
    for _ in range(5):
        cut = int(rng.integers(1, 150_000))
        _cut_next_request(server, "/m.zip", BODY, cut)
        with pytest.raises(DownloadError, match="kept and the next try resumes"):
            download_file(server.url("/m.zip"), part, options=NO_RETRY)
        assert part.stat().st_size == have + cut  # every byte received is kept, none twice
        assert part.read_bytes() == BODY[: have + cut]
        have += cut
        ranges_sent.append(f"bytes={have}-")
    server.routes["/m.zip"] = Route(BODY)
    result = download_file(server.url("/m.zip"), part, options=NO_RETRY)
    assert result.resumed_from == have
    assert hashlib.sha256(part.read_bytes()).hexdigest() == hashlib.sha256(BODY).hexdigest()
    assert [r.headers.get("Range") for r in server.gets("/m.zip")] == ranges_sent


@pytest.mark.timeout(60)
def test_a_file_that_changed_on_the_server_between_attempts_is_not_spliced(model_env, server, tmp_path):
    part = tmp_path / "m.part"
    _cut_next_request(server, "/m.zip", BODY, 300_000)
    with pytest.raises(DownloadError):
        download_file(server.url("/m.zip"), part, options=NO_RETRY)
    newer = BODY[::-1]  # the publisher replaced the file: another ETag
    server.routes["/m.zip"] = Route(newer)
    download_file(server.url("/m.zip"), part, options=NO_RETRY)
    assert hashlib.sha256(part.read_bytes()).digest() == hashlib.sha256(newer).digest()


# -- the disk fills up while a rerun writes its outputs ---------------------------------------------
def _segment(ct: Path, out: Path, fsize=None) -> subprocess.CompletedProcess:
    def limit():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run(CLI + ["segment", "-i", str(ct), "-o", str(out), "--model", str(DEMO_MODEL), "-d", "cpu",
                                 "-nt", "1", "-q", "--ml"], capture_output=True, text=True, env=env(),
                          preexec_fn=limit, timeout=900)


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_full_disk_during_a_rerun_keeps_the_earlier_result_whole(ts_ref, tmp_path):
    img = sitk.ReadImage(str(ts_ref / "example_ct_sm.nii.gz"))
    first, second = tmp_path / "first.nii.gz", tmp_path / "second.nii.gz"
    sitk.WriteImage(img, str(first))
    sitk.WriteImage(img[:, :, 2:], str(second))  # another scan: other results, other file sizes
    out = tmp_path / "out"
    assert _segment(first, out).returncode == 0
    earlier = _tree(out)
    sizes = {n: (out / n).stat().st_size for n in earlier}
    # The label NIfTI is written first, then the .seg.nrrd: a limit between the two lets the first
    # replace the earlier file and stops the second, the moment a half-old, half-new result appears.
    nifti, nrrd = sizes["segmentation.nii.gz"], sizes["segmentation.seg.nrrd"]
    assert nrrd > nifti + 2048, sizes
    p = _segment(second, out, fsize=(nifti + nrrd) // 2)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.strip().splitlines()[-1].startswith("medsegai: error: ")
    assert re.search("File too large|No space|Cannot write", p.stderr), p.stderr
    assert _tree(out) == earlier  # every earlier file as it was, nothing new, no temp files
    assert sorted(x.name for x in out.iterdir()) == sorted(earlier)
