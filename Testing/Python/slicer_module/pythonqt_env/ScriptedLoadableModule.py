"""``slicer.ScriptedLoadableModule``: the four base classes a scripted module derives from.

They follow Slicer's Base/Python/slicer/ScriptedLoadableModule.py in what the module relies on:
the module sets its metadata on ``parent``, the widget gets ``self.parent`` and ``self.layout``
(and builds itself when created without a parent), the test is a ``unittest.TestCase`` whose
``delayDisplay`` lets the event loop run.
"""
from __future__ import annotations

import logging
import unittest

import qt
import slicer

__all__ = ["ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
           "ScriptedLoadableModuleTest"]


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent
        self.moduleName = self.__class__.__name__
        parent.title = ""
        parent.categories = []
        parent.dependencies = []
        parent.contributors = []
        parent.helpText = ""
        parent.acknowledgementText = ""
        if not hasattr(slicer, "selfTests"):
            slicer.selfTests = {}
        slicer.selfTests[self.moduleName] = self.runTest

    def runTest(self, msec=100, **kwargs):
        import importlib

        module = importlib.import_module(self.__module__)
        test = getattr(module, self.moduleName + "Test")()
        test.messageDelay = msec
        test.runTest(**kwargs)


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.moduleName = self.__class__.__name__
        if self.moduleName.endswith("Widget"):
            self.moduleName = self.moduleName[:-6]
        self.developerMode = False
        if not parent:
            self.parent = slicer.qMRMLWidget()
            self.parent.setLayout(qt.QVBoxLayout())
            self.parent.setMRMLScene(slicer.mrmlScene)
        else:
            self.parent = parent
        self.layout = self.parent.layout()
        if not parent:
            self.setup()
            self.parent.show()
        slicer.app.moduleManager().connect("moduleAboutToBeUnloaded(QString)", self._onModuleAboutToBeUnloaded)

    def cleanup(self):
        pass

    def _onModuleAboutToBeUnloaded(self, moduleName):
        if moduleName == self.moduleName:
            self.cleanup()
            slicer.app.moduleManager().disconnect("moduleAboutToBeUnloaded(QString)",
                                                  self._onModuleAboutToBeUnloaded)

    def setup(self):
        pass  # Slicer adds its "Reload and Test" section here in developer mode


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        self.moduleName = self.__class__.__name__
        if self.moduleName.endswith("Logic"):
            self.moduleName = self.moduleName[:-5]
        self.isSingletonParameterNode = True


class ScriptedLoadableModuleTest(unittest.TestCase):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.enableScreenshots = False

    def delayDisplay(self, message, requestedDelay=None, msec=None):
        if hasattr(self, "messageDelay"):
            msec = self.messageDelay
        if msec is None:
            msec = requestedDelay if requestedDelay is not None else 100
        slicer.util.delayDisplay(message, msec)

    def runTest(self):
        logging.warning("No test is defined in " + self.__class__.__name__)
