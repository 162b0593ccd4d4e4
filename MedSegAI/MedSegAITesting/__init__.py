"""The module's self-test flow, installed with the extension so that "Reload and Test" and the
``py_MedSegAIModuleTest`` ctest run the same code (it needs Slicer's application: not MedSegAILib)."""
