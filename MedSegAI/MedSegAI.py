"""MedSegAI: AI segmentation of CT/MR in 3D Slicer (module, widget, logic and self-test classes).

Only what Slicer looks for in this file. The panel and its dialogs are ``MedSegAIGui`` (Qt); the
MRML bridge and the Logic are ``MedSegAILib`` (no Qt); the segmentation itself runs in a worker
process from the ``medsegai`` runner package.
"""
from __future__ import annotations

import logging
import os
import sys
import weakref

import slicer
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

_HERE = os.path.dirname(os.path.abspath(__file__))


def _ensure_runner_importable() -> None:
    """The runner package sits beside this file when installed, or in the source tree."""
    for candidate in (_HERE, os.path.join(os.path.dirname(_HERE), "MedSegAIInference")):
        if os.path.isdir(os.path.join(candidate, "medsegai")) and candidate not in sys.path:
            sys.path.insert(0, candidate)
            return


_ensure_runner_importable()

from medsegai.resources import resource_path  # noqa: E402 - importable only after the bootstrap
from MedSegAILib.dicom_seg_console import DicomSegConsole  # noqa: E402 - imports nothing heavy


class MedSegAI(ScriptedLoadableModule):
    def __init__(self, parent):
        import qt

        ScriptedLoadableModule.__init__(self, parent)
        parent.title = "MedSegAI"
        parent.categories = ["Segmentation"]
        parent.dependencies = []
        parent.contributors = ["MedSegAI contributors"]
        parent.helpText = (
            "Whole-body CT/MR segmentation with TotalSegmentator-compatible models, run in a background "
            "process with progress and Cancel. See the <a href='https://github.com/medsegai/MedSegAI'>"
            "project page</a>.")
        parent.acknowledgementText = (
            "Uses the TotalSegmentator label scheme and models (Wasserthal et al., Radiology: AI 2023) "
            "and nnU-Net (Isensee et al., Nature Methods 2021).")
        parent.icon = qt.QIcon(str(resource_path("Icons", "MedSegAI.png")))
        # Nothing is installed or downloaded here: dependencies are checked on the first Apply.
        slicer.app.connect("startupCompleted()", _register_terminology)
        slicer.app.connect("startupCompleted()", _register_interactive_effect)


def _register_terminology():
    path = str(resource_path("Terminology", "SegmentationCategoryTypeModifier-MedSegAI.term.json"))
    try:
        slicer.modules.terminologies.logic().LoadTerminologyFromFile(path)
    except AttributeError:
        logging.warning("MedSegAI: Terminologies module not available; segment codes are still stored.")


def _register_interactive_effect():
    from MedSegAIGui.interactive_registration import register_effect

    register_effect(default_segment_logic)


def default_segment_logic():
    """The real Logic on Slicer's scene (a test gives the widget another one)."""
    from MedSegAILib.segment_logic import SegmentLogic

    return SegmentLogic(slicer.mrmlScene, slicer.modules.segmentations.logic(),
                        colors_logic=slicer.modules.colors.logic())


def _shutdown_at_exit(logic) -> None:
    """The worker process stays between runs; it must not outlive Slicer. Weak: a console logic
    that was thrown away is not kept alive by the application."""
    ref = weakref.ref(logic)
    slicer.app.connect("aboutToQuit()", lambda: ref() is not None and ref().shutdown())


class MedSegAILogic(DicomSegConsole, ScriptedLoadableModuleLogic):
    """Console API: ``MedSegAILogic().segment(volumeNode, task="total", quality="fast")``;
    ``segmentWithUncertainty(volumeNode, "entropy", model=...)`` also returns the map and the scores.
    Further run options (``precision``, ``mode``, ``tile_step``, ``folds``, ``threads``) are keywords of both.
    ``segmentLogic`` is the asynchronous Logic underneath (start / finish / discard)."""

    def __init__(self, segmentLogic=None):
        ScriptedLoadableModuleLogic.__init__(self)
        self.segmentLogic = segmentLogic or default_segment_logic()
        _shutdown_at_exit(self)

    def segment(self, volumeNode, task="total", quality="normal", subset=None, device="auto", model=None,
                segmentationNode=None, onEdited="keep", timeout=None, install_dependencies=True, download=True,
                acceptLicenses=False, **runOptions):
        """Returns the segmentation node. Missing catalogue models are downloaded unless ``download=False``;
        a licence that must be accepted needs ``acceptLicenses=True``."""
        return self._outcome(volumeNode, task, quality, subset, device, model, segmentationNode, onEdited, timeout,
                             install_dependencies, download, acceptLicenses, runOptions).segmentation_node

    def segmentWithUncertainty(self, volumeNode, method="entropy", task="total", quality="normal", subset=None,
                               device="auto", model=None, segmentationNode=None, onEdited="keep", timeout=None,
                               passes=8, confidenceThreshold=0.8, install_dependencies=True, download=True,
                               acceptLicenses=False, **runOptions):
        """Returns (segmentation node, uncertainty volume node, {segment name: confidence scores})."""
        outcome = self._outcome(volumeNode, task, quality, subset, device, model, segmentationNode, onEdited, timeout,
                                install_dependencies, download, acceptLicenses, runOptions, uncertainty=method,
                                uncertainty_passes=passes, confidence_threshold=confidenceThreshold)
        return outcome.segmentation_node, outcome.uncertainty_node, outcome.confidence

    def _outcome(self, volumeNode, task, quality, subset, device, model, segmentationNode, onEdited, timeout,
                 install_dependencies, download, acceptLicenses, runOptions, **uncertainty):
        from MedSegAIGui.dependency_installer import ensure_dependencies
        from MedSegAILib.console_request import console_run_request

        run = console_run_request(task, quality, subset, device, model, runOptions, **uncertainty)
        if install_dependencies and not ensure_dependencies():
            raise RuntimeError("MedSegAI's Python dependencies are not installed.")
        return self.segmentLogic.segment(volumeNode, run, segmentation_node=segmentationNode, on_edited=onEdited,
                                         timeout=timeout, download=download, accept_licenses=acceptLicenses)

    def statistics(self, segmentationNode, volumeNode, uncertaintyVolumeNode=None, confidenceThreshold=None):
        return self.segmentLogic.statistics(segmentationNode, volumeNode, uncertaintyVolumeNode, confidenceThreshold)

    def jumpToLeastConfidentSegment(self, segmentationNode, volumeNode):
        """Centre the slice views on the least confident segment; returns its segment ID."""
        return self.segmentLogic.jump_to_least_confident(segmentationNode, volumeNode)[0]

    def interactiveSession(self, volumeNode, segmentationNode, segmentId, engine="auto", install_dependencies=True,
                           **options):
        """Points, boxes, scribbles, lassos and names editing one segment, with undo/redo
        (MedSegAILib.interactive_logic); runs in the same worker process as segment()."""
        from MedSegAIGui.dependency_installer import ensure_dependencies
        from MedSegAILib.interactive_logic import InteractiveLogic

        if install_dependencies and not ensure_dependencies():
            raise RuntimeError("MedSegAI's Python dependencies are not installed.")
        if getattr(self, "interactiveLogic", None) is None:
            core = self.segmentLogic
            self.interactiveLogic = InteractiveLogic(core.scene, lambda: core.session_worker, work_root=core.work_root)
        return self.interactiveLogic.interactiveSession(volumeNode, segmentationNode, segmentId, engine=engine,
                                                        **options)

    def shutdown(self):
        """End the interactive sessions and stop the worker process (it stays between runs, with the model loaded)."""
        if getattr(self, "interactiveLogic", None) is not None:
            self.interactiveLogic.shutdown()
        self.segmentLogic.shutdown()


class MedSegAIWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Slicer builds this with a parent only; tests pass ``logic`` (any ``PanelLogic``) and ``dialogs``."""

    logicFactory = staticmethod(default_segment_logic)

    def __init__(self, parent=None, logic=None, dialogs=None):
        # Before the base class: without a parent it calls setup() at once.
        self.logic, self._dialogs, self.panel, self.ui = logic, dialogs, None, None
        VTKObservationMixin.__init__(self)
        ScriptedLoadableModuleWidget.__init__(self, parent)

    def setup(self):
        from MedSegAIGui.panel import SegmentationPanel

        ScriptedLoadableModuleWidget.setup(self)
        ui_widget = slicer.util.loadUI(str(resource_path("UI", "MedSegAI.ui")))
        self.layout.addWidget(ui_widget)
        self.ui = slicer.util.childWidgetVariables(ui_widget)
        ui_widget.setMRMLScene(slicer.mrmlScene)
        self.logic = self.logic or self.logicFactory()
        self.panel = SegmentationPanel(self.ui, self.logic, self._dialogs)
        slicer.app.connect("aboutToQuit()", self.cleanup)

    def cleanup(self):
        if self.panel is not None:
            slicer.app.disconnect("aboutToQuit()", self.cleanup)
            self.panel.cleanup()
        self.removeObservers()


class MedSegAITest(ScriptedLoadableModuleTest):
    """'Reload and Test' entry point; the flow is installed with the module (MedSegAITesting)."""

    def runTest(self):
        from MedSegAITesting.module_flow import run_module_flow

        self.delayDisplay("MedSegAI: segment, update, statistics")
        logic = MedSegAILogic()
        try:
            run_module_flow(self, logic)
        finally:
            logic.shutdown()
        self.delayDisplay("MedSegAI test passed")
