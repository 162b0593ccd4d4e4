"""The Logic with uncertainty, end to end through the worker process on real CT."""
from __future__ import annotations

import numpy as np
import pytest
import slicer

import medsegai
from conftest import add_volume, scene_snapshot, segment_node
from geometry_cases import GEOMETRIES
from real_data import ct_and_labels
from medsegai.errors import MedSegAIError

from MedSegAILib.errors import InputError
from MedSegAILib.segment_logic import SegmentationRequest
from medsegai.run_request import RunRequest
from MedSegAILib.uncertainty_scores import read_confidence
from MedSegAILib.volume_bridge import image_from_volume

CROP = (slice(6, 26), slice(15, 85), slice(20, 100))


@pytest.fixture
def ct_volume(mrml, data_dir):
    ct, _ = ct_and_labels(data_dir, CROP)
    return add_volume(mrml.scene, ct, GEOMETRIES["oblique_anisotropic"])


def test_console_api_returns_the_map_and_the_scores(logic, mrml, ct_volume, tiny_model, tmp_path):
    outcome = segment_node(logic, ct_volume, model=str(tiny_model), device="cpu", uncertainty="entropy",
                           confidence_threshold=0.9)
    # One thread, as in the worker (worker_env): oneDNN's results depend on the thread count.
    expected = medsegai.segment(image_from_volume(ct_volume), model=str(tiny_model), device="cpu",
                                uncertainty="entropy", threads=1)
    node = outcome.uncertainty_node
    assert node is not None and node.IsA("vtkMRMLScalarVolumeNode") and outcome.uncertainty_method == "entropy"
    np.testing.assert_allclose(slicer.util.arrayFromVolume(node), expected.uncertainty.array, atol=1e-6)
    import vtk

    a, b = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(a)
    ct_volume.GetIJKToRASMatrix(b)
    np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(a), slicer.util.arrayFromVTKMatrix(b), atol=1e-9)
    assert node.GetDisplayNode().GetColorNode() is not None
    assert set(outcome.confidence) == set(expected.segment_confidence)
    tags = {s.name: s for s in read_confidence(outcome.segmentation_node).values()}
    assert set(tags) == set(expected.segment_confidence)
    for name, vals in expected.segment_confidence.items():
        assert tags[name].soft_dice == pytest.approx(vals["soft_dice"], abs=1e-5)
        assert tags[name].flagged == (vals["soft_dice"] < 0.9)  # the request's threshold, not the default
    seg_id, ras = logic.jump_to_least_confident(outcome.segmentation_node, ct_volume)
    worst = min(expected.segment_confidence, key=lambda n: expected.segment_confidence[n]["soft_dice"])
    assert outcome.segmentation_node.GetSegmentation().GetSegment(seg_id).GetName() == worst
    stats = logic.statistics(outcome.segmentation_node, ct_volume, uncertainty_volume=node)
    assert all(0 <= s.confidence <= 1 and 0 <= s.mean_uncertainty <= 1 for s in stats)
    assert not list(tmp_path.glob("MedSegAI-*")), "temporary files left behind"


def test_an_impossible_request_fails_cleanly(logic, mrml, ct_volume, tiny_model, tmp_path):
    before = scene_snapshot(mrml.scene)
    with pytest.raises(InputError, match="Unknown uncertainty method"):
        logic.start(SegmentationRequest(ct_volume, RunRequest(model=str(tiny_model), uncertainty="bayes")))
    with pytest.raises(MedSegAIError, match="dropout"):
        segment_node(logic, ct_volume, model=str(tiny_model), device="cpu", uncertainty="mcdropout")
    assert scene_snapshot(mrml.scene) == before
    assert not list(tmp_path.glob("MedSegAI-*"))
    with pytest.raises(InputError, match="no confidence scores"):
        seg = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        logic.jump_to_least_confident(seg, ct_volume)
