"""What the self-test does inside Slicer: load the sample CT, refuse bad input, segment, compute
statistics and uncertainty, jump to the least confident segment, cancel a run halfway.

The CT is TotalSegmentator's example (``medsegai.sample_data``): read from ``MEDSEGAI_DATA_DIR``
when set, else downloaded once from a commit-pinned URL and checked against its SHA256. The model is
``MEDSEGAI_TEST_MODEL`` (a model folder or catalogue id), by default the bundled demo model.
"""
import logging
import os
import time

import numpy as np
import slicer
import vtk

from medsegai.sample_data import sample_ct


def _node_ids():
    return sorted(slicer.mrmlScene.GetNthNode(n).GetID() for n in range(slicer.mrmlScene.GetNumberOfNodes()))


def run_module_flow(test, logic):
    """``logic``: the module's console Logic (MedSegAI.MedSegAILogic), given by the caller so that this
    file does not import the module file that imports it."""
    from medsegai.errors import CancelledError
    from medsegai.run_request import RunRequest
    from MedSegAILib.errors import InputError
    from MedSegAILib.segment_logic import SegmentationRequest

    slicer.mrmlScene.Clear(0)
    volume = slicer.util.loadVolume(str(sample_ct(log=logging.info)))
    model = os.environ.get("MEDSEGAI_TEST_MODEL", "medsegai_ct_demo")

    # Bad input: a message, nothing added.
    labels = slicer.modules.volumes.logic().CreateAndAddLabelVolume(volume, "labels")
    before = _node_ids()
    for node in (None, labels):
        try:
            logic.segment(node, model=model, device="cpu", install_dependencies=False)
            raise AssertionError("bad input was accepted")
        except InputError:
            pass
    test.assertEqual(_node_ids(), before)
    slicer.mrmlScene.RemoveNode(labels.GetDisplayNode())
    slicer.mrmlScene.RemoveNode(labels)

    # The whole flow.
    seg = logic.segment(volume, model=model, device="cpu", install_dependencies=False, timeout=600)
    n = seg.GetSegmentation().GetNumberOfSegments()
    test.assertGreater(n, 0)
    first = seg.GetSegmentation().GetNthSegment(0)
    test.assertTrue(first.GetLabelValue() > 0)
    stats = logic.statistics(seg, volume)
    test.assertEqual(len(stats), n)
    test.assertTrue(all(s.volume_ml >= 0 for s in stats))

    # Uncertainty: the map on the input's grid with a colour node, scores on the segments, the jump.
    seg_u, unc, confidence = logic.segmentWithUncertainty(volume, "entropy", model=model, device="cpu",
                                                          install_dependencies=False, timeout=600)
    test.assertEqual(slicer.util.arrayFromVolume(unc).shape, slicer.util.arrayFromVolume(volume).shape)
    a, b = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    unc.GetIJKToRASMatrix(a)
    volume.GetIJKToRASMatrix(b)
    test.assertTrue(np.allclose(slicer.util.arrayFromVTKMatrix(a), slicer.util.arrayFromVTKMatrix(b)))
    test.assertIsNotNone(unc.GetDisplayNode().GetColorNode())
    values = slicer.util.arrayFromVolume(unc)
    test.assertTrue(0.0 <= values.min() and values.max() <= 1.0 and values.max() > 0.0)
    test.assertTrue(confidence)
    worst = min(confidence, key=lambda n: confidence[n]["soft_dice"])
    segment_id = logic.jumpToLeastConfidentSegment(seg_u, volume)
    test.assertEqual(seg_u.GetSegmentation().GetSegment(segment_id).GetName(), worst)
    stats = logic.statistics(seg_u, volume, unc)
    test.assertTrue(all(0.0 <= s.confidence <= 1.0 for s in stats if s.voxels))

    # Cancel halfway: the scene stays as it was.
    before = _node_ids()
    running = logic.segmentLogic.start(SegmentationRequest(volume, RunRequest(model=model, device="cpu")))
    while not any(e.kind == "progress" for e in running.poll()):
        slicer.app.processEvents()
        time.sleep(0.02)
    running.cancel()
    t0 = time.monotonic()
    while not running.done:
        running.poll()
        time.sleep(0.02)
    test.assertLess(time.monotonic() - t0, 3.0)
    try:
        logic.segmentLogic.finish(running)
        raise AssertionError("a cancelled run was imported")
    except CancelledError:
        pass
    test.assertEqual(_node_ids(), before)
