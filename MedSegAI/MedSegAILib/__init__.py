"""MedSegAI's Slicer-side library, below the thin classes in ``MedSegAI.py``.

Layers (nothing imports upward): ``volume_bridge``, ``segmentation_bridge``, ``statistics`` and
``segment_edits`` are the MRML bridge (slicer/vtk/numpy only, scene and logics passed in);
``worker_job``, ``model_choices``, ``dependencies``, ``console_request`` and ``segment_logic`` form
the Logic (no Qt); ``logic_interface`` is what the panel may call on it. Interactive segmentation:
``prompt_geometry``, ``segment_regions`` and ``masking`` are its bridge (world points to voxels,
segments region by region, Slicer's masking settings), ``interactive_edits`` its exact undo,
``interactive_channel`` its requests to the worker and ``interactive_logic`` the Logic;
``slice_prompts`` turns slice-view gestures into its inputs, ``interactive_choices`` lists its engines
with their licences. The panel and its dialogs
(Qt) are ``MedSegAIGui``, above this package.
"""
