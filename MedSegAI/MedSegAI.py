"""MedSegAI: AI segmentation of CT/MR in 3D Slicer (module, widget, logic and self-test classes).

The classes here stay thin: the work lives in ``MedSegAILib`` (MRML bridge and Logic, testable
without Slicer) and in the ``medsegai`` runner package, which runs in a separate worker process.
"""
from __future__ import annotations

import logging
import os
import sys

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


def resource_path(*parts: str) -> str:
    """Resources are installed beside the module and live at the repository top in the source tree."""
    for base in (os.path.join(_HERE, "Resources"), os.path.join(os.path.dirname(_HERE), "Resources")):
        path = os.path.join(base, *parts)
        if os.path.exists(path):
            return path
    return os.path.join(_HERE, "Resources", *parts)


class MedSegAI(ScriptedLoadableModule):
    def __init__(self, parent):
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
        parent.icon = _icon()
        # Nothing is installed or downloaded here: dependencies are checked on the first Apply.
        slicer.app.connect("startupCompleted()", _register_terminology)


def _icon():
    import qt
    return qt.QIcon(resource_path("Icons", "MedSegAI.png"))


def _register_terminology():
    path = resource_path("Terminology", "SegmentationCategoryTypeModifier-MedSegAI.term.json")
    try:
        slicer.modules.terminologies.logic().LoadTerminologyFromFile(path)
    except AttributeError:
        logging.warning("MedSegAI: Terminologies module not available; segment codes are still stored.")


class MedSegAILogic(ScriptedLoadableModuleLogic):
    """Console API: ``MedSegAILogic().segment(volumeNode, task="total", quality="fast")``;
    ``segmentWithUncertainty(volumeNode, "entropy", model=...)`` also returns the map and the scores."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        from MedSegAILib.segment_logic import SegmentLogic
        self.core = SegmentLogic(slicer.mrmlScene, slicer.modules.segmentations.logic(),
                                 colors_logic=slicer.modules.colors.logic())

    def segment(self, volumeNode, task="total", quality="normal", subset=None, device="auto", model=None,
                segmentationNode=None, onEdited="keep", timeout=None, install_dependencies=True, download=True,
                acceptLicenses=False):
        """Missing catalogue models are downloaded unless ``download=False``; a licence that must be
        accepted needs ``acceptLicenses=True``."""
        if install_dependencies and not ensure_dependencies(interactive=not slicer.app.testingEnabled()):
            raise RuntimeError("MedSegAI's Python dependencies are not installed.")
        return self.core.segment(volumeNode, task=task, quality=quality, subset=subset, device=device,
                                 model=model, segmentation_node=segmentationNode, on_edited=onEdited,
                                 timeout=timeout, download=download, accept_licenses=acceptLicenses)

    def segmentWithUncertainty(self, volumeNode, method="entropy", task="total", quality="normal", subset=None,
                               device="auto", model=None, segmentationNode=None, onEdited="keep", timeout=None,
                               passes=8, confidenceThreshold=0.8, install_dependencies=True, download=True,
                               acceptLicenses=False):
        """Returns (segmentation node, uncertainty volume node, {segment name: confidence scores})."""
        if install_dependencies and not ensure_dependencies(interactive=not slicer.app.testingEnabled()):
            raise RuntimeError("MedSegAI's Python dependencies are not installed.")
        outcome = self.core.segment_outcome(volumeNode, task=task, quality=quality, subset=subset, device=device,
                                            model=model, segmentation_node=segmentationNode, on_edited=onEdited,
                                            timeout=timeout, uncertainty=method, uncertainty_passes=passes,
                                            confidence_threshold=confidenceThreshold, download=download,
                                            accept_licenses=acceptLicenses)
        return outcome.segmentation_node, outcome.uncertainty_node, outcome.confidence

    def statistics(self, segmentationNode, volumeNode, uncertaintyVolumeNode=None, confidenceThreshold=None):
        return self.core.statistics(segmentationNode, volumeNode, uncertaintyVolumeNode, confidenceThreshold)

    def jumpToLeastConfidentSegment(self, segmentationNode, volumeNode):
        """Centre the slice views on the least confident segment; returns its segment ID."""
        return self.core.jump_to_least_confident(segmentationNode, volumeNode)[0]


def ensure_dependencies(interactive=True) -> bool:
    """Install missing packages after the user agrees; True when everything is there."""
    from MedSegAILib.dependencies import plan_installation
    plan = plan_installation()
    if plan.empty:
        return True
    if interactive and not slicer.util.confirmOkCancelDisplay(
            f"MedSegAI needs these Python packages: {plan.describe()}.\n"
            "They will be downloaded and installed now (several GB for PyTorch). Slicer's own SimpleITK, "
            "numpy, requests and VTK are kept as they are.", "MedSegAI: install dependencies"):
        return False
    try:
        with slicer.util.WaitCursor():
            if plan.torch and not _install_torch(plan.torch):
                return False
            if plan.pip_requirements:
                constraints = os.path.join(slicer.app.temporaryPath, "MedSegAI-constraints.txt")
                with open(constraints, "w") as f:
                    f.write("\n".join(plan.constraints) + "\n")
                slicer.util.pip_install(plan.pip_arguments(constraints))
    except Exception as e:  # pip's CalledProcessError, no network, a full disk: a message, not a traceback
        slicer.util.errorDisplay(f"Installing MedSegAI's Python packages failed: {e}\n\n"
                                 "Check the network connection (or proxy settings) and try again.",
                                 windowTitle="MedSegAI")
        return False
    if plan.restart_needed and interactive and slicer.util.confirmYesNoDisplay(
            "Some packages Slicer had already loaded were upgraded. Restart Slicer now?"):
        slicer.util.restart()
    return True


def _install_torch(requirement: str) -> bool:
    """Through Slicer's PyTorch extension, which picks the CUDA build for this GPU; else from PyPI."""
    try:
        import PyTorchUtils
    except ImportError:
        PyTorchUtils = None
    if PyTorchUtils is not None:
        logic = PyTorchUtils.PyTorchUtilsLogic()
        try:
            return logic.installTorch(askConfirmation=False, torchVersionRequirement=requirement) is not None
        except TypeError:  # PyTorch extensions older than 2023 take no version requirement
            pass
    slicer.util.pip_install(f'"torch{requirement}"')
    return True


class MedSegAIWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    POLL_MS = 100

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.running = None
        self.choices = []
        self.stats = []
        self.uncertaintyNode = None
        self.uncertaintyVolume = None

    def setup(self):
        import qt
        from MedSegAILib.model_choices import load_choices
        ScriptedLoadableModuleWidget.setup(self)
        ui_widget = slicer.util.loadUI(resource_path("UI", "MedSegAI.ui"))
        self.layout.addWidget(ui_widget)
        self.ui = slicer.util.childWidgetVariables(ui_widget)
        ui_widget.setMRMLScene(slicer.mrmlScene)
        self.logic = MedSegAILogic()

        self.choices, problem = load_choices()  # the runner's catalogue, with the user's own models
        for choice in self.choices:
            self.ui.modelSelector.addItem(choice.title, choice.key)
        if problem:
            self._log(problem)
        for label, device in (("Auto", "auto"), ("GPU (CUDA)", "cuda"), ("CPU", "cpu")):
            self.ui.deviceSelector.addItem(label, device)
        for label, method in (("Off", ""), ("Entropy (no extra time)", "entropy"),
                              ("Test-time flips", "tta"), ("Monte Carlo dropout", "mcdropout"),
                              ("Fold ensemble", "ensemble")):
            self.ui.uncertaintyMethodSelector.addItem(label, method)

        self.timer = qt.QTimer()
        self.timer.setInterval(self.POLL_MS)
        self.timer.connect("timeout()", self.onPoll)
        self.ui.modelSelector.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.qualitySelector.connect("currentIndexChanged(int)", self.updateDeviceWarning)
        self.ui.qualitySelector.connect("currentIndexChanged(int)", self.updateModelStatus)
        self.ui.deviceSelector.connect("currentIndexChanged(int)", self.updateDeviceWarning)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateDeviceWarning)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateApplyButton)
        self.ui.structureSearchBox.connect("textChanged(QString)", self.onFilterStructures)
        self.ui.selectAllStructuresButton.connect("clicked()", lambda: self.setAllStructures(True))
        self.ui.clearStructuresButton.connect("clicked()", lambda: self.setAllStructures(False))
        self.ui.structureTree.connect("itemChanged(QTreeWidgetItem*,int)", self.updateStructureCount)
        self.ui.applyButton.connect("clicked()", self.onApplyOrCancel)
        self.ui.show3DCheckBox.connect("toggled(bool)", self.onShow3D)
        self.ui.computeStatisticsButton.connect("clicked()", self.onComputeStatistics)
        self.ui.exportStatisticsButton.connect("clicked()", self.onExportStatistics)
        self.ui.uncertaintyMethodSelector.connect("currentIndexChanged(int)", self.onUncertaintyMethodChanged)
        self.ui.overlayOpacitySlider.connect("valueChanged(double)", self.onOverlayOpacity)
        self.ui.overlayThresholdSlider.connect("valueChanged(double)", self.onOverlayThreshold)
        self.ui.jumpToLeastConfidentButton.connect("clicked()", self.onJumpToLeastConfident)
        self.onUncertaintyMethodChanged()
        self.onModelChanged()
        self.updateApplyButton()

    def cleanup(self):
        if self.running is not None:
            self.running.cancel()
            self.running.job.cleanup()
        self.removeObservers()

    # -- options --------------------------------------------------------------------------------
    def currentChoice(self):
        key = self.ui.modelSelector.currentData
        return next((c for c in self.choices if c.key == key), None)

    def onModelChanged(self, *_):
        import qt
        from medsegai.terminology import structure_groups
        choice = self.currentChoice()
        self.ui.qualitySelector.clear()
        for q in (choice.qualities if choice else ()):
            self.ui.qualitySelector.addItem(q)
        tree = self.ui.structureTree
        tree.blockSignals(True)
        tree.clear()
        for group, names in structure_groups(choice.structures if choice else ()).items():
            parent = qt.QTreeWidgetItem(tree, [group])
            parent.setFlags(parent.flags() | qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsAutoTristate)
            for name in names:
                child = qt.QTreeWidgetItem(parent, [name])
                child.setFlags(child.flags() | qt.Qt.ItemIsUserCheckable)
                child.setCheckState(0, qt.Qt.Checked)
        tree.blockSignals(False)
        self.ui.structuresCollapsibleButton.enabled = bool(choice and choice.structures)
        self.updateStructureCount()
        self.updateDeviceWarning()
        self.updateModelStatus()

    def updateModelStatus(self, *_):
        """The licence line, and whether Apply will first download the model (all structures)."""
        choice = self.currentChoice()
        if choice is None:
            self.ui.licenseLabel.text = ""
            return
        args = choice.run_arguments(self.ui.qualitySelector.currentText)
        try:
            from MedSegAILib.model_availability import missing_models
            missing = missing_models(args["task"], args["quality"], args["model"], None)
        except Exception as e:  # a broken catalogue: Apply says so in full
            self.ui.licenseLabel.text = f"{choice.licence}; model status unknown ({e})"
            return
        status = f"; not installed: Apply downloads {len(missing)} model(s)" if missing else ""
        self.ui.licenseLabel.text = choice.licence + status

    def structureItems(self):
        tree = self.ui.structureTree
        for g in range(tree.topLevelItemCount):
            group = tree.topLevelItem(g)
            for c in range(group.childCount()):
                yield group.child(c)

    def setAllStructures(self, checked):
        import qt
        for item in self.structureItems():
            if not item.isHidden():
                item.setCheckState(0, qt.Qt.Checked if checked else qt.Qt.Unchecked)

    def onFilterStructures(self, text):
        text = text.lower().replace(" ", "_")
        tree = self.ui.structureTree
        for g in range(tree.topLevelItemCount):
            group = tree.topLevelItem(g)
            visible = 0
            for c in range(group.childCount()):
                child = group.child(c)
                child.setHidden(bool(text) and text not in child.text(0).lower())
                visible += 0 if child.isHidden() else 1
            group.setHidden(visible == 0)
            group.setExpanded(bool(text))

    def selectedSubset(self):
        """None when everything is ticked (the full model runs), else the ticked names."""
        import qt
        items = list(self.structureItems())
        ticked = [i.text(0) for i in items if i.checkState(0) == qt.Qt.Checked]
        return None if len(ticked) == len(items) else ticked

    def updateStructureCount(self, *_):
        items = list(self.structureItems())
        subset = self.selectedSubset()
        self.ui.structureCountLabel.text = f"{len(items) if subset is None else len(subset)} of {len(items)}"

    def updateDeviceWarning(self, *_):
        from MedSegAILib.run_options import cpu_warning
        volume = self.ui.inputVolumeSelector.currentNode()
        voxels = 0
        if volume is not None and volume.GetImageData() is not None:
            voxels = volume.GetImageData().GetNumberOfPoints()
        self.ui.deviceWarningLabel.text = cpu_warning(self.ui.deviceSelector.currentData or "auto",
                                                      self.ui.qualitySelector.currentText or "normal", voxels,
                                                      _cuda_available())

    # -- run ------------------------------------------------------------------------------------
    def updateApplyButton(self, *_):
        if self.running is not None:
            return  # the button is Cancel
        ready = self.ui.inputVolumeSelector.currentNode() is not None and self.currentChoice() is not None
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = ("Run the segmentation; the button turns into Cancel while it runs" if ready
                                       else "Select an input volume first")

    def onApplyOrCancel(self):
        if self.running is not None:
            self.running.cancel()
            self.ui.stageLabel.text = "Cancelling..."
            self.ui.applyButton.enabled = False
            return
        from MedSegAILib.segment_logic import SegmentationRequest
        choice = self.currentChoice()
        if choice is None:
            slicer.util.errorDisplay("No model is available: the model catalogue could not be read.")
            return
        if not ensure_dependencies(interactive=True):
            return
        args = choice.run_arguments(self.ui.qualitySelector.currentText)
        request = SegmentationRequest(
            self.ui.inputVolumeSelector.currentNode(), task=args["task"], model=args["model"],
            quality=args["quality"], subset=self.selectedSubset(), device=self.ui.deviceSelector.currentData,
            segmentation_node=self.ui.outputSegmentationSelector.currentNode(), on_edited="error",
            known_structures=choice.structures, uncertainty=self.ui.uncertaintyMethodSelector.currentData or None,
            uncertainty_passes=self.ui.uncertaintyPassesSpinBox.value,
            confidence_threshold=self.ui.confidenceThresholdSpinBox.value)
        try:
            missing = self.logic.core.missing_models(request)
        except Exception as e:
            slicer.util.errorDisplay(str(e), windowTitle="MedSegAI")
            return
        if missing:
            if not _confirm_download(missing):
                self.ui.stageLabel.text = "Not started: the model is not installed."
                return
            request.download = True
            request.accept_licenses = any(m.licence_must_be_accepted for m in missing)
        try:
            self.running = self.logic.core.start(request)
        except Exception as e:  # InputError and friends: a message, the scene untouched
            slicer.util.errorDisplay(str(e), windowTitle="MedSegAI")
            return
        self.ui.logText.clear()
        self._setRunning(True)
        self.timer.start()

    def _setRunning(self, running):
        self.ui.applyButton.text = "Cancel" if running else "Apply"
        self.ui.applyButton.enabled = True
        if not running:
            self.updateApplyButton()
        self.ui.progressBar.visible = running
        self.ui.progressBar.value = 0
        for w in (self.ui.inputVolumeSelector, self.ui.modelSelector, self.ui.qualitySelector,
                  self.ui.deviceSelector, self.ui.outputSegmentationSelector, self.ui.structureTree,
                  self.ui.uncertaintyMethodSelector, self.ui.uncertaintyPassesSpinBox,
                  self.ui.confidenceThresholdSpinBox):
            w.enabled = not running

    def onPoll(self):
        if self.running is None:
            return
        for ev in self.running.poll():
            if ev.kind == "progress":
                self.ui.stageLabel.text = f"{ev.get('stage', '')}: {ev.get('message', '')}".strip(": ")
                self.ui.progressBar.value = int(100 * float(ev.get("fraction", 0)))
            elif ev.kind == "log":
                self._log(str(ev.get("message", "")))
        if self.running.done:
            self.timer.stop()
            self._finishRun()

    def _finishRun(self):
        from medsegai.errors import CancelledError
        from MedSegAILib.errors import EditedSegmentsError
        running, self.running = self.running, None
        self._setRunning(False)
        try:
            try:
                outcome = self.logic.core.finish(running)
            except EditedSegmentsError as e:
                choice = _ask_about_edited_segments(str(e))
                if choice is None:
                    running.job.cleanup()
                    self.ui.stageLabel.text = "Result not imported; the segmentation was not changed."
                    return
                outcome = self.logic.core.finish(running, on_edited=choice)
        except CancelledError:
            self.ui.stageLabel.text = "Cancelled; the scene was not changed."
            return
        except Exception as e:
            self.ui.stageLabel.text = "Failed; the scene was not changed."
            self._log(str(e))
            slicer.util.errorDisplay(str(e), windowTitle="MedSegAI")
            return
        node = outcome.segmentation_node
        self.ui.outputSegmentationSelector.setCurrentNode(node)
        kept = f"; kept {len(outcome.update.kept_edited)} edited segment(s)" if outcome.update.kept_edited else ""
        self.ui.stageLabel.text = f"Done in {outcome.seconds:.0f} s: {len(outcome.update.written)} segments{kept}."
        for note in outcome.result.notes:
            self._log(note)
        if outcome.uncertainty_node is not None:
            self._showUncertainty(outcome, running.request.volume_node)
        if self.ui.show3DCheckBox.checked:
            self.onShow3D(True)
        self.updateModelStatus()  # a model the run downloaded is installed now

    # -- uncertainty ----------------------------------------------------------------------------
    def onUncertaintyMethodChanged(self, *_):
        self.ui.uncertaintyPassesSpinBox.enabled = self.ui.uncertaintyMethodSelector.currentData in ("tta",
                                                                                                     "mcdropout")

    def _currentUncertaintyNode(self, volume=None):
        """The last map, while it is in the scene (and made for ``volume`` when one is given)."""
        node = self.uncertaintyNode
        if node is None or node.GetScene() is not slicer.mrmlScene:
            return None
        return node if volume is None or volume is self.uncertaintyVolume else None

    def _showUncertainty(self, outcome, volume):
        from MedSegAILib.uncertainty_overlay import set_overlay_threshold, show_overlay
        self.uncertaintyNode, self.uncertaintyVolume = outcome.uncertainty_node, volume
        set_overlay_threshold(self.uncertaintyNode, self.ui.overlayThresholdSlider.value)
        show_overlay(slicer.mrmlScene, volume, self.uncertaintyNode, self.ui.overlayOpacitySlider.value)
        self.ui.jumpToLeastConfidentButton.enabled = bool(outcome.confidence)
        low = sorted(n for n, v in outcome.confidence.items() if v.get("flagged"))
        self._log(f"Uncertainty ({outcome.uncertainty_method}): {len(low)} segment(s) below "
                  f"{self.ui.confidenceThresholdSpinBox.value:.2f} confidence" + (f": {', '.join(low)}" if low else "."))

    def onOverlayOpacity(self, value):
        from MedSegAILib.uncertainty_overlay import set_overlay_opacity
        node = self._currentUncertaintyNode()
        if node is not None:
            set_overlay_opacity(slicer.mrmlScene, node, value)

    def onOverlayThreshold(self, value):
        from MedSegAILib.uncertainty_overlay import set_overlay_threshold
        node = self._currentUncertaintyNode()
        if node is not None:
            set_overlay_threshold(node, value)

    def onJumpToLeastConfident(self):
        try:
            segment_id, _ras = self.logic.core.jump_to_least_confident(self.ui.outputSegmentationSelector.currentNode(),
                                                                       self.ui.inputVolumeSelector.currentNode())
        except Exception as e:
            slicer.util.errorDisplay(str(e), windowTitle="MedSegAI")
            return
        node = self.ui.outputSegmentationSelector.currentNode()
        self.ui.stageLabel.text = f"Least confident: {node.GetSegmentation().GetSegment(segment_id).GetName()}"

    # -- results --------------------------------------------------------------------------------
    def onShow3D(self, show):
        node = self.ui.outputSegmentationSelector.currentNode()
        if node is None:
            return
        if show:
            node.CreateClosedSurfaceRepresentation()
        display = node.GetDisplayNode()
        if display is not None:
            display.SetVisibility3D(bool(show))

    def onComputeStatistics(self):
        import qt
        try:
            self.stats = self.logic.statistics(self.ui.outputSegmentationSelector.currentNode(),
                                               self.ui.inputVolumeSelector.currentNode(),
                                               self._currentUncertaintyNode(self.ui.inputVolumeSelector.currentNode()),
                                               self.ui.confidenceThresholdSpinBox.value)
        except Exception as e:
            slicer.util.errorDisplay(str(e), windowTitle="MedSegAI")
            return
        from MedSegAILib.statistics import COLUMNS
        table = self.ui.statisticsTable
        table.setSortingEnabled(False)
        table.clear()
        table.setColumnCount(len(COLUMNS))
        table.setHorizontalHeaderLabels(list(COLUMNS))
        table.setRowCount(len(self.stats))
        for r, s in enumerate(self.stats):
            for c, value in enumerate(s.row()):
                item = qt.QTableWidgetItem()
                item.setData(qt.Qt.DisplayRole, value if isinstance(value, str) else round(float(value), 2))
                table.setItem(r, c, item)
        table.setSortingEnabled(True)
        self.ui.exportStatisticsButton.enabled = bool(self.stats)

    def onExportStatistics(self):
        import qt
        from MedSegAILib.statistics import write_statistics_csv
        path = qt.QFileDialog.getSaveFileName(None, "Export statistics", "segment_statistics.csv", "CSV (*.csv)")
        if path:
            write_statistics_csv(self.stats, path)

    def _log(self, text):
        self.ui.logText.appendPlainText(text)


def _cuda_available():
    """None when torch is not installed yet (no import of torch at module load)."""
    import importlib.util
    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    return bool(torch.cuda.is_available())


KEEP_EDITS, REPLACE_EDITS = "Keep my edits", "Replace them"


def _confirm_download(missing):
    """Ask before downloading models, with their sizes, licences and where they go."""
    from medsegai.models import cache_dir
    if slicer.app.testingEnabled():
        # No question in testing mode (what confirmOkCancelDisplay answers there differs between
        # Slicer versions): free models are fetched, a licence is never accepted unseen.
        return not any(m.licence_must_be_accepted for m in missing)
    lines = [f"This run needs {len(missing)} model(s) that are not installed yet:"]
    lines += [f"  - {m.describe()}" for m in missing]
    lines.append(f"\nDownload them now into {cache_dir()}? The download runs in the background and can be "
                 "cancelled; an interrupted download resumes next time.")
    for m in missing:
        if m.licence_must_be_accepted:
            lines.append(f"\nThe licence of {m.model_id} must be accepted; pressing OK accepts it:\n{m.licence_notice}")
    return slicer.util.confirmOkCancelDisplay("\n".join(lines), windowTitle="MedSegAI: download models")


def _ask_about_edited_segments(message):
    """"keep", "replace" or None (import nothing), from a dialog whose buttons say what they do."""
    import qt
    if slicer.app.testingEnabled():
        logging.info("MedSegAI: testing mode, edited segments kept: %s", message)
        return "keep"
    box = qt.QMessageBox(slicer.util.mainWindow())
    box.windowTitle = "MedSegAI: edited segments"
    box.icon = qt.QMessageBox.Question
    box.text = message
    box.informativeText = "Keep my edits: the other segments are updated, the edited ones stay as they are."
    keep = box.addButton(KEEP_EDITS, qt.QMessageBox.AcceptRole)
    box.addButton(REPLACE_EDITS, qt.QMessageBox.DestructiveRole)
    box.addButton("Don't import", qt.QMessageBox.RejectRole)
    box.setDefaultButton(keep)
    box.exec_()
    role = box.buttonRole(box.clickedButton()) if box.clickedButton() else qt.QMessageBox.RejectRole
    box.deleteLater()
    if role == qt.QMessageBox.AcceptRole:
        return "keep"
    if role == qt.QMessageBox.DestructiveRole:
        return "replace"
    return None


class MedSegAITest(ScriptedLoadableModuleTest):
    """'Reload and Test' entry point; the flow is installed with the module (MedSegAITesting)."""

    def runTest(self):
        from MedSegAITesting.module_flow import run_module_flow
        self.delayDisplay("MedSegAI: segment, update, statistics")
        run_module_flow(self)
        self.delayDisplay("MedSegAI test passed")
