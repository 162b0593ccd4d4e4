"""The module's Qt side: the panel behind ``MedSegAIWidget`` and the questions it asks the user.

Above ``MedSegAILib``, never below it: the panel reaches the Logic only through
``MedSegAILib.logic_interface.PanelLogic`` and the user only through ``dialogs.Dialogs``, so tests
can replace either. The Segment Editor effect "MedSegAI Interactive" is ``interactive_tools``
(options frame, gestures, prompt queue) behind ``../MedSegAIEffect/SegmentEditorEffect.py``, the file
Slicer loads; ``interactive_registration`` registers it. Needs Slicer's ``qt`` (PythonQt), hence not
in the Qt-free library.
"""
