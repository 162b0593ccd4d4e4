"""Slicer self-test (ctest ``py_MedSegAIModuleTest``): the installed flow of MedSegAITesting.

Data: ``MEDSEGAI_DATA_DIR`` (default ``<repo>/../shared/data``, else a verified download of the
sample CT). Model: ``MEDSEGAI_TEST_MODEL``, default the bundled ``medsegai_ct_demo``.
"""
import os

from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("MEDSEGAI_DATA_DIR", os.path.abspath(os.path.join(HERE, "..", "..", "..", "..", "shared", "data")))


class MedSegAIModuleTest(ScriptedLoadableModuleTest):
    def setUp(self):
        import slicer
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        from MedSegAI import MedSegAILogic
        from MedSegAITesting.module_flow import run_module_flow
        self.setUp()
        logic = MedSegAILogic()
        try:
            run_module_flow(self, logic)
        finally:
            logic.shutdown()
