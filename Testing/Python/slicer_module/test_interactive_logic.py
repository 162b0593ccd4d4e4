"""The interactive Logic on real MRML nodes, the real CT and real runs in the worker that stays.

Prompts are given in world coordinates and checked against ``InteractiveSession`` driven directly
in voxel indices on the same image (RAS, LPS and oblique volumes, a volume under a transform), so
the RAS -> voxel conversion is tested by the result, not by re-doing its arithmetic. Masking tests
use TotalSegmentator's reference organs as the "finished" segments. The classical engine is pinned
where a test is about bookkeeping; one test takes ``engine="auto"`` (the click model when it is
installed) and checks only what holds for any engine.
"""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import slicer
from scipy import ndimage as ndi
from skimage.draw import polygon2mask

from conftest import add_volume, scene_snapshot
from geometry_cases import GEOMETRIES
from medsegai import terminology
from medsegai.interactive import InteractiveSession
from medsegai.io.read import read_image
from medsegai.io.segments import segments_from_names
from medsegai.service import WorkerProcess
from real_data import total_label_names

from MedSegAILib.errors import InputError, SessionLostError
from MedSegAILib.interactive_logic import InteractiveLogic
from MedSegAILib.masking import EDITABLE, OVERWRITE
from MedSegAILib.prompt_geometry import VolumeFrame
from MedSegAILib.segment_regions import SegmentGrid
from MedSegAILib.segmentation_bridge import write_segments
from MedSegAILib.volume_bridge import image_from_volume

SPLEEN, KIDNEY_RIGHT, LIVER, STOMACH = 1, 2, 5, 6
ORGANS = {SPLEEN: "spleen", KIDNEY_RIGHT: "kidney_right", LIVER: "liver", STOMACH: "stomach"}
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def ct(data_dir):
    return read_image(data_dir / "ct/totalsegmentator-examples/tests/reference_files/example_ct.nii.gz")


@pytest.fixture(scope="module")
def labels(data_dir, ct):
    ref = read_image(data_dir / "ct/totalsegmentator-examples/tests/reference_files/"
                                "example_seg_fast_force_split.nii.gz")
    assert ref.same_grid(ct)
    return ref.array


@pytest.fixture(scope="module")
def worker():
    w = WorkerProcess(env=ENV)
    yield w
    w.shutdown()


@pytest.fixture
def logic(mrml, worker, tmp_path):
    core = InteractiveLogic(mrml.scene, lambda: worker, work_root=str(tmp_path))
    yield core
    core.shutdown()


def deepest(mask):
    d = ndi.distance_transform_edt(mask)
    return tuple(int(x) for x in np.unravel_index(np.argmax(d), d.shape))


def world(matrix, ijk):
    return (matrix @ np.append(np.asarray(ijk, float), 1.0))[:3]


def seg_mask(node, segment_id, volume):
    array = slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, volume)
    if array is None:
        return np.zeros(slicer.util.arrayFromVolume(volume).shape, bool)
    return array > 0


def all_masks(node, volume):
    seg = node.GetSegmentation()
    return {seg.GetNthSegmentID(n): seg_mask(node, seg.GetNthSegmentID(n), volume)
            for n in range(seg.GetNumberOfSegments())}


def empty_segmentation(scene, volume, name="Seg", segment="new"):
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    node.SetAndObserveTransformNodeID(volume.GetTransformNodeID())  # before the geometry, which it changes
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    node.GetSegmentation().AddEmptySegment(segment, segment)
    return node


def organs_segmentation(scene, volume, ct, labels):
    """The reference organs as finished segments (one shared layer, as MedSegAI writes them), plus 'new'."""
    names = total_label_names()
    infos = segments_from_names({v: names[v] for v in ORGANS}, terminology.lookup)
    kept = np.where(np.isin(labels, list(ORGANS)), labels, 0).astype(np.uint8)
    node = write_segments(scene, image_from_volume(volume).with_array(kept), infos, reference_volume=volume,
                          node_name="Organs").node
    node.GetSegmentation().AddEmptySegment("new", "new")
    return node


def runner(volume):
    """The runner's session driven in voxel indices on the image the Logic sends."""
    s = InteractiveSession(engine="classical")
    s.set_image(image_from_volume(volume))
    return s


def editor(scene, overwrite="none", editable="everywhere", mask_segment="", intensity=None, singleton=False):
    node = slicer.vtkMRMLSegmentEditorNode()
    if singleton:
        node.SetSingletonTag("SegmentEditor")
    node = scene.AddNode(node)
    node.SetOverwriteMode(getattr(slicer.vtkMRMLSegmentEditorNode, OVERWRITE[overwrite]))
    node.SetMaskMode(getattr(slicer.vtkMRMLSegmentationNode, EDITABLE[editable]))
    if mask_segment:
        node.SetMaskSegmentID(mask_segment)
    if intensity is not None:
        node.SetSourceVolumeIntensityMask(True)
        node.SetSourceVolumeIntensityMaskRange(*intensity)
    return node


# -- RAS in, voxels out: every prompt kind against the runner driven in voxel indices --------------
@pytest.fixture(params=sorted(GEOMETRIES) + ["oblique_under_transform"])
def placed(request, mrml, ct):
    """(volume node, its voxel -> world matrix) for each geometry; the last one under a linear transform."""
    name = request.param
    matrix = GEOMETRIES["oblique_anisotropic" if name == "oblique_under_transform" else name]
    volume = add_volume(mrml.scene, ct.array, matrix)
    to_world = np.eye(4)
    if name == "oblique_under_transform":
        from scipy.spatial.transform import Rotation

        to_world[:3, :3] = Rotation.from_euler("yz", [25.0, 40.0], degrees=True).as_matrix()
        to_world[:3, 3] = (40.0, -7.5, 12.25)
        transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(to_world))
        volume.SetAndObserveTransformNodeID(transform.GetID())
    return volume, to_world @ matrix


def test_point_box_lasso_and_scribble_land_on_the_same_voxels_as_in_voxel_indices(mrml, logic, labels, placed):
    volume, to_world = placed
    node = empty_segmentation(mrml.scene, volume)
    session = logic.interactiveSession(volume, node, "new", engine="classical")
    direct = runner(volume)
    k, j, i = deepest(labels == SPLEEN)

    # A click a little off the voxel centre (within half a voxel on every axis) is that voxel.
    change = session.addPoint(world(to_world, (i + 0.31, j - 0.42, k + 0.27)))
    direct.add_point((k, j, i))
    np.testing.assert_array_equal(seg_mask(node, "new", volume), direct.mask > 0)
    assert change.added == int(direct.mask.sum()) > 0 and change.kind == "point"

    # A box: an ROI along the voxel axes whose faces lie half a voxel outside the box's voxel centres.
    box = ((k - 6, k + 1), (j - 6, j + 5), (i - 8, i + 7))  # the spleen reaches the top slices
    roi = mrml.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "box")
    axes = to_world[:3, :3] / np.linalg.norm(to_world[:3, :3], axis=0)
    spacing = np.linalg.norm(to_world[:3, :3], axis=0)
    lo = np.array([box[2][0], box[1][0], box[0][0]]) - 0.5
    hi = np.array([box[2][1], box[1][1], box[0][1]]) - 0.5
    object_to_world = np.eye(4)
    object_to_world[:3, :3], object_to_world[:3, 3] = axes, world(to_world, (lo + hi) / 2)
    roi.SetAndObserveObjectToNodeMatrix(slicer.util.vtkMatrixFromArray(object_to_world))
    roi.SetSize(*((hi - lo) * spacing))
    assert VolumeFrame(volume).box(roi) == box
    session.addBox(roi)
    direct.add_box(box)
    np.testing.assert_array_equal(seg_mask(node, "new", volume), direct.mask > 0)

    # A flat ROI (drawn on one slice) is a 2D box on that slice.
    roi.SetSize(*(((hi - lo) * spacing) * [1, 1, 0]))
    flat = VolumeFrame(volume).box(roi)
    assert flat[0][1] - flat[0][0] == 1 and flat[1:] == box[1:]

    # A lasso on slice k; vertices at odd offsets, so that no voxel centre lies on an edge (where
    # rounding, not the rule, would decide).
    poly_ij = np.array([(i - 6.3, j - 4.6), (i + 5.4, j - 6.7), (i + 7.6, j + 4.35), (i - 3.45, j + 6.55)])
    filled = np.zeros(direct.mask.shape, np.uint8)
    filled[k] = polygon2mask(filled.shape[::-1][:2], poly_ij).T
    points = [world(to_world, (pi, pj, k)) for pi, pj in poly_ij]
    crop, offset = VolumeFrame(volume).lasso(points)
    placed_crop = np.zeros_like(filled)
    placed_crop[tuple(slice(o, o + n) for o, n in zip(offset, crop.shape))] = crop
    np.testing.assert_array_equal(placed_crop, filled)
    curve = mrml.scene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", "lasso")
    slicer.util.updateMarkupsControlPointsFromArray(curve, np.array(points), world=True)
    curve_crop, curve_offset = VolumeFrame(volume).lasso(curve)
    assert curve_offset == offset and np.array_equal(curve_crop, crop)
    session.addLasso(points, positive=False)
    direct.add_lasso(filled, False)
    np.testing.assert_array_equal(seg_mask(node, "new", volume), direct.mask > 0)

    # A scribble as a label map node on the volume's grid, and as an array.
    stroke = np.zeros(direct.mask.shape, np.uint8)
    stroke[k - 2, j - 3:j + 3, i - 10] = 1
    strokes = add_volume(mrml.scene, stroke, to_world if volume.GetParentTransformNode() is None else
                         GEOMETRIES["oblique_anisotropic"], name="strokes", label=True)
    strokes.SetAndObserveTransformNodeID(volume.GetTransformNodeID())
    session.addScribble(strokes)
    direct.add_scribble(stroke)
    np.testing.assert_array_equal(seg_mask(node, "new", volume), direct.mask > 0)
    session.addScribble(stroke, positive=False)
    direct.add_scribble(stroke, False)
    np.testing.assert_array_equal(seg_mask(node, "new", volume), direct.mask > 0)

    # Undo walks back the same way as the runner's own history.
    for _ in range(3):
        session.undo()
        direct.undo()
        np.testing.assert_array_equal(seg_mask(node, "new", volume), direct.mask > 0)


# -- masking: other segments under each overwrite setting and editable area ----------------------
@pytest.fixture
def organs(mrml, ct, labels):
    volume = add_volume(mrml.scene, ct.array, ct.ijk_to_ras())
    node = organs_segmentation(mrml.scene, volume, ct, labels)
    k, j, _ = deepest(labels == LIVER)
    edge = int(np.flatnonzero(labels[k, j] == LIVER)[0])
    stroke = np.zeros(ct.shape, np.uint8)  # across the liver's edge: half inside, half outside
    stroke[k, j, max(edge - 10, 0):edge + 10] = 1
    return volume, node, stroke


def _ids(node):
    seg = node.GetSegmentation()
    return {seg.GetSegment(seg.GetNthSegmentID(n)).GetName(): seg.GetNthSegmentID(n)
            for n in range(seg.GetNumberOfSegments())}


@pytest.mark.parametrize("overwrite", ["none", "visible", "all"])
def test_other_segments_follow_the_overwrite_setting_and_undo_gives_every_voxel_back(mrml, logic, organs,
                                                                                     overwrite):
    volume, node, stroke = organs
    ids = _ids(node)
    node.GetDisplayNode().SetSegmentVisibility(ids["liver"], False)
    settings = editor(mrml.scene, overwrite=overwrite)
    session = logic.interactiveSession(volume, node, "new", engine="classical", segmentEditorNode=settings)
    before = all_masks(node, volume)
    change = session.addScribble(stroke)
    after = all_masks(node, volume)
    gained = after["new"] & ~before["new"]
    assert gained.any() and (gained & before[ids["liver"]]).any(), "the prompt must reach into the liver"
    overwritten = {"none": set(), "visible": set(ids.values()) - {ids["liver"], "new"},
                   "all": set(ids.values()) - {"new"}}[overwrite]
    for segment_id in set(ids.values()) - {"new"}:
        expected = before[segment_id] & ~gained if segment_id in overwritten else before[segment_id]
        np.testing.assert_array_equal(after[segment_id], expected, err_msg=segment_id)
        assert change.others.get(segment_id, 0) == int((before[segment_id] & gained).sum()) * (
            segment_id in overwritten)
    assert change.added == int(gained.sum()) and change.refused == 0
    assert {"none": "keep all their voxels", "visible": "visible segments give up",
            "all": "any other segment gives up"}[overwrite] in session.maskingDescription

    session.undo()
    for segment_id, mask in all_masks(node, volume).items():
        np.testing.assert_array_equal(mask, before[segment_id], err_msg=segment_id)
    session.redo()
    for segment_id, mask in all_masks(node, volume).items():
        np.testing.assert_array_equal(mask, after[segment_id], err_msg=segment_id)
    session.flush()
    assert session._stamp is not None  # the worker's undo/redo gave the same voxels as the scene's


@pytest.mark.parametrize("editable", ["outside_all", "inside_segment", "inside_visible", "intensity"])
def test_the_editable_area_is_honoured_and_the_runner_keeps_what_was_kept(mrml, logic, organs, ct, editable):
    volume, node, stroke = organs
    ids = _ids(node)
    others = np.zeros(ct.shape, bool)
    before = all_masks(node, volume)
    for segment_id in set(ids.values()) - {"new"}:
        others |= before[segment_id]
    node.GetDisplayNode().SetSegmentVisibility(ids["stomach"], False)
    settings = {"outside_all": dict(editable="outside_all"),
                "inside_segment": dict(editable="inside_segment", mask_segment=ids["liver"]),
                "inside_visible": dict(editable="inside_visible"),
                "intensity": dict(intensity=(40.0, 200.0))}[editable]
    session = logic.interactiveSession(volume, node, "new", engine="classical",
                                       segmentEditorNode=editor(mrml.scene, overwrite="all", **settings))
    change = session.addScribble(stroke)
    after = all_masks(node, volume)
    gained = after["new"] & ~before["new"]
    assert gained.any() and change.refused > 0
    if editable == "outside_all":
        assert not (gained & others).any()
    elif editable == "inside_segment":
        assert not (gained & ~before[ids["liver"]]).any()
    elif editable == "inside_visible":
        visible = others & ~before[ids["stomach"]]
        assert not (gained & ~visible).any()
    else:
        values = ct.array[gained]
        assert values.min() >= 40 and values.max() <= 200
    # Redo after undo puts back what was kept, and the worker agrees (it was told what was refused).
    session.undo()
    session.redo()
    np.testing.assert_array_equal(seg_mask(node, "new", volume), after["new"])
    session.flush()
    assert session._stamp is not None


def test_without_segment_editor_settings_other_segments_are_protected(mrml, logic, organs):
    volume, node, stroke = organs
    before = all_masks(node, volume)
    session = logic.interactiveSession(volume, node, "new", engine="classical")
    assert "MedSegAI's default" in session.maskingDescription and "keep all their voxels" in \
        session.maskingDescription
    session.addScribble(stroke)
    after = all_masks(node, volume)
    for segment_id in set(before) - {"new"}:
        np.testing.assert_array_equal(after[segment_id], before[segment_id], err_msg=segment_id)
    assert (after["new"] & before[_ids(node)["liver"]]).any()  # overlap, not theft

    editor(mrml.scene, overwrite="all", singleton=True)  # the Segment Editor module's own node
    assert "(Settings: the Segment Editor.)" in session.maskingDescription
    session.undo()
    change = session.redo()
    assert change.others == {}  # redo writes what the prompt wrote, under the settings of its time
    change = session.addScribble(np.roll(stroke, 1, axis=1))
    assert change.others.get(_ids(node)["liver"], 0) > 0


def test_a_segment_with_voxels_starts_the_session_from_them(mrml, logic, organs, labels):
    volume, node, _ = organs
    liver = _ids(node)["liver"]
    before = seg_mask(node, liver, volume)
    session = logic.interactiveSession(volume, node, liver, engine="classical")
    change = session.addPoint(VolumeFrame(volume).world_of_voxel(deepest(labels == LIVER)), positive=False)
    after = seg_mask(node, liver, volume)
    # A negative click can only remove voxels the runner knows are there.
    assert change.removed > 0 and change.added == 0
    assert after.sum() > 0.8 * before.sum() and not (after & ~before).any()


def test_an_edit_made_elsewhere_reaches_the_runner_before_the_next_prompt(mrml, logic, ct, labels):
    volume = add_volume(mrml.scene, ct.array, ct.ijk_to_ras())
    node = empty_segmentation(mrml.scene, volume)
    session = logic.interactiveSession(volume, node, "new", engine="classical")
    session.addPoint(VolumeFrame(volume).world_of_voxel(deepest(labels == SPLEEN)))
    # The user paints a ball in the liver with another tool.
    k, j, i = deepest(labels == LIVER)
    ball = np.zeros((9, 9, 9), bool)
    ball[tuple(np.ogrid[-4:5, -4:5, -4:5])[0] ** 2 + np.ogrid[-4:5, -4:5, -4:5][1] ** 2
         + np.ogrid[-4:5, -4:5, -4:5][2] ** 2 <= 16] = True
    region = (slice(k - 4, k + 5), slice(j - 4, j + 5), slice(i - 4, i + 5))
    SegmentGrid(node, VolumeFrame(volume)).write("new", region, ball)
    change = session.addPoint(VolumeFrame(volume).world_of_voxel((k, j, i)), positive=False)
    assert change.removed > 0  # the runner knew the painted ball, so the negative click could take it away


def test_many_segments_and_volumes_keep_their_own_histories(mrml, logic, worker, ct, labels):
    first = add_volume(mrml.scene, ct.array, ct.ijk_to_ras(), name="CT")
    second = add_volume(mrml.scene, ct.array, GEOMETRIES["lps"], name="CT LPS")
    seg1 = empty_segmentation(mrml.scene, first, "Seg1", "a")
    seg1.GetSegmentation().AddEmptySegment("b", "b")
    seg2 = empty_segmentation(mrml.scene, second, "Seg2", "a")
    read_before = worker.request("ping").get("session_images_read")
    a1 = logic.interactiveSession(first, seg1, "a", engine="classical")
    b1 = logic.interactiveSession(first, seg1, "b", engine="classical")
    a2 = logic.interactiveSession(second, seg2, "a", engine="classical")
    frame1, frame2 = VolumeFrame(first), VolumeFrame(second)
    spleen, kidney = deepest(labels == SPLEEN), deepest(labels == KIDNEY_RIGHT)
    a1.addPoint(frame1.world_of_voxel(spleen))
    b1.addPoint(frame1.world_of_voxel(kidney))
    a2.addPoint(frame2.world_of_voxel(kidney))
    a_after_one = seg_mask(seg1, "a", first)
    a1.addPoint(frame1.world_of_voxel(kidney))
    b_now, a2_now = seg_mask(seg1, "b", first), seg_mask(seg2, "a", second)
    assert logic.interactiveSession(first, seg1, "a", engine="classical") is a1  # back to it: same history
    a1.undo()
    np.testing.assert_array_equal(seg_mask(seg1, "a", first), a_after_one)
    np.testing.assert_array_equal(seg_mask(seg1, "b", first), b_now)
    np.testing.assert_array_equal(seg_mask(seg2, "a", second), a2_now)
    assert a1.canUndo and a1.canRedo and b1.canUndo and not b1.canRedo
    b1.undo()
    assert not seg_mask(seg1, "b", first).any() and seg_mask(seg1, "a", first).any()
    # Each volume was written once and read once by the worker, whatever the number of segments.
    assert logic.images_written == 2
    ping = worker.request("ping").data
    assert ping["session_images_read"] - read_before == 2 and ping["session_images"] == 2
    assert len([s for s in ping["sessions"] if s.startswith("slicer-")]) >= 3

    # Removing a node ends its sessions; closing the scene ends all and frees the worker's memory.
    mrml.scene.RemoveNode(seg2)
    assert a2.closed and a2 not in logic.sessions
    mrml.scene.Clear(0)
    assert logic.sessions == [] and a1.closed and b1.closed
    deadline = time.monotonic() + 30
    while worker.request("ping").get("sessions"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert worker.request("ping").get("session_images") == 0


def test_structure_name_then_a_click_then_undo(mrml, logic, ct, labels):
    volume = add_volume(mrml.scene, ct.array, ct.ijk_to_ras())
    node = empty_segmentation(mrml.scene, volume)
    session = logic.interactiveSession(volume, node, "new", engine="classical")
    change = session.addText("liver")
    liver = seg_mask(node, "new", volume)
    truth = labels == LIVER
    dice = 2 * (liver & truth).sum() / (liver.sum() + truth.sum())
    assert dice > 0.7 and change.added == int(liver.sum()) and any("liver" in n for n in change.notes)
    session.addPoint(VolumeFrame(volume).world_of_voxel(deepest(truth)), positive=False)
    session.undo()
    np.testing.assert_array_equal(seg_mask(node, "new", volume), liver)
    session.undo()
    assert not seg_mask(node, "new", volume).any()


def test_engine_auto_edits_only_the_target_and_undo_is_exact(mrml, logic, organs, labels):
    volume, node, _ = organs
    before = all_masks(node, volume)
    session = logic.interactiveSession(volume, node, "new", engine="auto", device="cpu", threads=1)
    change = session.addPoint(VolumeFrame(volume).world_of_voxel(deepest(labels == SPLEEN)))
    assert session.engine in ("clicks", "classical") and change.added > 0
    after = all_masks(node, volume)
    for segment_id in set(before) - {"new"}:
        np.testing.assert_array_equal(after[segment_id], before[segment_id])
    session.undo()
    assert not seg_mask(node, "new", volume).any()


def test_changing_the_engine_keeps_the_history_and_undo_stays_exact(mrml, logic, ct, labels):
    volume = add_volume(mrml.scene, ct.array, ct.ijk_to_ras())
    node = empty_segmentation(mrml.scene, volume)
    frame = VolumeFrame(volume)
    first = logic.interactiveSession(volume, node, "new", engine="classical")
    first.addPoint(frame.world_of_voxel(deepest(labels == LIVER)))
    after_one = seg_mask(node, "new", volume)
    first.addPoint(frame.world_of_voxel(deepest(labels == SPLEEN)))
    after_two = seg_mask(node, "new", volume)
    assert after_one.any() and (after_two != after_one).any()
    # Another engine setting (here the thread count: the same cheap engine) is a new runner session.
    second = logic.interactiveSession(volume, node, "new", engine="classical", threads=1)
    assert second is not first and first.closed and second.canUndo
    assert logic.interactiveSession(volume, node, "new", engine="classical", threads=1) is second
    second.undo()  # a step of the old session: its voxels come back, the new runner is told them
    np.testing.assert_array_equal(seg_mask(node, "new", volume), after_one)
    second.redo()
    np.testing.assert_array_equal(seg_mask(node, "new", volume), after_two)
    second.undo()
    change = second.addPoint(frame.world_of_voxel(deepest(labels == SPLEEN)), positive=True)
    assert any("Engine changed" in n for n in change.notes)
    # The new runner started from the segment as it was after the undo, not from its own empty mask.
    assert (seg_mask(node, "new", volume) & after_one).sum() == after_one.sum()
    second.undo()
    np.testing.assert_array_equal(seg_mask(node, "new", volume), after_one)
    second.undo()
    assert not seg_mask(node, "new", volume).any() and not second.canUndo


# -- bad input: a message, the scene unchanged -------------------------------------------------------
def test_bad_input_is_a_message_and_the_scene_is_unchanged(mrml, logic, ct, labels):
    scene = mrml.scene
    volume = add_volume(scene, ct.array, GEOMETRIES["oblique_anisotropic"])
    node = empty_segmentation(scene, volume)
    session = logic.interactiveSession(volume, node, "new", engine="classical")
    session.addPoint(VolumeFrame(volume).world_of_voxel(deepest(labels == SPLEEN)))
    flat = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "flat")
    flat.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.eye(4)))
    slicer.util.updateVolumeFromArray(flat, ct.array[:1])
    vector = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "rgb")
    slicer.util.updateVolumeFromArray(vector, np.zeros((4, 5, 6, 3), np.uint8))
    label = add_volume(scene, labels, ct.ijk_to_ras(), name="labels", label=True)
    coarse = add_volume(scene, ct.array[::2, ::2, ::2], ct.ijk_to_ras() @ np.diag([2, 2, 2, 1.0]), name="coarse")
    other_grid = empty_segmentation(scene, coarse, "Coarse seg")
    far_roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "far")
    far_roi.SetCenter(5000, 5000, 5000)
    far_roi.SetSize(10, 10, 10)
    line_roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "line")  # along the k voxel axis
    along = np.eye(4)
    along[:3, :3] = GEOMETRIES["oblique_anisotropic"][:3, :3] / np.linalg.norm(
        GEOMETRIES["oblique_anisotropic"][:3, :3], axis=0)
    along[:3, 3] = VolumeFrame(volume).world_of_voxel(deepest(labels == SPLEEN))
    line_roi.SetAndObserveObjectToNodeMatrix(slicer.util.vtkMatrixFromArray(along))
    line_roi.SetSize(0, 0, 30)
    snapshot = scene_snapshot(scene)
    cases = [
        (lambda: session.addPoint((5000.0, 0.0, 0.0)), "is outside 'CT'"),
        (lambda: session.addBox(far_roi), "does not overlap"),
        (lambda: session.addBox(line_roi), "line or a voxel"),  # refused by the runner, said as it says it
        (lambda: session.addBox(label), "markups ROI"),
        (lambda: session.addLasso([(0, 0, 0), (1, 1, 1)]), "at least 3 points"),
        (lambda: session.addScribble(np.ones((3, 3, 3))), "volume's shape"),
        (lambda: session.addText(""), "name of a structure"),
        (lambda: logic.interactiveSession(flat, node, "new"), "is 2D"),
        (lambda: logic.interactiveSession(vector, node, "new"), "values per voxel"),
        (lambda: logic.interactiveSession(label, node, "new"), "is a label map"),
        (lambda: logic.interactiveSession(volume, node, None), "Select a segment"),
        (lambda: logic.interactiveSession(volume, node, "kidney"), "has no segment 'kidney'"),
        (lambda: logic.interactiveSession(volume, other_grid, "new"), "on another voxel grid"),
    ]
    for call, words in cases:
        with pytest.raises(InputError, match=words) as err:
            call()
            pytest.fail(f"no error for the case {words!r}")
        assert "\n" not in str(err.value)
        assert scene_snapshot(scene) == snapshot, words
    with pytest.raises(InputError, match="spacing 0.7, 1.3, 4 mm"):
        logic.interactiveSession(volume, other_grid, "new")
    assert session.addPoint(VolumeFrame(volume).world_of_voxel(deepest(labels == KIDNEY_RIGHT))).added > 0


def test_a_killed_worker_is_a_message_and_the_next_prompt_starts_a_new_session(mrml, ct, labels, tmp_path):
    w = WorkerProcess(env=ENV)
    logic = InteractiveLogic(mrml.scene, lambda: w, work_root=str(tmp_path))
    try:
        volume = add_volume(mrml.scene, ct.array, ct.ijk_to_ras())
        node = empty_segmentation(mrml.scene, volume)
        session = logic.interactiveSession(volume, node, "new", engine="classical")
        frame = VolumeFrame(volume)
        session.addPoint(frame.world_of_voxel(deepest(labels == SPLEEN)))
        first = seg_mask(node, "new", volume)
        os.kill(w.pid, signal.SIGKILL)
        while w.running:
            time.sleep(0.01)
        snapshot = scene_snapshot(mrml.scene)
        with pytest.raises(SessionLostError, match=r"stopped unexpectedly \(exit code -9\).*next prompt starts"):
            session.addPoint(frame.world_of_voxel(deepest(labels == KIDNEY_RIGHT)))
        assert scene_snapshot(mrml.scene) == snapshot
        session.addPoint(frame.world_of_voxel(deepest(labels == KIDNEY_RIGHT)))
        assert w.starts == 2 and (seg_mask(node, "new", volume) & first).sum() == first.sum()

        # Killed while a prompt is in flight: that prompt ends with the message, nothing changes.
        os.kill(w.pid, signal.SIGSTOP)
        edit = session.addPoint(frame.world_of_voxel(deepest(labels == LIVER)), wait=False)
        assert not edit.done
        os.kill(w.pid, signal.SIGKILL)
        snapshot = scene_snapshot(mrml.scene)
        with pytest.raises(SessionLostError, match="stopped unexpectedly"):
            edit.finish(timeout=30)
        assert scene_snapshot(mrml.scene) == snapshot
        # Undo works across both workers, exactly.
        session.undo()
        np.testing.assert_array_equal(seg_mask(node, "new", volume), first)
        session.undo()
        assert not seg_mask(node, "new", volume).any()
        session.redo()
        np.testing.assert_array_equal(seg_mask(node, "new", volume), first)
        assert session.addPoint(frame.world_of_voxel(deepest(labels == LIVER))).added > 0
        assert w.starts == 3
    finally:
        logic.shutdown()
        w.shutdown()


def test_a_reaped_session_and_a_changed_volume_reopen_without_the_user_noticing(mrml, ct, labels, tmp_path):
    w = WorkerProcess(env=ENV, session_idle_timeout_s=1.0)
    logic = InteractiveLogic(mrml.scene, lambda: w, work_root=str(tmp_path))
    try:
        volume = add_volume(mrml.scene, ct.array, ct.ijk_to_ras())
        node = empty_segmentation(mrml.scene, volume)
        session = logic.interactiveSession(volume, node, "new", engine="classical")
        frame = VolumeFrame(volume)
        session.addPoint(frame.world_of_voxel(deepest(labels == SPLEEN)))
        first = seg_mask(node, "new", volume)
        deadline = time.monotonic() + 30
        while w.request("ping").get("sessions"):  # the worker closed it for being idle
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert session.addPoint(frame.world_of_voxel(deepest(labels == KIDNEY_RIGHT))).added > 0
        assert (seg_mask(node, "new", volume) & first).sum() == first.sum() and w.starts == 1
        # The volume's voxels change (a filter ran on it): the new image is sent once, the segment kept.
        slicer.util.updateVolumeFromArray(volume, (ct.array // 2).astype(ct.array.dtype))
        written = logic.images_written
        now = seg_mask(node, "new", volume)
        session.addPoint(frame.world_of_voxel(deepest(labels == LIVER)))
        session.addPoint(frame.world_of_voxel(deepest(labels == STOMACH)))
        assert logic.images_written == written + 1
        assert (seg_mask(node, "new", volume) & now).sum() == now.sum()
        for _ in range(4):
            session.undo()
        assert not seg_mask(node, "new", volume).any()
    finally:
        logic.shutdown()
        w.shutdown()


def test_what_one_session_overwrites_reaches_the_other_sessions_runner(mrml, logic, organs):
    volume, node, stroke = organs
    liver = _ids(node)["liver"]
    liver_session = logic.interactiveSession(volume, node, liver, engine="classical")
    liver_session.addScribble(stroke)  # opened, in step with the liver as it is
    liver_session.flush()
    new = logic.interactiveSession(volume, node, "new", engine="classical",
                                   segmentEditorNode=editor(mrml.scene, overwrite="all"))
    change = new.addScribble(np.roll(stroke, 3, axis=1))
    assert change.others.get(liver, 0) > 0
    assert liver_session._external is not None  # queued for the liver's runner ...
    liver_session.addPoint(VolumeFrame(volume).world_of_voxel(tuple(int(c) for c in np.argwhere(stroke)[0])),
                           positive=False)
    liver_session.flush()
    assert liver_session._external is None and liver_session._stamp is not None  # ... and sent, accepted
    assert liver_session.runner.problem is None


def test_the_gui_side_needs_neither_scipy_nor_scikit_image(data_dir, tmp_path):
    """Slicer's GUI process may lack SciPy and scikit-image (the worker has them): a whole prompt,
    undo included, runs on the GUI side without them."""
    import subprocess
    import sys

    from conftest import REPO

    ct_path = data_dir / "ct/totalsegmentator-examples/tests/reference_files/example_ct.nii.gz"
    script = f"""
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {{"scipy", "skimage", "torch"}}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, Absent())
sys.path[:0] = [{str(REPO / "MedSegAI")!r}, {str(REPO / "MedSegAIInference")!r},
                {str(REPO / "Testing/Python/slicer_module")!r}]
import numpy as np, slicer, SimpleITK as sitk
from mrml_scene import make_scene
from medsegai.service import WorkerProcess
from MedSegAILib.interactive_logic import InteractiveLogic
from MedSegAILib.prompt_geometry import VolumeFrame
ct = sitk.GetArrayFromImage(sitk.ReadImage({str(ct_path)!r}))
scene = make_scene().scene
volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
slicer.util.updateVolumeFromArray(volume, ct)
seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Seg")
seg.CreateDefaultDisplayNodes()
seg.GetSegmentation().AddEmptySegment("new", "new")
w = WorkerProcess(env={{"OMP_NUM_THREADS": "1", "PYTHONPATH": ""}})
logic = InteractiveLogic(scene, lambda: w, work_root={str(tmp_path)!r})
session = logic.interactiveSession(volume, seg, "new", engine="classical")
change = session.addPoint(VolumeFrame(volume).world_of_voxel((60, 50, 60)))
assert change.added > 0, change
session.undo()
logic.shutdown(); w.shutdown()
assert "scipy" not in sys.modules and "skimage" not in sys.modules
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
