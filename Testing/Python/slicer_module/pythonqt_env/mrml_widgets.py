"""Slicer's qMRMLWidget and qMRMLNodeComboBox over a real MRML scene (slicer-core), on real Qt.

The node combo box follows qMRMLNodeComboBox where the module relies on it: it lists the scene's
nodes of ``nodeTypes`` (exact classes unless ``showChildNodeTypes``; hidden nodes left out), keeps
its selection when nodes come and go, selects a node as soon as there is one when ``noneEnabled``
is off, offers ``noneDisplay`` as the empty choice, and emits ``currentNodeChanged(vtkMRMLNode*)``.
"""
from __future__ import annotations

from typing import List, Optional

from PySide6 import QtWidgets
from PySide6.QtCore import Property, Signal, Slot

import slicer

_SCENE_EVENTS = ("NodeAddedEvent", "NodeRemovedEvent", "EndBatchProcessEvent", "EndCloseEvent")


class qMRMLWidget(QtWidgets.QWidget):
    mrmlSceneChanged = Signal(object)
    PYTHONQT_SIGNALS = {"mrmlSceneChanged(vtkMRMLScene*)": "mrmlSceneChanged(PyObject)"}

    def __init__(self, parent=None):
        super().__init__(parent)
        self._scene = None

    @Slot(object)
    def setMRMLScene(self, scene) -> None:
        self._scene = scene
        self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self):
        return self._scene


class qMRMLNodeComboBox(QtWidgets.QComboBox):
    currentNodeChanged = Signal(object)
    currentNodeIDChanged = Signal(str)
    PYTHONQT_SIGNALS = {"currentNodeChanged(vtkMRMLNode*)": "currentNodeChanged(PyObject)",
                        "currentNodeIDChanged(QString)": "currentNodeIDChanged(QString)"}

    def __init__(self, parent=None):
        super().__init__(parent)
        self._scene = None
        self._observers: List[int] = []
        self._node_types: List[str] = []
        self._show_child_types = True
        self._none_enabled = False
        self._none_display = "None"
        self._flags = {"addEnabled": True, "removeEnabled": True, "editEnabled": False, "renameEnabled": False,
                       "showHidden": False, "selectNodeUponCreation": True}
        self._current_id: Optional[str] = None
        self.currentIndexChanged.connect(self._on_index_changed)

    # -- properties the .ui sets --------------------------------------------------------------
    def _get_types(self):
        return list(self._node_types)

    def _set_types(self, value):
        self._node_types = list(value)
        self._refresh()

    def _get_child(self):
        return self._show_child_types

    def _set_child(self, value):
        self._show_child_types = bool(value)
        self._refresh()

    def _get_none(self):
        return self._none_enabled

    def _set_none(self, value):
        self._none_enabled = bool(value)
        self._refresh()

    def _get_none_display(self):
        return self._none_display

    def _set_none_display(self, value):
        self._none_display = str(value)
        self._refresh()

    nodeTypes = Property("QStringList", _get_types, _set_types)
    showChildNodeTypes = Property(bool, _get_child, _set_child)
    noneEnabled = Property(bool, _get_none, _set_none)
    noneDisplay = Property(str, _get_none_display, _set_none_display)

    def _flag(name):  # noqa: N805 - a property factory used in the class body
        return Property(bool, lambda self: self._flags[name], lambda self, v: self._flags.__setitem__(name, bool(v)))

    addEnabled = _flag("addEnabled")
    removeEnabled = _flag("removeEnabled")
    editEnabled = _flag("editEnabled")
    renameEnabled = _flag("renameEnabled")
    showHidden = _flag("showHidden")
    selectNodeUponCreation = _flag("selectNodeUponCreation")
    del _flag

    # -- the API the module calls -------------------------------------------------------------
    @Slot(object)
    def setMRMLScene(self, scene) -> None:
        self._detach()
        self._scene = scene
        if scene is not None:
            for event in _SCENE_EVENTS:
                self._observers.append(scene.AddObserver(getattr(slicer.vtkMRMLScene, event),
                                                         lambda *_: self._refresh()))
        self._refresh()

    def mrmlScene(self):
        return self._scene

    def currentNode(self):
        if self._scene is None or self._current_id is None:
            return None
        return self._scene.GetNodeByID(self._current_id)

    def currentNodeID(self) -> str:
        return self._current_id or ""

    def setCurrentNode(self, node) -> None:
        self.setCurrentNodeID(node.GetID() if node is not None else "")

    def setCurrentNodeID(self, node_id: str) -> None:
        ids = self._ids()
        if node_id and node_id not in ids:
            return  # qMRMLNodeComboBox ignores a node it does not list
        if not node_id and not self._none_enabled:
            return
        self.setCurrentIndex(ids.index(node_id) if node_id else 0)

    def nodes(self):
        return [self._scene.GetNodeByID(i) for i in self._ids() if i]

    # -- internals ----------------------------------------------------------------------------
    def _detach(self) -> None:
        if self._scene is not None:
            for tag in self._observers:
                self._scene.RemoveObserver(tag)
        self._observers = []

    def _listed(self, node) -> bool:
        if node.GetHideFromEditors() and not self._flags["showHidden"]:
            return False
        if self._show_child_types:
            return any(node.IsA(t) for t in self._node_types)
        return node.GetClassName() in self._node_types

    def _ids(self) -> List[str]:
        return [self.itemData(i) or "" for i in range(self.count())]

    def _refresh(self) -> None:
        nodes = []
        if self._scene is not None:
            nodes = [self._scene.GetNthNode(n) for n in range(self._scene.GetNumberOfNodes())]
            nodes = [n for n in nodes if self._listed(n)]
        previous = self._current_id
        self.blockSignals(True)
        self.clear()
        if self._none_enabled:
            self.addItem(self._none_display, "")
        for node in nodes:
            self.addItem(node.GetName(), node.GetID())
        ids = self._ids()
        if previous in ids:
            self.setCurrentIndex(ids.index(previous))
        elif self.count():
            self.setCurrentIndex(0)
        self.blockSignals(False)
        self._update_current()

    def _on_index_changed(self, _index: int) -> None:
        self._update_current()

    def _update_current(self) -> None:
        data = self.currentData() if self.count() else None
        new_id = data or None
        if new_id != self._current_id:
            self._current_id = new_id
            self.currentNodeIDChanged.emit(new_id or "")
            self.currentNodeChanged.emit(self.currentNode())


class qMRMLSliceView(QtWidgets.QWidget):
    """The VTK render view inside a slice widget; only what effects call on it (render requests)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.render_requests = 0

    def scheduleRender(self) -> None:
        self.render_requests += 1


class qMRMLSliceWidget(qMRMLWidget):
    """A slice view (Red, Yellow, Green) as effects see it: ``sliceLogic()`` is a real
    vtkMRMLSliceLogic on the view's real vtkMRMLSliceNode, whose XYToRAS maps the view's pixels
    (origin bottom left, as VTK's interactor reports them) to world RAS."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._slice_logic = slicer.vtkMRMLSliceLogic()
        self._view = qMRMLSliceView(self)

    @Slot(object)
    def setMRMLScene(self, scene) -> None:
        self._slice_logic.SetMRMLScene(scene)
        super().setMRMLScene(scene)

    def setMRMLSliceNode(self, slice_node) -> None:
        self._slice_logic.SetSliceNode(slice_node)

    def mrmlSliceNode(self):
        return self._slice_logic.GetSliceNode()

    def sliceLogic(self):
        return self._slice_logic

    def sliceView(self):
        return self._view


CLASSES = (qMRMLWidget, qMRMLNodeComboBox, qMRMLSliceWidget)
