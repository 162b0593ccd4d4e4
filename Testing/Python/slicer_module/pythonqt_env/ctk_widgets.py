"""The CTK widgets the module's .ui file and slicer.util use, on real Qt widgets (``import ctk``
hands them out through :mod:`ctk`, wrapped as PythonQt would).

Each declares the Qt properties of the real CTK class that the .ui sets, so a property the real
class does not have shows up as a dynamic property, which the loader refuses.
"""
from __future__ import annotations

from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import Property


class ctkCollapsibleButton(QtWidgets.QGroupBox):
    """A titled section whose contents hide when collapsed (ctkCollapsibleButton is a QAbstractButton
    that holds a layout; here a group box, so that its title is drawn, with the properties the code
    reads and writes)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._collapsed = False

    def _get_text(self):
        return self.title()

    def _set_text(self, value):
        self.setTitle(value)

    def _get_collapsed(self):
        return self._collapsed

    def _set_collapsed(self, value):
        self._collapsed = bool(value)
        for child in self.findChildren(QtWidgets.QWidget, options=QtCore.Qt.FindDirectChildrenOnly):
            child.setVisible(not self._collapsed)

    text = Property(str, _get_text, _set_text)
    collapsed = Property(bool, _get_collapsed, _set_collapsed)


class ctkSearchBox(QtWidgets.QLineEdit):
    """A QLineEdit with a search icon and a clear button: the same properties and signals."""


class ctkSliderWidget(QtWidgets.QDoubleSpinBox):
    """A slider with a spin box; minimum, maximum, singleStep, value and valueChanged(double) are
    QDoubleSpinBox's own."""


class ctkMessageBox(QtWidgets.QMessageBox):
    """QMessageBox with a "don't show again" option, which slicer.util.messageBox can set."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._key = ""
        self._delete_after_exec = False

    def deleteLater(self):
        # slicer.util.messageBox calls deleteLater() before exec(). Inside Slicer the caller runs in
        # the application's event loop, and the dialog's nested loop leaves that deferred delete
        # alone; here no loop runs around the test, so the nested loop would delete the dialog at
        # once. Deleting after exec() returns is what the caller gets in Slicer.
        self._delete_after_exec = True

    def exec(self):
        try:
            return super().exec()
        finally:
            if self._delete_after_exec:
                super().deleteLater()

    def _get_key(self):
        return self._key

    def _set_key(self, value):
        self._key = value

    dontShowAgainSettingsKey = Property(str, _get_key, _set_key)


CLASSES = (ctkCollapsibleButton, ctkSearchBox, ctkSliderWidget, ctkMessageBox)

