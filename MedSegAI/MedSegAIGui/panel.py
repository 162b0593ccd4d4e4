"""The module panel: Apply / Cancel, progress, and the import of a finished run.

Given the Logic (anything with the shape of ``MedSegAILib.logic_interface.PanelLogic``) and the
dialogs (``dialogs.Dialogs``); it reaches neither the worker nor the job's files itself.
"""
from __future__ import annotations

from typing import Optional

import qt

from MedSegAILib.logic_interface import PanelLogic, RunningRun, RunOutcome

from .dependency_installer import ensure_dependencies
from .dicom_seg_section import DicomSegSection
from .dialogs import Dialogs, default_dialogs
from .options_form import RunOptionsForm
from .remote_section import RemoteSection
from .results_section import ResultsSection


class SegmentationPanel:
    POLL_MS = 100

    def __init__(self, ui, logic: PanelLogic, dialogs: Optional[Dialogs] = None):
        self.ui = ui
        self.logic = logic
        self.dialogs = dialogs or default_dialogs()
        self.running: Optional[RunningRun] = None
        self.last_outcome: Optional[RunOutcome] = None
        self.options = RunOptionsForm(ui, logic, self.log)
        self.results = ResultsSection(ui, logic, self.dialogs, self.log)
        self.dicom_seg = DicomSegSection(ui, logic, self.dialogs, self.log)
        from .interactive_registration import follow_remote

        self.remote = RemoteSection(ui, logic, self.log, on_change=follow_remote)
        self.timer = qt.QTimer()
        self.timer.setInterval(self.POLL_MS)
        self.timer.connect("timeout()", self.on_poll)
        ui.applyButton.connect("clicked()", self.on_apply_or_cancel)
        ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.update_apply_button)
        ui.modelSelector.connect("currentIndexChanged(int)", self.update_apply_button)
        self.show_warnings([])
        self.update_apply_button()

    def cleanup(self) -> None:
        """The module is closed or reloaded, or Slicer exits: stop the run and the worker, keep no files."""
        self.timer.stop()
        self.remote.cleanup()
        running, self.running = self.running, None
        if running is not None:
            running.cancel()
            self.logic.discard(running)
        self.logic.shutdown()

    # -- run ------------------------------------------------------------------------------------
    def update_apply_button(self, *_) -> None:
        if self.running is not None:
            return  # the button is Cancel
        ready = self.ui.inputVolumeSelector.currentNode() is not None and self.options.current_choice() is not None
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = ("Run the segmentation; the button turns into Cancel while it runs" if ready
                                       else "Select an input volume first")

    def on_apply_or_cancel(self) -> None:
        if self.running is not None:
            self.running.cancel()
            self.ui.stageLabel.text = "Cancelling..."
            self.ui.applyButton.enabled = False
            return
        if self.options.current_choice() is None:
            self.dialogs.show_error("No model is available: the model catalogue could not be read.")
            return
        if not ensure_dependencies(self.dialogs):
            return
        self.remote.on_changed()  # the server fields as they read now, even without Enter pressed
        if self.remote.problem:  # "Server" chosen: never fall back to this computer in silence
            self.dialogs.show_error(self.remote.problem)
            return
        try:
            request = self.options.segmentation_request()
            missing = self.logic.missing_models(request)
        except Exception as e:  # a bad option (folds, tile step): a message, nothing started
            self.dialogs.show_error(str(e))
            return
        if missing:
            if not self.dialogs.confirm_download(missing):
                self.ui.stageLabel.text = "Not started: the model is not installed."
                return
            request.download = True
            request.accept_licenses = any(m.licence_must_be_accepted for m in missing)
        try:
            self.running = self.logic.start(request)
        except Exception as e:  # InputError and friends: a message, the scene untouched
            self.dialogs.show_error(str(e))
            return
        self.ui.logText.clear()
        self.show_warnings([])
        self._set_running(True)
        self.timer.start()

    def _set_running(self, running: bool) -> None:
        self.ui.applyButton.text = "Cancel" if running else "Apply"
        self.ui.applyButton.enabled = True
        if not running:
            self.update_apply_button()
        self.ui.progressBar.visible = running
        self.ui.progressBar.value = 0
        for w in self.options.input_widgets:
            w.enabled = not running
        for w in self.remote.input_widgets + list(self.dicom_seg.buttons):
            w.enabled = not running
        if not running:
            self.remote.on_changed()  # the server fields follow the choice again

    def on_poll(self) -> None:
        if self.running is None:
            return
        for ev in self.running.poll():
            if ev.kind == "progress":
                self.ui.stageLabel.text = f"{ev.get('stage', '')}: {ev.get('message', '')}".strip(": ")
                self.ui.progressBar.value = int(100 * float(ev.get("fraction", 0)))
            elif ev.kind == "log":
                self.log(str(ev.get("message", "")))
        if self.running.done:
            self.timer.stop()
            self._finish_run()

    def _finish_run(self) -> None:
        from medsegai.errors import CancelledError
        from MedSegAILib.errors import EditedSegmentsError

        running, self.running = self.running, None
        self._set_running(False)
        try:
            try:
                outcome = self.logic.finish(running)
            except EditedSegmentsError as e:
                choice = self.dialogs.ask_about_edited_segments(str(e))
                if choice is None:
                    self.logic.discard(running)
                    self.ui.stageLabel.text = "Result not imported; the segmentation was not changed."
                    return
                outcome = self.logic.finish(running, on_edited=choice)
        except CancelledError:
            self.ui.stageLabel.text = "Cancelled; the scene was not changed."
            return
        except Exception as e:
            self.ui.stageLabel.text = "Failed; the scene was not changed."
            self.log(str(e))
            self.dialogs.show_error(str(e))
            return
        self.last_outcome = outcome
        self.ui.outputSegmentationSelector.setCurrentNode(outcome.segmentation_node)
        kept = outcome.update.kept_edited
        self.ui.stageLabel.text = (f"Done in {outcome.seconds:.0f} s: {len(outcome.update.written)} segments"
                                   + (f"; kept {len(kept)} edited segment(s)" if kept else "") + ".")
        for note in outcome.result.notes:
            if note not in outcome.result.warnings:  # logged once, as a warning, below
                self.log(note)
        self.show_warnings(outcome.result.warnings)
        self.results.show_outcome(outcome, running.request.volume_node)
        self.options.update_model_status()  # a model the run downloaded is installed now

    def show_warnings(self, warnings) -> None:
        """Beside the result, not only in the collapsed log: the segments may be wrong."""
        for warning in warnings:
            self.log(f"Warning: {warning}")
        self.ui.resultWarningLabel.text = "\n".join(warnings)
        self.ui.resultWarningLabel.visible = bool(warnings)

    def log(self, text: str) -> None:
        self.ui.logText.appendPlainText(text)
