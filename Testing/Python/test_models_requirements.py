"""Which models a run needs, what is missing, and a worker that downloads what the user agreed to
(a real runnable model served by a local HTTP server) before it segments."""
from __future__ import annotations

import numpy as np
import pytest

import medsegai
from medsegai.models import locate
from medsegai.models.requirements import fetch_missing, missing_models, models_for_run
from medsegai.run_request import RunRequest
from medsegai.service import JobSpec, WorkerProcess
from models_support.fixtures import model_env, server  # noqa: F401 (pytest fixtures)
from models_support.served_model import SERVED, served_model  # noqa: F401 (pytest fixture)

from totalseg_support import FAST, FASTEST, PARTS as PART_LABELS, make_task_model, total_class_map

PARTS = [name for name, _ in PART_LABELS]
ORGANS, RIBS = PARTS[0], PARTS[-1]


def test_models_a_run_needs(model_env):
    assert models_for_run("total", "fast") == [FAST]
    assert models_for_run("total", "fastest") == [FASTEST]
    assert models_for_run("total", "normal") == PARTS
    # A subset needs only the parts that hold it (by their catalogue structures) and the 6 mm model
    # that finds the region first.
    assert models_for_run("total", "normal", roi_subset=["liver"]) == [ORGANS, FASTEST]
    assert models_for_run("total", "normal", roi_subset=["rib_left_1", "liver"]) == [ORGANS, RIBS, FASTEST]
    assert models_for_run("total", "fast", roi_subset=["liver"]) == [FAST]
    assert models_for_run(None, model="medsegai_ct_demo") == ["medsegai_ct_demo"]
    assert models_for_run(None, model="/some/folder/model") == []
    # A task whose models come from a folder (--task total --model WEIGHTS_DIR) needs no catalogue model.
    assert models_for_run("total", "fast", model="/weights/folder") == []


def test_missing_models_in_a_fresh_cache(model_env):
    assert [s.model_id for s in missing_models(models_for_run("total", "normal"))] == PARTS
    assert missing_models(["medsegai_ct_demo"]) == []  # bundled


def test_a_subset_runs_with_only_its_parts_installed(model_env, monkeypatch, ts_ref, tmp_path_factory, nnunet_plans):
    """Before, every part was located (and had to be installed) only to read its labels."""
    plans, dataset = nnunet_plans
    weights = tmp_path_factory.mktemp("only_organs")
    total = total_class_map()
    names = {i + 1: total[v] for i, v in enumerate(PART_LABELS[0][1])}
    make_task_model(weights, ORGANS, plans, dataset, names, (3.0, 3.0, 3.0), seed=10, background_bias=3.0)
    make_task_model(weights, FASTEST, plans, dataset, total, (6.0, 6.0, 6.0), seed=2, patch=(16, 32, 32))
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(weights))
    assert missing_models(models_for_run("total", "normal", roi_subset=["liver"])) == []
    res = medsegai.segment(ts_ref / "example_ct_sm.nii.gz", task="total", quality="normal", roi_subset=["liver"],
                           device="cpu")
    assert set(np.unique(res.labels.array)) <= {0, 5}  # liver's value in the total task
    with pytest.raises(medsegai.errors.MedSegAIError, match="not installed"):
        medsegai.segment(ts_ref / "example_ct_sm.nii.gz", task="total", quality="normal", roi_subset=["aorta"],
                         device="cpu")


@pytest.fixture
def ct_file(ts_ref, tmp_path):
    from medsegai.io.read import read_image
    from medsegai.io.write import write_image

    img = read_image(ts_ref / "example_ct_sm.nii.gz")
    origin = (img.ijk_to_lps() @ np.array([20, 15, 6, 1.0]))[:3]
    crop = medsegai.Image(np.ascontiguousarray(img.array[6:26, 15:85, 20:100]), img.spacing, tuple(origin),
                          img.direction)
    path = tmp_path / "ct.nrrd"
    write_image(crop, path)
    return path, crop


@pytest.fixture
def worker_env():
    return {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_fetch_missing_downloads_once(served_model, server):
    assert [s.model_id for s in missing_models([served_model])] == [served_model]
    assert fetch_missing([served_model]) == [served_model]
    assert locate(served_model).available and missing_models([served_model]) == []
    assert fetch_missing([served_model]) == []
    assert len(server.gets(f"/{served_model}.zip")) == 1


def test_worker_downloads_what_the_job_allows_then_segments(served_model, server, ct_file, tmp_path, worker_env):
    path, image = ct_file
    worker = WorkerProcess(env=worker_env)
    run = RunRequest(model=served_model, device="cpu")
    spec = JobSpec(input_path=str(path), output_dir=str(tmp_path / "refused"), run=run)
    final = worker.submit(spec).wait(timeout=120)
    assert final.kind == "error" and "not installed" in final.get("message")
    assert server.gets(f"/{served_model}.zip") == []

    spec = JobSpec(input_path=str(path), output_dir=str(tmp_path / "out"), run=run, download_models=True)
    seen = []
    try:
        final = worker.submit(spec).wait(timeout=180, on_event=seen.append)
    finally:
        worker.shutdown()
    assert final.kind == "result", final.data
    assert "download" in {e.get("stage") for e in seen if e.kind == "progress"}
    assert locate(served_model).available
    expected = medsegai.segment(image, model=served_model, device="cpu", threads=1)
    from medsegai.io.seg_nrrd import read_seg_nrrd

    labels, _ = read_seg_nrrd(final.get("outputs")["seg_nrrd"])
    np.testing.assert_array_equal(labels.array, expected.labels.array)
