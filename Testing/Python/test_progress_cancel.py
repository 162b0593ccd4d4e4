"""Progress events and cancellation between tiles, through the API and a real CLI process (SIGINT)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import SimpleITK as sitk

import medsegai
from medsegai import CancelledError, CancelToken


@pytest.fixture(scope="module")
def ct_one_tile(ts_ref, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ct") / "one_tile.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(ts_ref / "example_ct_sm.nii.gz"))[30:94, 20:84, :], str(path))
    return path


@pytest.fixture(scope="module")
def ct_three_tiles(ts_ref, tmp_path_factory) -> Path:
    # 64 voxels wide in-plane x 128: three 64-wide tiles at step 0.5 with the 32x64x64 patch
    path = tmp_path_factory.mktemp("ct") / "three_tiles.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(ts_ref / "example_ct_sm.nii.gz"))[:, 20:84, :], str(path))
    return path


def test_progress_events(small_model, ct_one_tile):
    events = []
    result = medsegai.segment(ct_one_tile, model=small_model, device="cpu", progress=events.append)
    assert result.labels.shape == medsegai.io.read_image(ct_one_tile).shape
    stages = [e.stage for e in events]
    for stage in ("load", "preprocess", "predict", "export", "done"):
        assert stage in stages, stages
    assert all(0.0 <= e.fraction <= 1.0 for e in events)
    assert all(isinstance(e.message, str) for e in events)
    predict = [e.fraction for e in events if e.stage == "predict"]
    assert predict[-1] == 1.0
    assert predict == sorted(predict)  # never goes backwards within the stage
    assert events[-1].stage == "done" and events[-1].fraction == 1.0
    # stages start at their beginning: load reported before anything else
    assert events[0].stage == "load"


def test_cancel_from_callback_during_predict(small_model, ct_three_tiles):
    token = CancelToken()
    events = []

    def on_progress(ev):
        events.append(ev)
        if ev.stage == "predict" and 0 < ev.fraction < 1:
            token.cancel()  # after the first tile of three

    t0 = time.perf_counter()
    with pytest.raises(CancelledError, match="cancelled"):
        medsegai.segment(ct_three_tiles, model=small_model, device="cpu", progress=on_progress, cancel=token)
    elapsed = time.perf_counter() - t0
    tiles = [e for e in events if e.stage == "predict" and e.fraction > 0]
    assert len(tiles) == 1, [(e.stage, e.fraction) for e in events]  # no tile ran after the cancel
    assert not any(e.stage in ("export", "done") for e in events)
    assert elapsed < 60


def test_cancel_before_start_raises_immediately(small_model, ct_one_tile):
    token = CancelToken()
    token.cancel()
    events = []
    with pytest.raises(CancelledError):
        medsegai.segment(ct_one_tile, model=small_model, device="cpu", progress=events.append, cancel=token)
    assert not any(e.stage == "predict" and e.fraction > 0 for e in events)


def test_cli_sigint_cancels_and_writes_nothing(small_model, ts_ref, tmp_path):
    out_dir = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "medsegai.cli", "segment", "-i",
                             str(ts_ref / "example_ct_sm.nii.gz"), "-o", str(out_dir), "--model", str(small_model),
                             "--device", "cpu"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stderr:  # one line per stage when stderr is not a terminal
            lines.append(line)
            if line.startswith("predict"):
                proc.send_signal(signal.SIGINT)
                break
        _out, rest_err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(lines) + rest_err
    assert any(ln.startswith("predict") for ln in lines), err
    assert proc.returncode == 130, err
    assert "cancelled" in err and "No output was written" in err
    assert "Traceback" not in err
    assert "tile 9/9" not in err  # stopped between tiles, not after the whole prediction
    assert not out_dir.exists()
