"""The Slicer Logic as an entry point, on a real MRML scene from slicer-core (the scene and helpers
the module's own tests use, Testing/Python/slicer_module): the case's file is loaded as Slicer
would load it (SimpleITK, no MedSegAI checks), then ``SegmentLogic.segment`` runs in its worker."""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

from .checks import Outcome
from .corpus import REPO, Case, Inputs

SLICER_TESTS = REPO / "Testing/Python/slicer_module"


def _slicer_test_helpers():
    """(make_scene, install_as_current, scene_snapshot) from the module's tests, not copies of them."""
    for p in (str(REPO / "MedSegAI"), str(SLICER_TESTS)):
        if p not in sys.path:
            sys.path.insert(0, p)
    from mrml_scene import install_as_current, make_scene

    # Its conftest is imported under its own name: "conftest" is taken by whichever suite runs us.
    spec = importlib.util.spec_from_file_location("medsegai_slicer_module_conftest", SLICER_TESTS / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return make_scene, install_as_current, mod.scene_snapshot


class LogicStand:
    """One scene and one Logic (with its worker process) for every case."""

    def __init__(self, work_root: Path, env: dict):
        make_scene, install_as_current, self.snapshot = _slicer_test_helpers()
        from MedSegAILib.segment_logic import SegmentLogic

        self.mrml = make_scene()
        self._saved = install_as_current(self.mrml)
        self.work_root = work_root
        work_root.mkdir(parents=True, exist_ok=True)
        self.logic = SegmentLogic(self.mrml.scene, self.mrml.segmentations, work_root=str(work_root),
                                  worker_env={k: env[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in env},
                                  colors_logic=self.mrml.colors)

    def shutdown(self) -> None:
        import slicer

        self.logic.shutdown()
        slicer.mrmlScene, slicer.modules = self._saved  # as it was: other tests in this process use slicer

    def _volume(self, path: Path):
        """The node Slicer's volume reader would make, or None where Slicer could not load the file."""
        import SimpleITK as sitk
        import slicer

        try:
            img = sitk.ReadImage(str(path))
        except RuntimeError:
            return None
        if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
            return None
        lps = np.eye(4)
        lps[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing())
        lps[:3, 3] = img.GetOrigin()
        node = self.mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", path.name)
        node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps))
        slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(img))
        return node

    def run(self, case: Case, inputs: Inputs, ctx) -> Outcome:
        from medsegai.errors import MedSegAIError
        from medsegai.run_request import RunRequest

        if case.kind != "segment" or inputs.input is None or inputs.input.is_dir():
            return Outcome("n/a")
        node = self._volume(inputs.input)
        if node is None:
            return Outcome("n/a")
        scene = self.mrml.scene
        before = self.snapshot(scene)
        started = time.monotonic()
        outcome = None
        try:
            result = self.logic.segment(node, RunRequest(model=str(inputs.model), device="cpu", threads=1),
                                        timeout=ctx.timeout(case), download=False)
            outcome = Outcome("ok", seconds=time.monotonic() - started, labels=result.result.labels)
            if result.segmentation_node.GetSegmentation().GetNumberOfSegments() == 0 and case.expect == "ok":
                outcome.notes.append("the segmentation node has no segments")
            created = [result.segmentation_node]
        except MedSegAIError as exc:
            outcome = Outcome("error", str(exc), type(exc).__name__, seconds=time.monotonic() - started)
            created = []
            if self.snapshot(scene) != before:
                outcome.notes.append("the scene changed")
        except Exception as exc:  # noqa: BLE001 - an untyped escape is a finding, not a crash of the corpus
            outcome = Outcome("error", f"{type(exc).__name__}: {exc}", f"untyped {type(exc).__name__}",
                              seconds=time.monotonic() - started)
            created = []
        left = [p.name for p in self.work_root.glob("MedSegAI-*")]
        if left:
            outcome.notes.append(f"work files left: {left[:3]}")
        for n in created + [node]:
            scene.RemoveNode(n)
        return outcome
