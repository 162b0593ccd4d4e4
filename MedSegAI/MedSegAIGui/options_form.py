"""The panel's run options (model, quality, structures, device, uncertainty, advanced) as a RunRequest."""
from __future__ import annotations

import re
from typing import List, Optional

from medsegai.run_request import MODES, PRECISIONS, SPEEDS, RunRequest
from MedSegAILib.model_choices import DEFAULT_CHOICE_KEY, ModelChoice, load_choices
from MedSegAILib.segment_logic import SegmentationRequest

from .structure_checklist import StructureChecklist

DEVICES = (("Auto", "auto"), ("GPU (CUDA)", "cuda"), ("CPU", "cpu"))
UNCERTAINTY = (("Off", ""), ("Entropy (no extra time)", "entropy"), ("Test-time flips", "tta"),
               ("Monte Carlo dropout", "mcdropout"), ("Fold ensemble", "ensemble"))
PRECISION_LABELS = {"auto": "Auto (fp16 on a GPU, fp32 on the CPU)", "fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}
MODE_LABELS = {"auto": "Auto", "nnunet": "nnU-Net", "totalseg": "TotalSegmentator"}
SPEED_LABELS = {"exact": "Exact (the reference's labels)", "fast": "Fast (fastest path that keeps them)"}


def parse_folds(text: str) -> Optional[List[str]]:
    """"0, 1 2" -> ["0", "1", "2"]; empty: every fold the model has. RunRequest.validate judges the rest."""
    folds = [f for f in re.split(r"[\s,;]+", text.strip()) if f]
    return folds or None


def cuda_available() -> Optional[bool]:
    """None while torch is not installed (the panel must open before the dependency question)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    return bool(torch.cuda.is_available())


class RunOptionsForm:
    def __init__(self, ui, logic, log):
        self.ui = ui
        self.logic = logic  # for the "not installed" line only
        self.structures = StructureChecklist(ui)
        self.choices, problem = load_choices()  # the runner's catalogue, with the user's own models
        if problem:
            log(problem)
        for choice in self.choices:
            ui.modelSelector.addItem(choice.title, choice.key)
        for label, value in DEVICES:
            ui.deviceSelector.addItem(label, value)
        for label, value in UNCERTAINTY:
            ui.uncertaintyMethodSelector.addItem(label, value)
        for value in PRECISIONS:
            ui.precisionSelector.addItem(PRECISION_LABELS.get(value, value), value)
        for value in MODES:
            ui.modeSelector.addItem(MODE_LABELS.get(value, value), value)
        for value in SPEEDS:
            ui.speedSelector.addItem(SPEED_LABELS.get(value, value), value)
        ui.modelSelector.setCurrentIndex(max(0, ui.modelSelector.findData(DEFAULT_CHOICE_KEY)))

        ui.modelSelector.connect("currentIndexChanged(int)", self.on_model_changed)
        ui.qualitySelector.connect("currentIndexChanged(int)", self.update_device_warning)
        ui.qualitySelector.connect("currentIndexChanged(int)", self.update_model_status)
        ui.deviceSelector.connect("currentIndexChanged(int)", self.update_device_warning)
        ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.update_device_warning)
        ui.uncertaintyMethodSelector.connect("currentIndexChanged(int)", self.on_uncertainty_method_changed)
        self.on_uncertainty_method_changed()
        self.on_model_changed()

    @property
    def input_widgets(self):
        """What may not change while a run uses it."""
        ui = self.ui
        return (ui.inputVolumeSelector, ui.modelSelector, ui.qualitySelector, ui.deviceSelector,
                ui.outputSegmentationSelector, ui.structureTree, ui.uncertaintyMethodSelector,
                ui.uncertaintyPassesSpinBox, ui.confidenceThresholdSpinBox, ui.precisionSelector, ui.modeSelector,
                ui.tileStepSpinBox, ui.foldsLineEdit, ui.speedSelector)

    def current_choice(self) -> Optional[ModelChoice]:
        key = self.ui.modelSelector.currentData
        return next((c for c in self.choices if c.key == key), None)

    def on_model_changed(self, *_) -> None:
        choice = self.current_choice()
        self.ui.qualitySelector.clear()
        for q in (choice.qualities if choice else ()):
            self.ui.qualitySelector.addItem(q)
        self.structures.fill(choice.structures if choice else ())
        self.update_device_warning()
        self.update_model_status()

    def on_uncertainty_method_changed(self, *_) -> None:
        self.ui.uncertaintyPassesSpinBox.enabled = self.ui.uncertaintyMethodSelector.currentData in ("tta", "mcdropout")

    def update_model_status(self, *_) -> None:
        """The licence line, and whether Apply will first download the model (all structures)."""
        choice = self.current_choice()
        if choice is None:
            self.ui.licenseLabel.text = ""
            return
        args = choice.run_arguments(self.ui.qualitySelector.currentText)
        try:
            missing = self.logic.missing_models(SegmentationRequest(None, RunRequest(**args)))
        except Exception as e:  # a broken catalogue: Apply says so in full
            self.ui.licenseLabel.text = f"{choice.licence}; model status unknown ({e})"
            return
        status = f"; not installed: Apply downloads {len(missing)} model(s)" if missing else ""
        self.ui.licenseLabel.text = choice.licence + status

    def update_device_warning(self, *_) -> None:
        from MedSegAILib.run_options import cpu_warning

        volume = self.ui.inputVolumeSelector.currentNode()
        voxels = 0
        if volume is not None and volume.GetImageData() is not None:
            voxels = volume.GetImageData().GetNumberOfPoints()
        self.ui.deviceWarningLabel.text = cpu_warning(self.ui.deviceSelector.currentData or "auto",
                                                      self.ui.qualitySelector.currentText or "normal", voxels,
                                                      cuda_available())

    def run_request(self) -> RunRequest:
        """Not validated here: the Logic does, and says what is wrong."""
        ui = self.ui
        args = self.current_choice().run_arguments(ui.qualitySelector.currentText)
        return RunRequest(**args, roi_subset=self.structures.selected_subset(),
                          device=ui.deviceSelector.currentData or "auto",
                          precision=ui.precisionSelector.currentData or "auto",
                          speed=ui.speedSelector.currentData or "exact",
                          mode=ui.modeSelector.currentData or "auto",
                          tile_step=ui.tileStepSpinBox.value or None,  # 0: the model's own step
                          folds=parse_folds(ui.foldsLineEdit.text),
                          uncertainty=ui.uncertaintyMethodSelector.currentData or None,
                          uncertainty_passes=ui.uncertaintyPassesSpinBox.value,
                          confidence_threshold=ui.confidenceThresholdSpinBox.value)

    def segmentation_request(self) -> SegmentationRequest:
        # on_edited="error": the panel asks the user when the run meets edited segments.
        return SegmentationRequest(self.ui.inputVolumeSelector.currentNode(), self.run_request(),
                                   segmentation_node=self.ui.outputSegmentationSelector.currentNode(),
                                   on_edited="error", known_structures=self.current_choice().structures)
