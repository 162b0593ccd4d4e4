"""The module's parts that meet the Slicer application: its declaration and terminology at start-up,
the first-use dependency dialog, and the self-test that "Reload and Test" runs. Same emulated
application as test_module_widget.py (pythonqt_env); the MRML scene, Qt and the runs are real."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import slicer

from widget_fixtures import module_widget, slicer_app  # noqa: F401

from MedSegAILib import dependencies

REPO = Path(__file__).resolve().parents[3]
SLICER_PACKAGES = {"SimpleITK": "2.4.0", "numpy": "1.26.4", "requests": "2.32.0", "vtk": "9.2.20230607"}


def test_module_declares_itself_and_registers_its_terminology_at_startup(slicer_app, mrml, monkeypatch):
    import MedSegAI

    parent = SimpleNamespace(path=str(REPO / "MedSegAI" / "MedSegAI.py"))
    MedSegAI.MedSegAI(parent)
    assert parent.title == "MedSegAI" and parent.categories == ["Segmentation"]
    assert not parent.icon.isNull() and "TotalSegmentator" in parent.acknowledgementText
    fresh = slicer.vtkSlicerTerminologiesModuleLogic()
    monkeypatch.setattr(slicer.modules, "terminologies", SimpleNamespace(logic=lambda: fresh))
    slicer_app.emit("startupCompleted()")
    import vtk

    names = vtk.vtkStringArray()
    fresh.GetLoadedTerminologyNames(names)
    loaded = [names.GetValue(i) for i in range(names.GetNumberOfValues())]
    assert any("MedSegAI" in n for n in loaded), loaded


_original_plan = dependencies.plan_installation


@pytest.fixture
def missing_packages(monkeypatch):
    """Slicer with an old torch and without scikit-image; pip and the restart recorded, not run."""
    versions = {"torch": "2.0.1", "scipy": "1.13.0", "scikit-image": None, "monai": "1.5.0", "pillow": "10.0.0",
                "filelock": "3.13.1", **SLICER_PACKAGES}
    monkeypatch.setattr(dependencies, "plan_installation", lambda: _original_plan(versions.get))
    calls = []
    monkeypatch.setattr(slicer.util, "pip_install", lambda args: calls.append(args))
    return calls


class _PyTorchUtilsLogic:
    """Slicer's PyTorch extension's logic, with the signature of its installTorch."""
    calls = []

    def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None,
                     torchvisionVersionRequirement=None):
        self.calls.append({"askConfirmation": askConfirmation, "torchVersionRequirement": torchVersionRequirement})
        return object()  # the imported torch module


def test_dependencies_install_only_after_the_user_agrees_and_keep_slicers_packages(
        module_widget, missing_packages, monkeypatch):
    import qt

    from MedSegAIGui.dependency_installer import ensure_dependencies

    robot, app = module_widget.robot, module_widget.app
    monkeypatch.delitem(sys.modules, "PyTorchUtils", raising=False)

    robot.answer(qt.QMessageBox.Cancel)
    assert ensure_dependencies() is False
    (question,) = robot.take()
    assert "PyTorch" in question.text and "scikit-image" in question.text and set(question.buttons) == {"OK", "Cancel"}
    assert missing_packages == []

    # Apply with the question declined: no run starts, the scene is untouched.
    robot.answer(qt.QMessageBox.Cancel)
    module_widget.ui.applyButton.enabled = True
    module_widget.ui.applyButton.click()
    assert module_widget.panel.running is None and robot.take()

    # Agreed, without Slicer's PyTorch extension: torch from pip, then the rest under constraints
    # that pin Slicer's own packages; the restart prompt, since torch was already there.
    restarts = app.restarts
    robot.answer(qt.QMessageBox.Ok, qt.QMessageBox.Yes)
    assert ensure_dependencies() is True
    assert [d.answered for d in robot.take()] == ["OK", "Yes"]
    assert missing_packages[0] == '"torch<3,>=2.1"' or missing_packages[0] == '"torch>=2.1,<3"'
    assert '"scikit-image>=0.21,<1"' in missing_packages[1]
    constraints = Path(missing_packages[1].split('-c "')[1].rstrip('"'))
    assert sorted(constraints.read_text().split()) == sorted(f"{k}=={v}" for k, v in SLICER_PACKAGES.items())
    assert app.restarts == restarts + 1

    # With the PyTorch extension: it installs torch (it knows the CUDA build), pip the rest.
    missing_packages.clear()
    _PyTorchUtilsLogic.calls.clear()
    monkeypatch.setitem(sys.modules, "PyTorchUtils", SimpleNamespace(PyTorchUtilsLogic=_PyTorchUtilsLogic))
    robot.answer(qt.QMessageBox.Ok, qt.QMessageBox.No)
    assert ensure_dependencies() is True
    robot.take()
    assert _PyTorchUtilsLogic.calls == [{"askConfirmation": False, "torchVersionRequirement": "<3,>=2.1"}] or \
        _PyTorchUtilsLogic.calls == [{"askConfirmation": False, "torchVersionRequirement": ">=2.1,<3"}]
    assert len(missing_packages) == 1 and "torch" not in missing_packages[0].split('-c')[0]


def test_a_failed_install_is_a_message_not_a_traceback(module_widget, missing_packages, monkeypatch):
    import qt

    from MedSegAIGui.dependency_installer import ensure_dependencies

    def offline(args):
        raise subprocess.CalledProcessError(1, ["PythonSlicer", "-m", "pip", "install", args])

    monkeypatch.setattr(slicer.util, "pip_install", offline)
    monkeypatch.delitem(sys.modules, "PyTorchUtils", raising=False)
    module_widget.robot.answer(qt.QMessageBox.Ok, qt.QMessageBox.Ok)
    assert ensure_dependencies() is False
    question, error = module_widget.robot.take()
    assert "failed" in error.text and "network" in error.text


def test_self_test_runs_the_installed_flow(slicer_app, mrml, data_dir):
    """What "Reload and Test" and the py_MedSegAIModuleTest ctest run, with Slicer in testing mode."""
    import MedSegAI

    slicer_app.testing = True
    try:
        MedSegAI.MedSegAITest().runTest()
    finally:
        slicer_app.testing = False


def test_testing_mode_asks_nothing_and_never_accepts_a_licence(slicer_app, mrml):
    """Testing mode asks nothing: free models are fetched, a licence is never accepted unseen, edited
    segments are kept, packages installed without a restart; outside it the questions are real dialogs."""
    from MedSegAIGui.automatic_dialogs import AutomaticDialogs
    from MedSegAIGui.dialogs import default_dialogs
    from MedSegAIGui.qt_dialogs import QtDialogs
    from MedSegAILib.model_availability import MissingModel

    free = MissingModel("Dataset1_Free", "free", None, "Apache-2.0", False, "", None)
    restricted = MissingModel("Dataset2_Restricted", "restricted", None, "CC BY-NC-SA", True, "Non-commercial.", None)
    slicer_app.testing = True
    try:
        dialogs = default_dialogs()
    finally:
        slicer_app.testing = False
    assert isinstance(dialogs, AutomaticDialogs) and isinstance(default_dialogs(), QtDialogs)
    assert dialogs.confirm_download([free]) is True
    assert dialogs.confirm_download([free, restricted]) is False
    assert dialogs.ask_about_edited_segments("liver was edited") == "keep"
    assert dialogs.confirm_install("PyTorch") is True and dialogs.confirm_restart() is False
    assert dialogs.ask_save_path("Export statistics", "s.csv", "CSV (*.csv)") is None


def test_console_logic_passes_every_run_option_into_one_run_request(slicer_app, mrml):
    """The README's console calls, plus the runner's options as keywords; a misspelt one names the valid ones."""
    import MedSegAI
    from MedSegAILib.errors import InputError

    class Recorder:
        def __init__(self):
            self.calls = []

        def segment(self, volume_node, run, **kwargs):
            self.calls.append((volume_node, run, kwargs))
            return SimpleNamespace(segmentation_node="seg", uncertainty_node="map", confidence={"liver": {}})

        def shutdown(self):
            pass

    recorder = Recorder()
    logic = MedSegAI.MedSegAILogic(segmentLogic=recorder)
    assert logic.segment("CT", quality="fast", subset=["liver"], install_dependencies=False, precision="fp32",
                         mode="nnunet", tile_step=0.5, folds=[0, 1], threads=2) == "seg"
    _, run, kwargs = recorder.calls[-1]
    assert (run.task, run.model, run.quality, run.roi_subset, run.device) == ("total", None, "fast", ["liver"], "auto")
    assert (run.precision, run.mode, run.tile_step, run.folds, run.threads) == ("fp32", "nnunet", 0.5, [0, 1], 2)
    assert kwargs == {"segmentation_node": None, "on_edited": "keep", "timeout": None, "download": True,
                      "accept_licenses": False}

    seg, unc, confidence = logic.segmentWithUncertainty("CT", "tta", model="medsegai_ct_demo", passes=4,
                                                        confidenceThreshold=0.7, install_dependencies=False,
                                                        download=False, acceptLicenses=True, onEdited="replace")
    _, run, kwargs = recorder.calls[-1]
    assert (seg, unc, confidence) == ("seg", "map", {"liver": {}})
    assert (run.task, run.model, run.uncertainty, run.uncertainty_passes, run.confidence_threshold) == \
        (None, "medsegai_ct_demo", "tta", 4, 0.7)  # a model replaces the default task
    assert kwargs["download"] is False and kwargs["accept_licenses"] is True and kwargs["on_edited"] == "replace"

    with pytest.raises(InputError, match="tile_stpe.*valid: precision, mode, tile_step, folds, threads"):
        logic.segment("CT", install_dependencies=False, tile_stpe=0.5)
