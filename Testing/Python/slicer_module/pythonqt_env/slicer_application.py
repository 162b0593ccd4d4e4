"""The parts of the Slicer application that the module's widget meets, for pytest on real Qt.

``install()`` makes ``import qt``, ``import ctk``, ``slicer.app``, ``slicer.qMRMLWidget``,
``slicer.ScriptedLoadableModule`` and the Segment Editor's effect classes (``segment_editor.py``,
``SegmentEditorEffects.py``) work over PySide6 (offscreen) and slicer-core's real MRML
classes. Slicer's own ``slicer.util`` (shipped in slicer-core) then runs unchanged on top:
loadUI, childWidgetVariables, errorDisplay, messageBox, WaitCursor, loadVolume.

Modal dialogs are real: :class:`DialogRobot` watches for them, records what they said and which
buttons they offered, and answers them as the test scripted, so a dialog the code never
expected, or one that lacks the button the code relies on, fails the test.
"""
from __future__ import annotations

import collections
import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Deque, List, Optional, Union

HERE = Path(__file__).resolve().parent


@dataclass
class SeenDialog:
    kind: str  # class name: QMessageBox, ctkMessageBox, QFileDialog, QDialog
    title: str
    text: str
    buttons: List[str] = field(default_factory=list)
    answered: str = ""
    problem: str = ""  # set when the scripted answer could not be given


class DialogRobot:
    """Answers modal dialogs: a StandardButton, a button's text, or a file path for a file dialog."""

    INTERVAL_MS = 15
    HANDLED = "_medsegai_robot_answered"

    def __init__(self):
        from PySide6 import QtCore

        self.answers: Deque[Union[int, str]] = collections.deque()
        self.seen: List[SeenDialog] = []
        self._timer = QtCore.QTimer()
        self._timer.setInterval(self.INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def answer(self, *answers) -> None:
        self.answers.extend(answers)

    def take(self) -> List[SeenDialog]:
        seen, self.seen = self.seen, []
        return seen

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        from PySide6 import QtWidgets

        dialog = QtWidgets.QApplication.activeModalWidget()
        # Marked on the dialog itself: a Python id can come back for the next dialog once one is deleted.
        if dialog is None or dialog.property(self.HANDLED) or not dialog.isVisible():
            return
        dialog.setProperty(self.HANDLED, True)
        answer = self.answers.popleft() if self.answers else None
        if isinstance(dialog, QtWidgets.QMessageBox):
            self._answer_message_box(dialog, answer)
        elif isinstance(dialog, QtWidgets.QFileDialog):
            seen = SeenDialog(type(dialog).__name__, dialog.windowTitle(), "", answered=str(answer or ""))
            self.seen.append(seen)
            if isinstance(answer, str):
                dialog.selectFile(answer)
                dialog.accept()
            else:
                seen.problem = "a file dialog the test did not expect"
                dialog.reject()
        else:
            labels = [w.text() for w in dialog.findChildren(QtWidgets.QLabel)]
            self.seen.append(SeenDialog(type(dialog).__name__, dialog.windowTitle(), "\n".join(labels),
                                        problem="a dialog the test did not expect"))
            dialog.reject()

    def _answer_message_box(self, box, answer) -> None:
        from PySide6 import QtWidgets

        buttons = [b.text().replace("&", "") for b in box.buttons()]
        seen = SeenDialog(type(box).__name__, box.windowTitle(), box.text(), buttons)
        self.seen.append(seen)
        target = None
        if isinstance(answer, str):
            target = next((b for b in box.buttons() if b.text().replace("&", "") == answer), None)
        elif answer is not None:
            target = box.button(QtWidgets.QMessageBox.StandardButton(answer))
        if target is None:
            seen.problem = ("a message box the test did not expect" if answer is None
                            else f"no button {answer!r}; the box offered {buttons}")
            box.reject()
            return
        seen.answered = target.text().replace("&", "")
        target.click()


class _ModuleManager:
    def __init__(self):
        self.slots = collections.defaultdict(list)

    def connect(self, signature, slot):
        self.slots[signature].append(slot)
        return True

    def disconnect(self, signature, slot):
        if slot in self.slots[signature]:
            self.slots[signature].remove(slot)
        return True


class _CoreIOManager:
    """Loads volumes the way Slicer's volume reader does: through the Volumes module logic."""

    def fileType(self, filename) -> str:
        name = str(filename).lower()
        if name.endswith((".nrrd", ".nii", ".nii.gz", ".mha", ".mhd")):
            return "VolumeFile"
        return "NoFile"

    def loadNodes(self, filetype, properties, loaded_nodes=None, messages=None) -> bool:
        import slicer

        if filetype != "VolumeFile":
            return False
        path = properties["fileName"]
        name = properties.get("name") or Path(path).name.split(".")[0]
        options = 1 if properties.get("labelmap") else 0
        node = slicer.modules.volumes.logic().AddArchetypeVolume(path, name, options)
        if node is None:
            return False
        if loaded_nodes is not None:
            loaded_nodes.AddItem(node)
        return True


class SlicerApp:
    """``slicer.app``: what slicer.util and the module call on it; anything else is an AttributeError."""

    applicationName = "Slicer"

    def __init__(self, temporary_path: Path):
        from PySide6 import QtWidgets

        import qt

        self.temporaryPath = str(temporary_path)
        self.testing = False
        self.signal_slots = collections.defaultdict(list)
        self.restarts = 0
        self._module_manager = _ModuleManager()
        self._io = _CoreIOManager()
        self._main_window = QtWidgets.QMainWindow()
        self._main_window.setObjectName("qSlicerMainWindow")
        self._qt = qt

    def connect(self, signature, slot):
        self.signal_slots[signature].append(slot)
        return True

    def disconnect(self, signature, slot):
        # PythonQt's QObject.disconnect: False, not an error, for a slot that is not connected.
        if slot in self.signal_slots[signature]:
            self.signal_slots[signature].remove(slot)
            return True
        return False

    def emit(self, signature, *args):
        for slot in list(self.signal_slots[signature]):
            slot(*args)

    def testingEnabled(self) -> bool:
        return self.testing

    def processEvents(self, *args):
        from PySide6 import QtWidgets

        QtWidgets.QApplication.processEvents()

    def topLevelWidgets(self):
        from PySide6 import QtWidgets

        return [self._qt.wrap(w) for w in QtWidgets.QApplication.topLevelWidgets()]

    def mainWindow(self):
        return self._qt.wrap(self._main_window)

    def moduleManager(self):
        return self._module_manager

    def coreIOManager(self):
        return self._io

    def restart(self):
        self.restarts += 1

    def setOverrideCursor(self, cursor):
        self._qt.QApplication.setOverrideCursor(cursor)

    def restoreOverrideCursor(self):
        self._qt.QApplication.restoreOverrideCursor()

    def pauseRender(self):
        pass

    def resumeRender(self):
        pass


class SlicerUiLoader:
    """QUiLoader that knows Slicer's and CTK's widgets, connects the .ui file's MRML signals
    (their vtk argument types have no Qt meta type here) and refuses a property that the class
    of its widget does not have (QUiLoader would silently make it a dynamic property)."""

    def __init__(self, parent=None):
        from PySide6 import QtUiTools

        import ctk_widgets
        import mrml_widgets

        self._loader = QtUiTools.QUiLoader(parent)
        for cls in ctk_widgets.CLASSES + mrml_widgets.CLASSES:
            self._loader.registerCustomWidget(cls)

    def load(self, device, parent=None):
        from PySide6 import QtCore

        import qt

        device, parent = qt.unwrap(device), qt.unwrap(parent)
        device.seek(0)
        tree = ET.fromstring(bytes(device.readAll()).decode("utf-8"))
        connections = tree.find("connections")
        if connections is not None:
            tree.remove(connections)
        buffer = QtCore.QBuffer()
        buffer.setData(QtCore.QByteArray(ET.tostring(tree)))
        buffer.open(QtCore.QIODevice.ReadOnly)
        widget = self._loader.load(buffer, parent)
        if widget is None:
            raise RuntimeError(f"QUiLoader: {self._loader.errorString()}")
        self._check_properties(widget)
        for c in (connections if connections is not None else []):
            self._connect(widget, c)
        return qt.wrap(widget)

    @staticmethod
    def _check_properties(root) -> None:
        from PySide6 import QtCore

        for obj in [root] + root.findChildren(QtCore.QObject):
            extra = [bytes(n).decode() for n in obj.dynamicPropertyNames()]
            extra = [n for n in extra if not n.startswith(("_q_", "_PySide"))]  # Qt's and PySide's bookkeeping
            if extra:
                raise AssertionError(f"{obj.metaObject().className()} '{obj.objectName()}' has no "
                                     f"property {extra} (set in the .ui file)")

    @staticmethod
    def _connect(root, connection) -> None:
        from PySide6 import QtCore

        import qt

        def find(name):
            if root.objectName() == name:
                return root
            found = root.findChild(QtCore.QObject, name)
            if found is None:
                raise AssertionError(f".ui connection names '{name}', which the file does not have")
            return found

        sender, receiver = find(connection.findtext("sender")), find(connection.findtext("receiver"))
        slot = connection.findtext("slot")
        slot_name = slot.split("(")[0]
        if not hasattr(receiver, slot_name):
            raise AssertionError(f".ui connection: {receiver.objectName()} has no slot {slot}")
        qt.connect(sender, connection.findtext("signal"), getattr(receiver, slot_name))


def install(temporary_path: Path) -> SlicerApp:
    """Put the emulated application in place; call before importing the module under test."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from PySide6 import QtCore, QtWidgets

    QtCore.QSettings.setDefaultFormat(QtCore.QSettings.IniFormat)
    QtCore.QSettings.setPath(QtCore.QSettings.IniFormat, QtCore.QSettings.UserScope, str(temporary_path))
    if QtWidgets.QApplication.instance() is None:
        QtWidgets.QApplication(["pytest"])

    import ctk  # noqa: F401 - importable as in Slicer
    import mrml_widgets
    import qt
    import slicer

    qt.register_replacement("QUiLoader", SlicerUiLoader)
    app = SlicerApp(temporary_path)
    slicer.app = app
    slicer.qMRMLWidget = qt._ClassProxy(mrml_widgets.qMRMLWidget)
    slicer.qMRMLNodeComboBox = qt._ClassProxy(mrml_widgets.qMRMLNodeComboBox)
    slicer.qMRMLSliceWidget = qt._ClassProxy(mrml_widgets.qMRMLSliceWidget)
    import ScriptedLoadableModule
    import segment_editor

    segment_editor.install()

    sys.modules["slicer.ScriptedLoadableModule"] = ScriptedLoadableModule
    slicer.ScriptedLoadableModule = ScriptedLoadableModule
    return app


def add_slice_views(scene) -> None:
    """The Red, Yellow and Green slice views' nodes, which Slicer's layout puts in every scene."""
    for name, orientation in (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal")):
        slice_node = scene.AddNewNodeByClass("vtkMRMLSliceNode", name)
        slice_node.SetLayoutName(name)
        slice_node.SetSingletonTag(name)
        slice_node.SetOrientation(orientation)
        composite = scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
        composite.SetLayoutName(name)
        composite.SetSingletonTag(name)


def module_panel(widget_class, scene):
    """A scripted module's widget as Slicer builds it: a qMRMLWidget parent with a vertical layout
    and the scene, the Python widget made on it, then ``setup()``. Returns (widget, parent)."""
    import qt
    import slicer

    parent = slicer.qMRMLWidget()
    parent.setLayout(qt.QVBoxLayout())
    parent.setMRMLScene(scene)
    widget = widget_class(parent)
    widget.setup()
    return widget, parent


def process_events_until(predicate, timeout_s: float, what: str = "the condition") -> None:
    """Run the Qt event loop (timers, queued signals) until ``predicate()`` holds."""
    import time

    from PySide6 import QtWidgets

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        QtWidgets.QApplication.processEvents()
        time.sleep(0.01)


__all__ = ["install", "SlicerApp", "DialogRobot", "SeenDialog", "SlicerUiLoader", "add_slice_views", "module_panel",
           "process_events_until"]
