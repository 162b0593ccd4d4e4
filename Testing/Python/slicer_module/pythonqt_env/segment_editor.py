"""Slicer's Segment Editor as a scripted effect meets it, over real MRML nodes and real Qt.

- :class:`qSlicerSegmentEditorScriptedEffect`: the C++ adaptor a Python effect is loaded into.
  ``setPythonSource`` follows Slicer: the file's folder name is the Python module's name, the
  file's base name (with "Effect" appended when missing) the class's; the class is built with the
  adaptor; the object is ``self()`` and ``slicer.<module>``. ``name``, ``perSegment`` and
  ``requireSegments`` are Qt properties (an unknown one is an error, as with any wrapped object).
  The coordinate helpers use the slice node's XYToRAS exactly as qSlicerSegmentEditorAbstractEffect.
- :class:`qSlicerSegmentEditorEffectFactory`: the singleton effects register with (a second
  effect of the same name is refused).
- :class:`SegmentEditorWidget`: the part of qMRMLSegmentEditorWidget that drives an effect: a
  segment editor node (singleton "SegmentEditor") with segmentation, source volume and selected
  segment; every registered effect cloned and given its options frame; the active effect
  activated; and VTK interactor events on slice widgets passed to ``processInteractionEvents``.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Dict, List, Optional

import vtk
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Property

import slicer


class qSlicerSegmentEditorScriptedEffect(QtCore.QObject):
    # qSlicerSegmentEditorAbstractEffect's confirmCurrentSegmentVisible() answers
    NotConfirmed, ConfirmedWithoutDialog, ConfirmedWithDialog = 0, 1, 2

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("UnnamedScriptedEffect")  # the effect's name (PythonQt shows objectName as name)
        self._per_segment = False
        self._require_segments = True
        self._self = None
        self._source = ""
        self._parameter_node = None
        self._options_frame = QtWidgets.QFrame()
        self._options_frame.setLayout(QtWidgets.QVBoxLayout())
        self.undo_states = 0
        self.actors: Dict[object, List[object]] = {}
        self.selected_effect: Optional[str] = None

    def _get_per_segment(self):
        return self._per_segment

    def _set_per_segment(self, value):
        self._per_segment = bool(value)

    def _get_require(self):
        return self._require_segments

    def _set_require(self, value):
        self._require_segments = bool(value)

    perSegment = Property(bool, _get_per_segment, _set_per_segment)
    requireSegments = Property(bool, _get_require, _set_require)

    # -- loading ------------------------------------------------------------------------------
    def setPythonSource(self, path: str) -> bool:
        if not path.endswith((".py", ".pyc")):
            return False
        module_name = Path(path).parent.name
        class_name = Path(path).stem if Path(path).stem.endswith("Effect") else Path(path).stem + "Effect"
        module = sys.modules.get(module_name)
        if module is None or not hasattr(module, class_name):
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        import qt

        self._self = getattr(module, class_name)(qt.wrap(self))
        self._source = path
        setattr(slicer, module_name, self._self)
        return True

    def pythonSource(self) -> str:
        return self._source

    def self(self):
        return self._self

    def clone(self):
        cloned = self._self.clone()
        import qt

        return qt.unwrap(cloned)

    # -- what the effect calls on its adaptor ----------------------------------------------------
    def parameterSetNode(self):
        return self._parameter_node

    def setParameterSetNode(self, node) -> None:
        self._parameter_node = node

    def addOptionsWidget(self, widget) -> None:
        self._options_frame.layout().addWidget(widget)

    def optionsFrame(self):
        return self._options_frame

    def saveStateForUndo(self) -> None:
        self.undo_states += 1

    def selectEffect(self, name: str) -> None:
        self.selected_effect = name

    def addActor2D(self, view, actor) -> None:
        self.actors.setdefault(view, []).append(actor)

    def removeActor2D(self, view, actor) -> None:
        if actor in self.actors.get(view, []):
            self.actors[view].remove(actor)

    def cursorOff(self, view) -> None:
        pass

    def cursorOn(self, view) -> None:
        pass

    def xyToRas(self, xy, view):
        matrix = view.sliceLogic().GetSliceNode().GetXYToRAS()
        ras = matrix.MultiplyPoint((float(xy.x()), float(xy.y()), 0.0, 1.0))
        return QtGui.QVector3D(ras[0], ras[1], ras[2])

    def rasToXy(self, ras, view):
        m = vtk.vtkMatrix4x4()
        vtk.vtkMatrix4x4.Invert(view.sliceLogic().GetSliceNode().GetXYToRAS(), m)
        xy = m.MultiplyPoint((ras.x(), ras.y(), ras.z(), 1.0))
        return QtCore.QPointF(xy[0], xy[1])

    # -- what the Segment Editor calls ----------------------------------------------------------
    def processInteractionEvents(self, interactor, event_id, view) -> bool:
        import qt

        result = self._self.processInteractionEvents(interactor, event_id, qt.wrap(view))
        if not isinstance(result, bool):
            raise TypeError("processInteractionEvents is expected to return a boolean")
        return result


class qSlicerSegmentEditorEffectFactory:
    _instance = None

    def __init__(self):
        self._effects: List[object] = []

    @classmethod
    def instance(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def registerEffect(self, effect) -> bool:
        import qt

        effect = qt.unwrap(effect)
        if effect is None or not effect.objectName():
            return False
        if any(e.objectName() == effect.objectName() for e in self._effects):
            return False
        self._effects.append(effect)
        return True

    def registeredEffects(self):
        import qt

        return [qt.wrap(e) for e in self._effects]


class SegmentEditorWidget:
    """Drives effects as qMRMLSegmentEditorWidget does (see the module docstring)."""

    VIEW_PIXELS = 400

    def __init__(self, scene):
        import mrml_widgets
        import qt

        self.scene = scene
        node = slicer.vtkMRMLSegmentEditorNode()
        node.SetSingletonTag("SegmentEditor")
        self.node = scene.AddNode(node)
        self.views = {}
        for name in ("Red", "Yellow", "Green"):
            slice_node = scene.GetSingletonNode(name, "vtkMRMLSliceNode")
            widget = mrml_widgets.qMRMLSliceWidget()
            widget.setMRMLScene(scene)
            widget.setMRMLSliceNode(slice_node)
            slice_node.SetDimensions(self.VIEW_PIXELS, self.VIEW_PIXELS, 1)
            slice_node.SetFieldOfView(self.VIEW_PIXELS / 2, self.VIEW_PIXELS / 2, 1)  # 0.5 mm per pixel
            self.views[name] = widget
        self.interactor = vtk.vtkRenderWindowInteractor()
        self.effects = []
        # The factory Slicer has (this file may also be imported under a second module name).
        for registered in slicer.qSlicerSegmentEditorEffectFactory.instance().registeredEffects():
            effect = qt.unwrap(registered).clone()
            effect.setParameterSetNode(self.node)
            effect.self().setupOptionsFrame()
            self.effects.append(effect)
        self.active = None

    def effect(self, name: str):
        return next(e for e in self.effects if e.objectName() == name)

    def setActiveEffectByName(self, name: str) -> None:
        if self.active is not None:
            self.active.self().deactivate()
        self.active = self.effect(name) if name else None
        if self.active is not None:
            self.active.self().activate()

    def select(self, segmentation=None, volume=None, segment_id=None) -> None:
        if segmentation is not None:
            self.node.SetAndObserveSegmentationNode(segmentation)
        if volume is not None:
            self.node.SetAndObserveSourceVolumeNode(volume)
        if segment_id is not None:
            self.node.SetSelectedSegmentID(segment_id)
        if self.active is not None:
            self.active.self().updateGUIFromMRML()

    def show(self, view: str, ras) -> None:
        """Centre a slice view on a world point (the slice goes through it)."""
        slice_node = self.views[view].mrmlSliceNode()
        slice_node.JumpSliceByCentering(*[float(c) for c in ras])
        slice_node.UpdateMatrices()

    def xy(self, view: str, ras):
        """The view pixel nearest a world point on the view's slice."""
        m = vtk.vtkMatrix4x4()
        vtk.vtkMatrix4x4.Invert(self.views[view].mrmlSliceNode().GetXYToRAS(), m)
        x, y = m.MultiplyPoint((*[float(c) for c in ras], 1.0))[:2]
        return int(round(x)), int(round(y))

    # -- events ----------------------------------------------------------------------------------
    def event(self, view: str, event_id, xy=(0, 0), shift=False, ctrl=False, alt=False, key="") -> bool:
        self.interactor.SetEventInformation(int(xy[0]), int(xy[1]), int(ctrl), int(shift), key[:1] if key else "\0",
                                            0, key or None)
        self.interactor.SetAltKey(int(alt))
        return self.active.processInteractionEvents(self.interactor, event_id, self.views[view])

    def click(self, view: str, xy, shift=False) -> bool:
        pressed = self.event(view, vtk.vtkCommand.LeftButtonPressEvent, xy, shift=shift)
        self.event(view, vtk.vtkCommand.LeftButtonReleaseEvent, xy, shift=shift)
        return pressed

    def drag(self, view: str, path, shift=False) -> None:
        self.event(view, vtk.vtkCommand.LeftButtonPressEvent, path[0], shift=shift)
        for xy in path[1:]:
            self.event(view, vtk.vtkCommand.MouseMoveEvent, xy, shift=shift)
        self.event(view, vtk.vtkCommand.LeftButtonReleaseEvent, path[-1], shift=shift)

    def key(self, view: str, keysym: str, ctrl=False, shift=False) -> bool:
        return self.event(view, vtk.vtkCommand.KeyPressEvent, (1, 1), shift=shift, ctrl=ctrl, key=keysym)


def install() -> None:
    """Make the classes importable where Slicer has them."""
    import types

    module = types.ModuleType("qSlicerSegmentationsEditorEffectsPythonQt")
    module.qSlicerSegmentEditorScriptedEffect = _ClassProxy()
    sys.modules[module.__name__] = module
    slicer.qSlicerSegmentEditorEffectFactory = qSlicerSegmentEditorEffectFactory


def _ClassProxy():
    import qt

    return qt._ClassProxy(qSlicerSegmentEditorScriptedEffect)
