"""Real MRML scene and module logics from slicer-core (GUIDE.md section 3).

This folder must not be called ``slicer``: Testing/Python is on sys.path (its conftest puts it
there) and slicer-core's ``slicer`` package extends itself with every ``slicer`` folder found
on sys.path, importing our test modules as part of it. ``data_dir`` and ``small_model`` come
from Testing/Python/conftest.py."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "MedSegAI"))

import slicer  # noqa: E402

@pytest.fixture
def mrml():
    """A fresh scene with application, colors, segmentations and terminologies logics wired up."""
    from mrml_scene import install_as_current, make_scene

    scene = make_scene()
    saved = install_as_current(scene)
    yield scene
    slicer.mrmlScene, slicer.modules = saved
    scene.scene.Clear(1)


def add_volume(scene, array: np.ndarray, ijk_to_ras: np.ndarray, name="CT", label=False):
    cls = "vtkMRMLLabelMapVolumeNode" if label else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(cls, name)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras))
    slicer.util.updateVolumeFromArray(node, array)
    return node


def scene_snapshot(scene) -> dict:
    """Node IDs with their modification times and, for segmentations, every segment's voxels."""
    from MedSegAILib.segment_edits import mask_checksum

    out = {}
    for n in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(n)
        entry = [node.GetClassName(), node.GetName()]
        if node.IsA("vtkMRMLSegmentationNode"):
            seg = node.GetSegmentation()
            for s in range(seg.GetNumberOfSegments()):
                sid = seg.GetNthSegmentID(s)
                segment = seg.GetSegment(sid)
                entry.append((sid, segment.GetName(), segment.GetLabelValue(), tuple(segment.GetColor()),
                              mask_checksum(node, sid)))
        out[node.GetID()] = tuple(entry)
    return out


@pytest.fixture
def tiny_model(small_model) -> Path:
    """The lead's CI-sized nnU-Net folder (nnU-Net's own planner on the real example CT, random
    weights, TotalSegmentator structure names) from Testing/Python/conftest.py."""
    return small_model


@pytest.fixture
def worker_env():
    # Two shared cores: one thread per worker keeps the machine usable for everyone.
    return {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture
def logic(mrml, worker_env, tmp_path):
    """The Logic with its worker process (which stays between runs), stopped after the test."""
    from MedSegAILib.segment_logic import SegmentLogic

    core = SegmentLogic(mrml.scene, mrml.segmentations, work_root=str(tmp_path), worker_env=worker_env,
                        colors_logic=mrml.colors)
    yield core
    core.shutdown()


def segment_node(logic, volume, *, segmentation_node=None, on_edited="keep", timeout=180, download=True,
                 accept_licenses=False, progress=None, **run):
    """``logic.segment`` with the run options as keywords, returning the outcome (tests' shorthand)."""
    from medsegai.run_request import RunRequest

    return logic.segment(volume, RunRequest(**run), segmentation_node=segmentation_node, on_edited=on_edited,
                         timeout=timeout, download=download, accept_licenses=accept_licenses, progress=progress)
