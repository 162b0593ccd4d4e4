"""The "MedSegAI Interactive" Segment Editor effect, driven as a user drives it: VTK mouse and key
events on slice views through the effect's processInteractionEvents, its options frame's buttons,
on the real example CT, with the real Logic, the worker that stays and the classical engine.

The Segment Editor, its effect adaptor and PythonQt are emulated (pythonqt_env/segment_editor.py);
the effect file Slicer loads, everything below it, the MRML nodes, Qt and the runs are real.
Geometry is checked against the runner's own session driven in voxel indices, with the expected
voxels worked out here from the slice node's XYToRAS (Slicer's own matrix), not by our code.
"""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import slicer
import vtk
from scipy import ndimage as ndi
from skimage.draw import polygon2mask

from conftest import add_volume, scene_snapshot
from medsegai import terminology
from medsegai.interactive import InteractiveSession
from medsegai.io.read import read_image
from medsegai.io.segments import segments_from_names
from real_data import total_label_names
from widget_fixtures import real_logic, slicer_app  # noqa: F401
from pythonqt_env.slicer_application import add_slice_views, process_events_until

from MedSegAILib.masking import OVERWRITE
from MedSegAILib.segmentation_bridge import write_segments
from MedSegAILib.volume_bridge import image_from_volume

SPLEEN, KIDNEY_RIGHT, LIVER = 1, 2, 5
REF = "ct/totalsegmentator-examples/tests/reference_files/"
EFFECT = "MedSegAI Interactive"


@pytest.fixture(scope="module")
def ct(data_dir):
    return read_image(data_dir / REF / "example_ct.nii.gz")


@pytest.fixture(scope="module")
def labels(data_dir, ct):
    ref = read_image(data_dir / REF / "example_seg_fast_force_split.nii.gz")
    assert ref.same_grid(ct)
    return ref.array


@pytest.fixture
def scene(mrml, ct, labels):
    """The CT, and a segmentation with the reference liver as a finished segment and two empty ones."""
    volume = add_volume(mrml.scene, ct.array, ct.ijk_to_ras())
    names = total_label_names()
    liver = np.where(labels == LIVER, LIVER, 0).astype(np.uint8)
    node = write_segments(mrml.scene, image_from_volume(volume).with_array(liver),
                          segments_from_names({LIVER: names[LIVER]}, terminology.lookup), reference_volume=volume,
                          node_name="Organs").node
    for name in ("new", "other"):
        node.GetSegmentation().AddEmptySegment(name, name)
    liver_id = node.GetSegmentation().GetSegmentIdBySegmentName("liver")
    return mrml.scene, volume, node, liver_id


@pytest.fixture
def editor(mrml, slicer_app, scene, tmp_path, worker_env):
    """The Segment Editor with the effect registered the way the module does it and made active."""
    import qt

    from MedSegAIGui import interactive_registration
    from pythonqt_env.segment_editor import SegmentEditorWidget

    qt.SLOT_ERRORS.clear()
    add_slice_views(mrml.scene)
    assert interactive_registration.register_effect(lambda: real_logic(mrml, tmp_path, worker_env))
    widget = SegmentEditorWidget(mrml.scene)
    _, volume, node, _ = scene
    widget.select(segmentation=node, volume=volume, segment_id="new")
    widget.setActiveEffectByName(EFFECT)
    tools = widget.active.self().tools
    select(tools.options.engine_selector, "classical")
    select(tools.options.device_selector, "cpu")
    yield widget
    widget.active.self().cleanup()
    interactive_registration.shutdown()
    assert not qt.SLOT_ERRORS, "exceptions in slots:\n" + "\n".join(qt.SLOT_ERRORS)


def select(combo, value) -> None:
    index = combo.findData(value)
    assert index >= 0, value
    combo.setCurrentIndex(index)


def tools_of(editor):
    return editor.active.self().tools


def settle(editor, timeout_s=120.0):
    """Let the event loop run until every prompt given so far has been applied."""
    controller = tools_of(editor).controller
    process_events_until(lambda: controller.idle, timeout_s, "the prompts to be applied")


def status(editor) -> str:
    return tools_of(editor).options.status_label.text


def mask(node, segment_id, volume):
    array = slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, volume)
    return np.zeros(slicer.util.arrayFromVolume(volume).shape, bool) if array is None else array > 0


def deepest(m):
    d = ndi.distance_transform_edt(m)
    return tuple(int(x) for x in np.unravel_index(np.argmax(d), d.shape))


def world(volume, ijk):
    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    return np.array(m.MultiplyPoint((*[float(c) for c in ijk], 1.0))[:3])


def continuous_ijk(volume, ras):
    m = vtk.vtkMatrix4x4()
    volume.GetRASToIJKMatrix(m)
    return np.array(m.MultiplyPoint((*[float(c) for c in ras], 1.0))[:3])


def pixel_ras(editor, view, xy):
    """Where Slicer's slice node puts a view pixel in the world."""
    return np.array(editor.views[view].mrmlSliceNode().GetXYToRAS().MultiplyPoint((xy[0], xy[1], 0.0, 1.0))[:3])


def runner(volume):
    s = InteractiveSession(engine="classical")
    s.set_image(image_from_volume(volume))
    return s


def set_overwrite(editor, mode: str) -> None:
    editor.node.SetOverwriteMode(getattr(slicer.vtkMRMLSegmentEditorNode, OVERWRITE[mode]))
    editor.select()


# -- registration ----------------------------------------------------------------------------------
def test_the_module_registers_the_effect_at_startup_with_help_icon_and_options(slicer_app, mrml):
    import MedSegAI
    import qt

    from types import SimpleNamespace

    from conftest import REPO

    MedSegAI.MedSegAI(SimpleNamespace(path=str(REPO / "MedSegAI" / "MedSegAI.py")))
    slicer_app.emit("startupCompleted()")
    registered = [e for e in slicer.qSlicerSegmentEditorEffectFactory.instance().registeredEffects() if e.name == EFFECT]
    assert len(registered) == 1
    effect = registered[0]
    assert effect.perSegment and effect.requireSegments
    assert effect.pythonSource().endswith("MedSegAI/MedSegAIEffect/SegmentEditorEffect.py")
    help_text = effect.self().helpText()
    for shortcut in ("<b>P</b>", "<b>B</b>", "<b>S</b>", "<b>L</b>", "<b>T</b>", "Ctrl+Z", "Ctrl+Y"):
        assert shortcut in help_text
    assert not effect.self().icon().isNull()
    # A second registration (the module reloaded) does not register a second effect.
    slicer_app.emit("startupCompleted()")
    assert len([e for e in slicer.qSlicerSegmentEditorEffectFactory.instance().registeredEffects()
                if e.name == EFFECT]) == 1
    assert isinstance(qt.QIcon(), qt.QIcon)


def test_tool_keys_and_buttons_and_the_licence_of_each_engine(editor):
    tools = tools_of(editor)
    o = tools.options
    assert tools.state.tool == "point" and tools.state.positive and o.tool_buttons["point"].checked
    for key, tool in (("b", "box"), ("s", "scribble"), ("l", "lasso"), ("p", "point")):
        assert editor.key("Red", key) is True
        assert tools.state.tool == tool and o.tool_buttons[tool].checked
    assert editor.key("Red", "t") and not tools.state.positive and o.polarity_button.text.startswith("-")
    o.polarity_button.click()
    assert tools.state.positive and o.polarity_button.text.startswith("+")
    o.tool_buttons["lasso"].click()
    assert tools.state.tool == "lasso"
    assert editor.key("Red", "x") is False  # not ours: Slicer's own keys keep working

    select(o.engine_selector, "nninteractive")
    assert "CC BY-NC-SA 4.0" in o.licence_label.text and o.model_edit.enabled
    o.model_edit.text = "/nonexistent/folder"
    tools.update_licence()
    assert "is not an nnInteractive model folder" in o.licence_label.text
    select(o.engine_selector, "classical")
    assert o.licence_label.text.startswith("Licence: Apache-2.0") and not o.model_edit.enabled
    select(o.engine_selector, "auto")
    assert "click model" in o.licence_label.text
    assert tools.options.engine_options() == {"engine": "auto", "model": None, "device": "cpu"}


# -- prompts on the slice views --------------------------------------------------------------------
def test_click_adds_shift_click_removes_and_ctrl_z_ctrl_y_replay_exactly(editor, scene, labels):
    _, volume, node, liver_id = scene
    set_overwrite(editor, "none")
    liver_before = mask(node, liver_id, volume)
    spleen = deepest(labels == SPLEEN)
    target = world(volume, spleen[::-1])
    editor.show("Red", target)
    xy = editor.xy("Red", target)
    assert editor.click("Red", xy) is True
    settle(editor)
    first = mask(node, "new", volume)
    assert first[spleen] and first.sum() > 20, status(editor)
    assert status(editor).startswith("Point +: +") and " s" in status(editor)
    assert editor.active.undo_states == 1  # Slicer's own undo can take the prompt back too

    editor.click("Red", xy, shift=True)  # Shift: the opposite sign
    settle(editor)
    second = mask(node, "new", volume)
    assert status(editor).startswith("Point -:") and second.sum() < first.sum() and not (second & ~first).any()

    assert editor.key("Red", "z", ctrl=True)
    settle(editor)
    np.testing.assert_array_equal(mask(node, "new", volume), first)
    editor.key("Red", "z", ctrl=True)
    settle(editor)
    assert not mask(node, "new", volume).any() and status(editor).startswith("Undo:")
    editor.key("Red", "y", ctrl=True)
    settle(editor)
    np.testing.assert_array_equal(mask(node, "new", volume), first)
    editor.key("Red", "z", ctrl=True, shift=True)  # Ctrl+Shift+Z is redo too
    settle(editor)
    np.testing.assert_array_equal(mask(node, "new", volume), second)
    np.testing.assert_array_equal(mask(node, liver_id, volume), liver_before)


def stroke_voxels(volume, segment, radius_mm, k):
    """The voxels of slice k whose centres lie within ``radius_mm`` of the world segment (the rule a
    round brush follows), computed from the geometry rather than by the code under test."""
    shape = slicer.util.arrayFromVolume(volume).shape
    jj, ii = np.meshgrid(np.arange(shape[1]), np.arange(shape[2]), indexing="ij")
    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    ijk_to_ras = slicer.util.arrayFromVTKMatrix(m)
    centres = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k), np.ones(ii.size)])
    ras = (ijk_to_ras @ centres)[:3].T
    a, b = (np.asarray(p, float) for p in segment)
    t = np.clip((ras - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
    dist = np.linalg.norm(ras - (a + t[:, None] * (b - a)), axis=1).reshape(ii.shape)
    out = np.zeros(shape, bool)
    out[k] = dist <= radius_mm
    return out


def test_a_brush_paints_every_voxel_centre_within_its_radius_and_no_other(scene):
    from MedSegAILib.errors import InputError
    from MedSegAILib.slice_prompts import stroke_array

    _, volume, _, _ = scene
    nk, nj, ni = slicer.util.arrayFromVolume(volume).shape
    k = nk // 2
    a, b = world(volume, (ni * 0.4 + 0.3, nj * 0.5, k)), world(volume, (ni * 0.6, nj * 0.55 + 0.6, k))
    axial = np.eye(4)  # the slice plane: R and A
    for radius in (0.9, 2.5, 6.0):
        crop, offset = stroke_array(volume, [a, b], 2 * radius, axial)
        got = np.zeros(slicer.util.arrayFromVolume(volume).shape, bool)
        got[tuple(slice(o, o + n) for o, n in zip(offset, crop.shape))] = crop > 0
        inner, outer = (stroke_voxels(volume, (a, b), r, k) for r in (radius - 0.2, radius + 0.2))
        assert not (inner & ~got).any(), radius  # every centre well inside the brush is painted
        assert not (got & ~outer).any(), radius  # and nothing well outside it
    with pytest.raises(InputError, match="brush width"):
        stroke_array(volume, [a, b], -1.0, axial)
    with pytest.raises(InputError, match="slice's orientation"):
        stroke_array(volume, [a, b], 3.0)


def test_box_scribble_and_lasso_land_on_the_voxels_drawn(editor, scene, labels):
    _, volume, node, _ = scene
    set_overwrite(editor, "none")
    direct = runner(volume)
    k, j, i = deepest(labels == SPLEEN)
    editor.show("Red", world(volume, (i, j, k)))

    def xy_of(ci, cj):
        return editor.xy("Red", world(volume, (ci, cj, k)))

    # Box: drag between two corners; the voxels whose centres lie inside, on slice k.
    editor.key("Red", "b")
    path = [xy_of(i - 6.3, j - 5.3), xy_of(i + 1.2, j + 0.4), xy_of(i + 6.3, j + 4.3)]
    editor.drag("Red", path)
    settle(editor)
    ijk = np.array([continuous_ijk(volume, pixel_ras(editor, "Red", xy)) for xy in (path[0], path[-1])])
    lo, hi = np.ceil(ijk.min(axis=0)).astype(int), np.floor(ijk.max(axis=0)).astype(int) + 1
    box = ((k, k + 1), (lo[1], hi[1]), (lo[0], hi[0]))
    assert box[1] == (j - 5, j + 5) and box[2] == (i - 6, i + 7)
    direct.add_box(box)
    np.testing.assert_array_equal(mask(node, "new", volume), direct.mask > 0, err_msg=status(editor))
    assert status(editor).startswith("Box +")

    # Scribble with Shift (negative): a stroke along one row of voxels, through their centres.
    editor.key("Red", "s")
    tools_of(editor).options.brush_width.value = 0.0  # a one-voxel line
    editor.drag("Red", [xy_of(i - 3, j), xy_of(i, j), xy_of(i + 3, j)], shift=True)
    settle(editor)
    stroke = np.zeros(direct.mask.shape, np.uint8)
    stroke[k, j, i - 3:i + 4] = 1
    direct.add_scribble(stroke, False)
    np.testing.assert_array_equal(mask(node, "new", volume), direct.mask > 0, err_msg=status(editor))
    assert status(editor).startswith("Scribble -")

    # A brush 4.4 voxels wide: the voxel centres on slice k within 2.2 voxels of the stroke.
    radius = 2.2 * min(volume.GetSpacing())
    tools_of(editor).options.brush_width.value = round(2 * radius, 1)
    editor.drag("Red", [xy_of(i - 2, j + 2), xy_of(i + 2, j + 2)])
    settle(editor)
    painted = stroke_voxels(volume, [world(volume, (i - 2, j + 2, k)), world(volume, (i + 2, j + 2, k))],
                            round(2 * radius, 1) / 2, k)
    assert painted.sum() > 2 * 5  # wider than the 5-voxel line
    direct.add_scribble(painted.astype(np.uint8), True)
    np.testing.assert_array_equal(mask(node, "new", volume), direct.mask > 0, err_msg=status(editor))

    # Lasso: a closed outline (vertices off the voxel centres), filled on slice k.
    editor.key("Red", "l")
    poly = [(i - 5.3, j - 4.4), (i + 4.4, j - 6.3), (i + 6.3, j + 3.6), (i - 2.6, j + 5.7)]
    path = [xy_of(pi, pj) for pi, pj in poly]
    editor.drag("Red", path)
    settle(editor)
    drawn = np.array([continuous_ijk(volume, pixel_ras(editor, "Red", xy))[:2] for xy in path])
    filled = np.zeros(direct.mask.shape, np.uint8)
    filled[k] = polygon2mask(filled.shape[::-1][:2], drawn).T
    direct.add_lasso(filled, True)
    np.testing.assert_array_equal(mask(node, "new", volume), direct.mask > 0, err_msg=status(editor))
    assert status(editor).startswith("Lasso +")
    assert not editor.active.actors.get(editor.views["Red"])  # the outline is gone once it was sent

    # A 3D box from a markups ROI chosen in the options.
    roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "kidney box")
    kk, kj, ki = deepest(labels == KIDNEY_RIGHT)
    roi.SetCenter(*world(volume, (ki, kj, kk)))
    roi.SetSize(20.0, 20.0, 20.0)
    tools = tools_of(editor)
    tools.options.roi_selector.setCurrentNode(roi)
    before = mask(node, "new", volume)
    tools.options.roi_button.click()
    settle(editor)
    after = mask(node, "new", volume)
    assert after[kk, kj, ki] and (after & ~before).any() and status(editor).startswith("ROI box +")


def test_other_segments_follow_the_masking_settings_and_each_segment_keeps_its_history(editor, scene, labels):
    _, volume, node, liver_id = scene
    tools = tools_of(editor)
    liver = mask(node, liver_id, volume)
    k, j, i = deepest(labels == LIVER)
    editor.show("Red", world(volume, (i, j, k)))
    editor.key("Red", "s")
    stroke = [editor.xy("Red", world(volume, (i + d, j, k))) for d in (-4, 0, 4)]

    set_overwrite(editor, "none")
    assert "other segments keep all their voxels" in tools.options.masking_label.text
    editor.drag("Red", stroke)
    settle(editor)
    new_after = mask(node, "new", volume)
    assert (new_after & liver).any(), status(editor)  # the prompt reached into the liver ...
    np.testing.assert_array_equal(mask(node, liver_id, volume), liver)  # ... which kept every voxel

    # Another segment, other prompts: "other" takes voxels from the liver under "overwrite all".
    set_overwrite(editor, "all")
    editor.select(segment_id="other")
    assert "'other'" in tools.options.masking_label.text and "any other segment gives up" in \
        tools.options.masking_label.text
    editor.drag("Red", stroke)
    settle(editor)
    other_after = mask(node, "other", volume)
    assert other_after.any() and "other segments gave up" in status(editor)
    assert (mask(node, liver_id, volume) == liver & ~other_after).all()
    assert not (mask(node, "new", volume) & other_after).any()  # overwritten where "other" took them

    # Back to "new": its history is its own; Ctrl+Z there does not touch "other"'s prompt.
    editor.select(segment_id="new")
    editor.key("Red", "z", ctrl=True)
    settle(editor)
    assert not mask(node, "new", volume).any()
    np.testing.assert_array_equal(mask(node, "other", volume), other_after)
    editor.select(segment_id="other")
    editor.key("Red", "z", ctrl=True)
    settle(editor)
    assert not mask(node, "other", volume).any()
    np.testing.assert_array_equal(mask(node, liver_id, volume), liver)  # every voxel it gave up is back

    # The finished liver itself: the session starts from its voxels, a negative click removes some.
    editor.select(segment_id=liver_id)
    editor.key("Red", "p")
    editor.click("Red", editor.xy("Red", world(volume, (i, j, k))), shift=True)
    settle(editor)
    now = mask(node, liver_id, volume)
    assert now.sum() < liver.sum() and not (now & ~liver).any(), status(editor)


def test_prompts_given_while_one_computes_queue_and_the_gui_keeps_running(editor, scene, labels):
    _, volume, node, _ = scene
    set_overwrite(editor, "none")
    spleen, kidney = deepest(labels == SPLEEN), deepest(labels == KIDNEY_RIGHT)
    for voxel in (spleen, kidney):
        target = world(volume, voxel[::-1])
        editor.show("Red", target)
        editor.click("Red", editor.xy("Red", target))
    editor.key("Red", "z", ctrl=True)  # queued behind both clicks: it undoes the second
    controller = tools_of(editor).controller
    assert not controller.idle
    worst, last, deadline = 0.0, time.monotonic(), time.monotonic() + 120
    while not controller.idle:
        assert time.monotonic() < deadline
        slicer.app.processEvents()
        now = time.monotonic()
        worst, last = max(worst, now - last), now
        time.sleep(0.005)
        last = time.monotonic()
    result = mask(node, "new", volume)
    assert result[spleen] and not result[kidney]
    assert worst < 0.5, f"the GUI thread was held {worst:.2f} s at once"


# -- bad input, a killed worker ----------------------------------------------------------------------
def test_bad_prompts_and_a_killed_worker_are_one_line_messages_and_change_nothing(editor, scene, labels):
    scene_, volume, node, _ = scene
    set_overwrite(editor, "none")
    tools = tools_of(editor)
    spleen = deepest(labels == SPLEEN)
    inside = world(volume, spleen[::-1])
    editor.show("Red", inside)
    editor.click("Red", editor.xy("Red", inside))
    settle(editor)
    snapshot = scene_snapshot(scene_)

    def expect(words):
        settle(editor)
        text = status(editor)
        assert words in text and "\n" not in text, text
        assert tools.options.status_label.styleSheet  # shown as an error
        assert scene_snapshot(scene_) == snapshot, words

    far = inside + np.array([0.0, 0.0, 500.0])  # a slice far above the volume
    editor.show("Red", far)
    editor.click("Red", editor.xy("Red", far))
    expect("is outside 'CT'")
    editor.key("Red", "l")
    editor.drag("Red", [editor.xy("Red", far), editor.xy("Red", far + [30, 0, 0]), editor.xy("Red", far + [0, 30, 0])])
    expect("The lasso is outside")
    editor.show("Red", inside)
    editor.key("Red", "b")
    xy = editor.xy("Red", inside)
    editor.drag("Red", [xy, (xy[0] + 1, xy[1] + 1)])
    expect("too small, nothing was sent")
    tools.options.text_edit.text = "   "
    tools.options.text_button.click()
    expect("Type the name of a structure")
    tools.options.roi_button.click()
    expect("choose a markups ROI")
    editor.select(segment_id="")
    editor.key("Red", "p")
    editor.click("Red", xy)
    expect("Select a segment to edit")
    editor.select(segment_id="new")

    worker = tools.controller._logic().segment_logic.worker
    os.kill(worker.pid, signal.SIGKILL)
    while worker.running:
        time.sleep(0.01)
    editor.click("Red", xy)
    expect("stopped unexpectedly")
    editor.click("Red", xy)  # the next prompt starts a new session in a new worker
    settle(editor)
    assert status(editor).startswith("Point +"), status(editor)
    assert not tools.options.status_label.styleSheet


def test_a_structure_name_then_a_click_then_undo(editor, scene, labels):
    _, volume, node, _ = scene
    set_overwrite(editor, "none")
    tools = tools_of(editor)
    tools.options.text_edit.text = "liver"
    tools.options.text_button.click()
    settle(editor, timeout_s=600)
    liver = mask(node, "new", volume)
    truth = labels == LIVER
    assert 2 * (liver & truth).sum() / (liver.sum() + truth.sum()) > 0.7, status(editor)
    assert status(editor).startswith("Name 'liver': +") and "liver" in status(editor)
    k, j, i = deepest(truth)
    editor.show("Red", world(volume, (i, j, k)))
    editor.click("Red", editor.xy("Red", world(volume, (i, j, k))), shift=True)
    settle(editor)
    assert mask(node, "new", volume).sum() < liver.sum()
    tools.options.undo_button.click()
    settle(editor)
    np.testing.assert_array_equal(mask(node, "new", volume), liver)
    tools.options.redo_button.click()
    settle(editor)
    assert mask(node, "new", volume).sum() < liver.sum()


def test_a_node_removed_while_a_prompt_computes_ends_it_with_a_message(editor, scene, labels, mrml):
    _, volume, node, _ = scene
    set_overwrite(editor, "none")
    target = world(volume, deepest(labels == SPLEEN)[::-1])
    editor.show("Red", target)
    xy = editor.xy("Red", target)
    editor.click("Red", xy)
    settle(editor)  # the worker is running and holds the session
    worker = tools_of(editor).controller._logic().segment_logic.worker
    os.kill(worker.pid, signal.SIGSTOP)  # the next prompt stays "computing"
    try:
        editor.click("Red", xy, shift=True)
        assert not tools_of(editor).controller.idle
        mrml.scene.RemoveNode(node)
        settle(editor, timeout_s=10)
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    assert "the session ended" in status(editor) and "\n" not in status(editor)


def test_another_volume_gets_its_image_sent_once_and_its_own_history(editor, scene, labels, ct, mrml):
    from geometry_cases import GEOMETRIES

    _, volume, node, _ = scene
    set_overwrite(editor, "none")
    second = add_volume(mrml.scene, ct.array, GEOMETRIES["lps"], name="CT LPS")
    seg2 = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Seg LPS")
    seg2.CreateDefaultDisplayNodes()
    seg2.SetReferenceImageGeometryParameterFromVolumeNode(second)
    seg2.GetSegmentation().AddEmptySegment("a", "a")
    spleen = deepest(labels == SPLEEN)

    def click_spleen(vol):
        target = world(vol, spleen[::-1])
        editor.show("Red", target)
        editor.click("Red", editor.xy("Red", target))
        settle(editor)

    click_spleen(volume)
    first = mask(node, "new", volume)
    editor.select(segmentation=seg2, volume=second, segment_id="a")
    click_spleen(second)
    on_second = mask(seg2, "a", second)
    assert on_second[spleen] and first[spleen], status(editor)
    click_spleen(second)  # a second prompt on the same volume: its image is not written again
    assert tools_of(editor).controller._logic().images_written == 2
    on_second = mask(seg2, "a", second)

    editor.select(segmentation=node, volume=volume, segment_id="new")
    editor.key("Red", "z", ctrl=True)
    settle(editor)
    assert not mask(node, "new", volume).any()
    np.testing.assert_array_equal(mask(seg2, "a", second), on_second)
    editor.select(segmentation=seg2, volume=second, segment_id="a")
    editor.key("Red", "z", ctrl=True)
    editor.key("Red", "z", ctrl=True)
    settle(editor)
    assert not mask(seg2, "a", second).any()
    np.testing.assert_array_equal(mask(node, "new", volume), np.zeros_like(first))


def test_a_scribble_crop_outside_the_volume_is_refused_with_one_line(editor, scene):
    from MedSegAILib.errors import InputError

    scene_, volume, node, _ = scene
    session = tools_of(editor).controller.session()
    snapshot = scene_snapshot(scene_)
    for crop, offset in ((np.ones((2, 2, 2), np.uint8), (0, 0, 121)), (np.ones((2, 2), np.uint8), (0, 0, 0)),
                         (np.ones((1, 1, 1), np.uint8), (-1, 0, 0))):
        with pytest.raises(InputError, match="must lie inside the volume") as err:
            session.addScribble((crop, offset))
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="no voxel inside"):
        session.addScribble((np.zeros((2, 2, 2), np.uint8), (0, 0, 0)))
    assert scene_snapshot(scene_) == snapshot


def test_clicks_run_on_the_server_the_panel_chose_and_follow_it_back(editor, scene, labels, tmp_path_factory):
    """'Run on: server' chosen in the panel: the effect's prompts go to that server (the same voxels as
    the runner's session in-process); the panel going back to this computer moves the next prompt here."""
    import qt
    import requests

    from MedSegAIGui import interactive_registration
    from MedSegAILib.remote_job import RemoteSettings
    from server_support import TOKEN, Server

    _, volume, node, _ = scene
    set_overwrite(editor, "none")
    srv = Server(tmp_path_factory.mktemp("srv"), "--interactive-engine", "classical").wait_ready()
    settings = qt.QSettings()
    try:
        chosen = RemoteSettings(srv.url, TOKEN)
        chosen.save(settings, run_on_server=True)  # what the panel does, then it tells the effect:
        interactive_registration.follow_remote(chosen)
        spleen = deepest(labels == SPLEEN)
        target = world(volume, spleen[::-1])
        editor.show("Red", target)
        xy = editor.xy("Red", target)
        editor.click("Red", xy)
        settle(editor)
        direct = runner(volume)
        direct.add_point(spleen)
        first = mask(node, "new", volume)
        np.testing.assert_array_equal(first, direct.mask > 0)
        info = requests.get(srv.url + "/v1/info", headers=srv.auth, timeout=30).json()
        assert info["sessions"]["open"] == 1, status(editor)

        interactive_registration.follow_remote(None)
        editor.click("Red", xy, shift=True)  # on this computer's worker, from the segment as it is
        settle(editor)
        second = mask(node, "new", volume)
        assert status(editor).startswith("Point -:") and second.sum() < first.sum() and not (second & ~first).any()
        editor.key("Red", "z", ctrl=True)
        settle(editor)
        np.testing.assert_array_equal(mask(node, "new", volume), first)

        # Slicer started again with "server" stored: the effect's Logic is built to run there.
        interactive_registration.shutdown()
        assert interactive_registration.interactive_logic().segment_logic.remote == chosen
    finally:
        settings.remove("MedSegAI/Remote")
        settings.sync()
        srv.stop()
