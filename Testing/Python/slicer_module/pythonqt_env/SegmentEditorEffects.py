"""``SegmentEditorEffects``: the Python base class of Slicer's scripted Segment Editor effects.

As in Slicer (Modules/Loadable/Segmentations/EditorEffects/Python/SegmentEditorEffects): the
effect object keeps the C++ adaptor as ``self.scriptedEffect``; ``register()`` hands that adaptor
to the effect factory; the coordinate helpers call the adaptor's C++ methods with Qt points and
vectors and return plain lists. What the base class leaves empty stays empty here.
"""
import qt
import slicer

__all__ = ["AbstractScriptedSegmentEditorEffect"]


class AbstractScriptedSegmentEditorEffect:
    def __init__(self, scriptedEffect):
        self.scriptedEffect = scriptedEffect

    def register(self):
        slicer.qSlicerSegmentEditorEffectFactory.instance().registerEffect(self.scriptedEffect)

    def cleanup(self):
        pass

    def activate(self):
        pass

    def deactivate(self):
        pass

    def setupOptionsFrame(self):
        pass

    def setMRMLDefaults(self):
        pass

    def updateGUIFromMRML(self):
        pass

    def updateMRMLFromGUI(self):
        pass

    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        return False

    def processViewNodeEvents(self, callerViewNode, eventId, viewWidget):
        pass

    def interactionNodeModified(self, interactionNode):
        # Slicer's base class leaves the effect when the user switches to markups placement.
        if interactionNode.GetCurrentInteractionMode() != slicer.vtkMRMLInteractionNode.ViewTransform:
            self.scriptedEffect.selectEffect("")

    def rasToXy(self, ras, viewWidget):
        point = self.scriptedEffect.rasToXy(qt.QVector3D(ras[0], ras[1], ras[2]), viewWidget)
        return [point.x(), point.y()]

    def xyToRas(self, xy, viewWidget):
        ras = self.scriptedEffect.xyToRas(qt.QPoint(xy[0], xy[1]), viewWidget)
        return [ras.x(), ras.y(), ras.z()]
