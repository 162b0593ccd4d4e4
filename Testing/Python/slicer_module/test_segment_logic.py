"""The Logic end to end on real CT: worker process, import, statistics, bad input, cancel."""
from __future__ import annotations

import csv
import time

import numpy as np
import pytest
import slicer

import medsegai
from conftest import add_volume, scene_snapshot, segment_node
from geometry_cases import GEOMETRIES
from real_data import ct_and_labels
from medsegai.errors import CancelledError, MedSegAIError

from MedSegAILib.errors import EditedSegmentsError, InputError, ModelsNotInstalledError
from models_support.fixtures import model_env, server  # noqa: F401 (pytest fixtures)
from models_support.served_model import served_model  # noqa: F401 (pytest fixture)
from MedSegAILib.segment_logic import SegmentationRequest
from medsegai.run_request import RunRequest
from MedSegAILib.statistics import statistics_to_table, write_statistics_csv
from MedSegAILib.volume_bridge import image_from_volume

CROP = (slice(6, 26), slice(15, 85), slice(20, 100))


@pytest.fixture
def ct_volume(mrml, data_dir):
    ct, _ = ct_and_labels(data_dir, CROP)
    return add_volume(mrml.scene, ct, GEOMETRIES["oblique_anisotropic"])


def test_console_api_returns_a_segmentation_matching_the_runner(logic, mrml, ct_volume, tiny_model, tmp_path):
    node = segment_node(logic, ct_volume, model=str(tiny_model), device="cpu").segmentation_node
    expected = medsegai.segment(image_from_volume(ct_volume), model=str(tiny_model), device="cpu")
    present = expected.present_segments()
    assert present and node.GetSegmentation().GetNumberOfSegments() == len(present)
    for info in present:
        seg_id = node.GetSegmentation().GetSegmentIdBySegmentName(info.name)
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(node, seg_id, ct_volume)
        np.testing.assert_array_equal(mask > 0, expected.labels.array == info.value, err_msg=info.name)
    assert not list(tmp_path.glob("MedSegAI-*")), "temporary files left behind"

    # Statistics from the scene equal numpy on the same voxels; CSV and table agree.
    stats = logic.statistics(node, ct_volume)
    ct = slicer.util.arrayFromVolume(ct_volume).astype(float)
    voxel_ml = np.prod(ct_volume.GetSpacing()) / 1000
    for s in stats:
        value = next(i.value for i in present if i.name == s.name)
        inside = ct[expected.labels.array == value]
        assert s.voxels == inside.size
        assert s.volume_ml == pytest.approx(inside.size * voxel_ml)
        assert s.mean == pytest.approx(inside.mean()) and s.std == pytest.approx(inside.std())
    rows = list(csv.reader(open(write_statistics_csv(stats, tmp_path / "stats.csv"))))
    assert rows[0][:3] == ["Segment", "Voxels", "Volume [mL]"] and len(rows) == len(stats) + 1
    table = statistics_to_table(mrml.scene, stats)
    assert table.GetNumberOfRows() == len(stats) and table.GetCellText(0, 0) == stats[0].name

    # A second run into the same node after a user edit: refused, then kept on request.
    seg_id = node.GetSegmentation().GetNthSegmentID(0)
    name = node.GetSegmentation().GetSegment(seg_id).GetName()
    arr = slicer.util.arrayFromSegmentInternalBinaryLabelmap(node, seg_id)
    arr[arr == node.GetSegmentation().GetSegment(seg_id).GetLabelValue()] = 0
    node.GetBinaryLabelmapInternalRepresentation(seg_id).Modified()
    running = logic.start(SegmentationRequest(ct_volume, RunRequest(model=str(tiny_model), device="cpu"),
                                              segmentation_node=node, on_edited="error"))
    running.job.wait(timeout=180)
    before = scene_snapshot(mrml.scene)
    with pytest.raises(EditedSegmentsError, match=name):
        logic.finish(running)
    assert scene_snapshot(mrml.scene) == before
    outcome = logic.finish(running, on_edited="keep")
    assert outcome.update.kept_edited == [name] and not outcome.update.created_node
    assert not slicer.util.arrayFromSegmentBinaryLabelmap(node, seg_id, ct_volume).any()


def test_subset_keeps_only_the_chosen_structures(logic, ct_volume, tiny_model):
    node = segment_node(logic, ct_volume, model=str(tiny_model), device="cpu", roi_subset=["liver"]).segmentation_node
    names = {node.GetSegmentation().GetNthSegment(n).GetName() for n in range(node.GetSegmentation().GetNumberOfSegments())}
    assert names <= {"liver"}


def test_bad_input_is_refused_before_any_work(logic, mrml, data_dir, ct_volume, tiny_model, tmp_path):
    _, labels = ct_and_labels(data_dir, CROP)
    label_node = add_volume(mrml.scene, labels, GEOMETRIES["ras"], name="labels", label=True)
    table = mrml.scene.AddNewNodeByClass("vtkMRMLTableNode", "not a segmentation")
    before = scene_snapshot(mrml.scene)
    cases = [
        (None, {}, {}, "Select an input volume"),
        (label_node, {}, {}, "label map"),
        (ct_volume, {"roi_subset": []}, {}, "subset is empty"),
        (ct_volume, {"roi_subset": ["liver", "unicorn"]}, {}, "unicorn"),
        (ct_volume, {"quality": "best"}, {}, "quality"),
        (ct_volume, {"precision": "int4"}, {}, "precision"),
        (ct_volume, {"tile_step": 2.0}, {}, "tile step"),
        (ct_volume, {}, {"segmentation_node": table}, "segmentation node"),
    ]
    for volume, run, extra, words in cases:
        with pytest.raises(InputError, match=words):
            logic.start(SegmentationRequest(volume, RunRequest(task="total", **run), **extra))
    assert scene_snapshot(mrml.scene) == before
    assert not list(tmp_path.glob("MedSegAI-*"))


def test_missing_or_broken_model_gives_a_message_and_no_change(logic, mrml, ct_volume, tiny_model, tmp_path):
    broken = tmp_path / "broken" / tiny_model.name
    broken.mkdir(parents=True)
    for f in ("plans.json", "dataset.json"):
        (broken / f).write_bytes((tiny_model / f).read_bytes())
    (broken / "fold_0").mkdir()
    (broken / "fold_0" / "checkpoint_final.pth").write_bytes(b"not a checkpoint")
    before = scene_snapshot(mrml.scene)
    for model in (str(tmp_path / "nowhere"), str(broken)):
        with pytest.raises(MedSegAIError) as info:
            segment_node(logic, ct_volume, model=model, device="cpu")
        assert "Traceback" not in str(info.value)
        assert scene_snapshot(mrml.scene) == before
    assert not list(tmp_path.glob("MedSegAI-*"))


def test_cancel_halfway_leaves_the_scene_unchanged(logic, mrml, ct_volume, tiny_model, tmp_path):
    before = scene_snapshot(mrml.scene)
    running = logic.start(SegmentationRequest(ct_volume, RunRequest(model=str(tiny_model), device="cpu")))
    deadline = time.monotonic() + 60
    while not any(e.kind == "progress" for e in running.poll()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    t0 = time.monotonic()
    running.cancel()
    while not running.done:
        running.poll()
        time.sleep(0.02)
    assert time.monotonic() - t0 < 2.5 and running.cancelled
    with pytest.raises(CancelledError):
        logic.finish(running)
    assert scene_snapshot(mrml.scene) == before
    assert not list(tmp_path.glob("MedSegAI-*"))


def test_a_model_not_installed_is_named_before_the_run_or_downloaded_from_the_console(
        served_model, server, logic, mrml, ct_volume, tmp_path):
    before = scene_snapshot(mrml.scene)
    request = SegmentationRequest(ct_volume, RunRequest(model=served_model, device="cpu"))
    assert [m.model_id for m in logic.missing_models(request)] == [served_model]
    with pytest.raises(ModelsNotInstalledError) as info:
        segment_node(logic, ct_volume, model=served_model, device="cpu", download=False)
    message = str(info.value)
    assert served_model in message and "download=True" in message and "import_model" in message
    assert server.url(f"/{served_model}.zip") in message  # where to get it on another computer
    assert scene_snapshot(mrml.scene) == before and server.gets(f"/{served_model}.zip") == []
    assert not list(tmp_path.glob("MedSegAI-*"))

    # The console downloads by default, as TotalSegmentator does.
    node = segment_node(logic, ct_volume, model=served_model, device="cpu").segmentation_node
    assert node.GetSegmentation().GetNumberOfSegments() > 0
    assert logic.missing_models(request) == [] and len(server.gets(f"/{served_model}.zip")) == 1
