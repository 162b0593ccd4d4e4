"""The options frame of the "MedSegAI Interactive" effect: tools, +/-, name, ROI box, undo/redo,
engine/model/device with its licence, and what the next prompt will do (status and masking lines).

Only widgets and their state: the actions are connected by ``interactive_tools``.
"""
from __future__ import annotations

import qt
import slicer

from MedSegAILib.interactive_choices import DEVICES, ENGINE_CHOICES

DEFAULT_BRUSH_MM = 3.0  # a stroke a few voxels wide on a typical CT, visible and still precise
TOOL_TITLES = {"point": "Point (P)", "box": "Box (B)", "scribble": "Scribble (S)", "lasso": "Lasso (L)"}
TOOL_TIPS = {
    "point": "Click on a slice: a point prompt. Shift+click: the opposite sign.",
    "box": "Drag on a slice from one corner to the other: a 2D box prompt.",
    "scribble": "Paint a stroke on a slice: a scribble prompt.",
    "lasso": "Draw a closed outline on a slice (release to close it): a lasso prompt.",
}


class InteractiveOptions:
    def __init__(self, scene):
        self.widget = qt.QWidget()
        form = qt.QFormLayout(self.widget)

        tools = qt.QHBoxLayout()
        self.tool_group = qt.QButtonGroup(self.widget)
        self.tool_buttons = {}
        for tool, title in TOOL_TITLES.items():
            button = qt.QToolButton()
            button.text, button.toolTip, button.checkable = title, TOOL_TIPS[tool], True
            self.tool_group.addButton(button)
            self.tool_buttons[tool] = button
            tools.addWidget(button)
        self.polarity_button = qt.QToolButton()
        self.polarity_button.checkable = True
        self.polarity_button.toolTip = "Toggle between adding (+) and removing (-) prompts (T; Shift inverts once)"
        tools.addWidget(self.polarity_button)
        form.addRow("Tool:", tools)
        self.brush_width = qt.QDoubleSpinBox()
        self.brush_width.minimum, self.brush_width.maximum, self.brush_width.singleStep = 0.0, 50.0, 1.0
        self.brush_width.decimals = 1
        self.brush_width.suffix = " mm"
        self.brush_width.value = DEFAULT_BRUSH_MM
        self.brush_width.toolTip = "Diameter of the scribble brush on the slice (0: a one-voxel line)"
        form.addRow("Brush:", self.brush_width)

        text_row = qt.QHBoxLayout()
        self.text_edit = qt.QLineEdit()
        self.text_edit.placeholderText = "Structure name, e.g. liver"
        self.text_button = qt.QPushButton("Segment by name")
        self.text_button.toolTip = "Segment the named structure with an auto-segmentation model, then refine with prompts"
        text_row.addWidget(self.text_edit)
        text_row.addWidget(self.text_button)
        form.addRow("Name:", text_row)

        roi_row = qt.QHBoxLayout()
        self.roi_selector = slicer.qMRMLNodeComboBox()
        self.roi_selector.nodeTypes = ["vtkMRMLMarkupsROINode"]
        self.roi_selector.noneEnabled = True
        self.roi_selector.addEnabled = False
        self.roi_selector.setMRMLScene(scene)
        self.roi_button = qt.QPushButton("Apply ROI")
        self.roi_button.toolTip = "A 3D box prompt: the voxels inside the chosen markups ROI"
        roi_row.addWidget(self.roi_selector)
        roi_row.addWidget(self.roi_button)
        form.addRow("3D box:", roi_row)

        history = qt.QHBoxLayout()
        self.undo_button = qt.QPushButton("Undo prompt (Ctrl+Z)")
        self.redo_button = qt.QPushButton("Redo prompt (Ctrl+Y)")
        history.addWidget(self.undo_button)
        history.addWidget(self.redo_button)
        form.addRow(history)

        self.engine_selector = qt.QComboBox()
        for choice in ENGINE_CHOICES:
            self.engine_selector.addItem(choice.title, choice.key)
        form.addRow("Engine:", self.engine_selector)
        model_row = qt.QHBoxLayout()
        self.model_edit = qt.QLineEdit()
        self.model_edit.placeholderText = "nnInteractive model folder"
        self.model_button = qt.QPushButton("Browse...")
        model_row.addWidget(self.model_edit)
        model_row.addWidget(self.model_button)
        form.addRow("Model:", model_row)
        self.device_selector = qt.QComboBox()
        for device in DEVICES:
            self.device_selector.addItem(device, device)
        form.addRow("Device:", self.device_selector)
        self.licence_label = self._label()
        form.addRow(self.licence_label)
        self.masking_label = self._label()
        form.addRow(self.masking_label)
        self.status_label = self._label()
        form.addRow("Status:", self.status_label)

    @staticmethod
    def _label():
        label = qt.QLabel()
        label.wordWrap = True
        return label

    def show_tool(self, tool: str, positive: bool) -> None:
        self.tool_buttons[tool].checked = True
        self.polarity_button.checked = not positive
        self.polarity_button.text = "+ adds (T)" if positive else "- removes (T)"

    def show_status(self, text: str, is_error: bool) -> None:
        self.status_label.text = text
        self.status_label.styleSheet = "color: #c0392b;" if is_error else ""

    def brush_width_mm(self) -> float:
        return float(self.brush_width.value)

    def engine_options(self) -> dict:
        model = self.model_edit.text.strip() or None
        engine = self.engine_selector.currentData
        return {"engine": engine, "model": model if engine == "nninteractive" else None,
                "device": self.device_selector.currentData}
