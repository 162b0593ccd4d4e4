"""The "MedSegAI Interactive" Segment Editor effect, as Slicer loads it.

Slicer reads this file itself (``qSlicerSegmentEditorScriptedEffect.setPythonSource``: the folder
name is the Python module's name, the file name the class's), so it stays in its own folder and
holds only the class Slicer calls; the behaviour is ``MedSegAIGui.interactive_tools``.
"""
import qt

from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect):
        from MedSegAIGui.interactive_registration import EFFECT_NAME

        scriptedEffect.name = EFFECT_NAME  # not translated: modules find effects by name
        scriptedEffect.perSegment = True
        scriptedEffect.requireSegments = True
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.tools = None

    def clone(self):
        import qSlicerSegmentationsEditorEffectsPythonQt as effects

        cloned = effects.qSlicerSegmentEditorScriptedEffect(None)
        cloned.setPythonSource(__file__.replace("\\", "/"))
        return cloned

    def icon(self):
        from medsegai.resources import resource_path

        path = resource_path("Icons", "MedSegAI.png")
        return qt.QIcon(str(path)) if path.is_file() else qt.QIcon()

    def helpText(self):
        from MedSegAIGui.interactive_tools import HELP

        return HELP

    def setupOptionsFrame(self):
        from MedSegAIGui.interactive_registration import dependencies_ready, interactive_logic
        from MedSegAIGui.interactive_tools import InteractiveTools

        self.tools = InteractiveTools(self, interactive_logic, dependencies_ready)
        self.scriptedEffect.addOptionsWidget(self.tools.widget)

    def activate(self):
        self.tools.activate()

    def deactivate(self):
        self.tools.deactivate()

    def updateGUIFromMRML(self):
        if self.tools is not None:
            self.tools.update_masking()

    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        return self.tools.gestures.process(callerInteractor, eventId, viewWidget)

    def cleanup(self):
        if self.tools is not None:
            self.tools.cleanup()
