"""MedSegAI's Slicer-side library, below the thin classes in ``MedSegAI.py``.

Layers (nothing imports upward): ``volume_bridge``, ``segmentation_bridge``, ``statistics`` and
``segment_edits`` are the MRML bridge (slicer/vtk/numpy only, scene and logics passed in);
``worker_job``, ``model_choices``, ``dependencies`` and ``segment_logic`` form the Logic
(no Qt); the widget in ``MedSegAI.py`` only talks to the Logic.
"""
