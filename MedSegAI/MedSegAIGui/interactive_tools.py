"""The "MedSegAI Interactive" effect's behaviour: the options frame, the slice-view gestures and
the prompt queue wired together, acting on what the Segment Editor has selected.

The effect class (``MedSegAIEffect/SegmentEditorEffect.py``, the file Slicer loads) only forwards
to this. Prompts reach the Logic (``MedSegAILib.interactive_logic``) through the controller; the
geometry of a gesture (a drag's box, a stroke's voxels) is ``MedSegAILib.slice_prompts``.
"""
from __future__ import annotations

from typing import Callable

import qt
import slicer

from MedSegAILib.interactive_choices import engine_choice, model_licence

from .interactive_controller import PromptController
from .interactive_gestures import ToolState, SliceGestures
from .interactive_options import InteractiveOptions

HELP = """<html>Interactive AI segmentation of the selected segment (MedSegAI).<p>
<ul style="margin: 0">
<li><b>P</b> point: click on a slice (Shift+click: the opposite sign).
<li><b>B</b> box: drag on a slice; a markups ROI for a 3D box.
<li><b>S</b> scribble: paint a stroke. <b>L</b> lasso: draw a closed outline.
<li><b>T</b> toggles + (add) / - (remove); Shift inverts it for one gesture.
<li><b>Ctrl+Z</b> / <b>Ctrl+Y</b>: undo / redo prompts (exactly the voxels each one changed, in every segment).
</ul><p>A segment that has voxels is edited from them; other segments follow the masking settings below.</html>"""


class InteractiveTools:
    def __init__(self, effect, logic: Callable[[], object], dependencies: Callable[[], bool] = lambda: True):
        self.effect = effect
        self.scriptedEffect = effect.scriptedEffect
        self.options = InteractiveOptions(slicer.mrmlScene)
        self.widget = self.options.widget
        self.state = ToolState()
        self.state.listeners.append(lambda: self.options.show_tool(self.state.tool, self.state.positive))
        self.controller = PromptController(logic, self._target, self.options.engine_options, self._report,
                                           before_write=self.scriptedEffect.saveStateForUndo,
                                           dependencies=dependencies)
        self.gestures = SliceGestures(effect, self, self.state)
        o = self.options
        for tool, button in o.tool_buttons.items():
            button.connect("clicked()", lambda t=tool: self.state.set(tool=t))
        o.polarity_button.connect("clicked()", lambda: self.state.set(positive=not self.state.positive))
        o.undo_button.connect("clicked()", self.undo)
        o.redo_button.connect("clicked()", self.redo)
        o.text_button.connect("clicked()", self.text)
        o.text_edit.connect("returnPressed()", self.text)
        o.roi_button.connect("clicked()", self.roi_box)
        o.engine_selector.connect("currentIndexChanged(int)", self.update_licence)
        o.model_edit.connect("editingFinished()", self.update_licence)
        o.model_button.connect("clicked()", self.browse_model)
        self.state.set()
        self.update_licence()

    # -- effect life ----------------------------------------------------------------------------
    def activate(self) -> None:
        self.update_masking()

    def deactivate(self) -> None:
        self.gestures.cancel()

    def cleanup(self) -> None:
        self.gestures.cancel()
        self.controller.cancel_all()
        self.options.roi_selector.setMRMLScene(None)

    def update_masking(self) -> None:
        try:
            self.options.masking_label.text = self.controller.masking_description()
        except Exception as e:  # a segment deleted under us: the line says so, the effect keeps working
            self.options.masking_label.text = str(e).splitlines()[0]

    def update_licence(self, *_) -> None:
        choice = engine_choice(self.options.engine_selector.currentData)
        self.options.model_edit.enabled = self.options.model_button.enabled = choice.needs_model
        text = choice.licence
        if choice.needs_model and self.options.model_edit.text.strip():
            try:
                text = model_licence(self.options.model_edit.text.strip())
            except Exception as e:
                text = str(e).splitlines()[0]
        self.options.licence_label.text = text

    def browse_model(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self.widget, "nnInteractive model folder")
        if folder:
            self.options.model_edit.text = folder
            self.update_licence()

    # -- prompts (the gestures and buttons call these) ----------------------------------------------
    def point(self, ras, positive: bool) -> None:
        self._submit("Point", positive, lambda s: s.addPoint(ras, positive=positive, wait=False))

    def box(self, corner_a, corner_b, slice_to_ras, positive: bool) -> None:
        from MedSegAILib.slice_prompts import drag_box_roi

        self._submit("Box", positive, lambda s: s.addBox(drag_box_roi(corner_a, corner_b, slice_to_ras),
                                                        positive=positive, wait=False))

    def scribble(self, ras_points, positive: bool, slice_to_ras=None) -> None:
        from MedSegAILib.slice_prompts import stroke_array

        width = self.options.brush_width_mm() if slice_to_ras is not None else 0.0
        self._submit("Scribble", positive, lambda s: s.addScribble(
            stroke_array(s.volumeNode, ras_points, width, slice_to_ras), positive=positive, wait=False))

    def lasso(self, ras_points, positive: bool) -> None:
        self._submit("Lasso", positive, lambda s: s.addLasso(ras_points, positive=positive, wait=False))

    def roi_box(self) -> None:
        roi = self.options.roi_selector.currentNode()
        if roi is None:
            self._report("Box: choose a markups ROI (place one with the markups toolbar) first.", True)
            return
        positive = self.state.positive
        self._submit("ROI box", positive, lambda s: s.addBox(roi, positive=positive, wait=False))

    def text(self) -> None:
        name = self.options.text_edit.text
        self.controller.submit(f"Name '{name.strip()}'", lambda s: s.addText(name, wait=False))

    def undo(self) -> None:
        self.controller.submit("Undo", lambda s: s.undo())

    def redo(self) -> None:
        self.controller.submit("Redo", lambda s: s.redo())

    def too_small(self, tool: str) -> None:
        what = "drag from one corner to the opposite one" if tool == "box" else "draw a larger closed outline"
        self._report(f"{tool.capitalize()}: too small, nothing was sent ({what}).", True)

    # -- internals ----------------------------------------------------------------------------------
    def _submit(self, label: str, positive: bool, run) -> None:
        self.controller.submit(f"{label} {'+' if positive else '-'}", run)

    def _target(self):
        node = self.scriptedEffect.parameterSetNode()
        if node is None:
            return None, None, "", None
        return node.GetSourceVolumeNode(), node.GetSegmentationNode(), node.GetSelectedSegmentID() or "", node

    def _report(self, text: str, is_error: bool) -> None:
        self.options.show_status(text, is_error)
        if not is_error:
            self.update_masking()
