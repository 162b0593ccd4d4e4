"""The module's GUI panel: the real widget class and .ui file on real Qt widgets over a real MRML
scene, driven as a user would (clicks, typing, dialogs answered), with real runs of the bundled
model in the worker process. PythonQt and the Slicer application are emulated over PySide6
(pythonqt_env); everything from the widget down is the shipped code."""
from __future__ import annotations

import csv
import time
from types import SimpleNamespace

import numpy as np
import pytest
import slicer

import medsegai
from medsegai.service import WorkerEvent
from conftest import add_volume, scene_snapshot
from models_support.fixtures import model_env, server  # noqa: F401 (pytest fixtures)
from models_support.served_model import served_model  # noqa: F401 (pytest fixture)
from widget_fixtures import (close_panel, longest_event_loop_gap, module_widget, open_panel, run_panel,  # noqa: F401
                             select_data, select_model, slicer_app, wait_for_run)
from pythonqt_env.slicer_application import process_events_until

from medsegai.run_request import MODES, PRECISIONS
from MedSegAILib.statistics import COLUMNS
from MedSegAILib.volume_bridge import image_from_volume

DEMO = "model:medsegai_ct_demo"
CT = "ct/totalsegmentator-examples/tests/reference_files/example_ct_sm.nii.gz"


@pytest.fixture
def ct_volume(mrml, data_dir):
    """The example CT loaded through slicer.util.loadVolume (the Volumes module's reader)."""
    return slicer.util.loadVolume(str(data_dir / CT))


def _tree_items(ui):
    tree = ui.structureTree
    return [(tree.topLevelItem(g).text(0), tree.topLevelItem(g).child(c))
            for g in range(tree.topLevelItemCount) for c in range(tree.topLevelItem(g).childCount())]


def _visible_names(ui):
    return [item.text(0) for group, item in _tree_items(ui) if not item.isHidden()]


def test_panel_lists_catalogue_models_with_licence_qualities_and_grouped_structures(module_widget):
    ui = module_widget.ui
    keys = [ui.modelSelector.itemData(i) for i in range(ui.modelSelector.count)]
    # It opens on TotalSegmentator; the bundled model comes last and says what it is.
    assert keys[0] == "task:total" and ui.modelSelector.currentData == "task:total"
    assert keys[-1] == DEMO
    demo_title = ui.modelSelector.itemText(keys.index(DEMO))
    assert "small demonstration model" in demo_title and "offline" in demo_title
    assert ui.licenseLabel.text.startswith("Licence: Apache-2.0")
    assert [ui.qualitySelector.itemText(i) for i in range(ui.qualitySelector.count)] == ["normal", "fast", "fastest"]
    groups = {g for g, _ in _tree_items(ui)}
    assert {"Organs", "Vertebrae", "Ribs and sternum", "Muscles", "Heart and vessels"} <= groups
    assert len(_tree_items(ui)) == 117 and ui.structureCountLabel.text == "117 of 117"
    assert [ui.deviceSelector.itemData(i) for i in range(ui.deviceSelector.count)] == ["auto", "cuda", "cpu"]
    methods = [ui.uncertaintyMethodSelector.itemData(i) for i in range(ui.uncertaintyMethodSelector.count)]
    assert methods == ["", "entropy", "tta", "mcdropout", "ensemble"]
    assert [ui.precisionSelector.itemData(i) for i in range(ui.precisionSelector.count)] == list(PRECISIONS)
    assert [ui.modeSelector.itemData(i) for i in range(ui.modeSelector.count)] == list(MODES)
    assert ui.tileStepSpinBox.value == 0 and ui.tileStepSpinBox.text == "Model default" and ui.foldsLineEdit.text == ""
    assert not ui.resultWarningLabel.visible

    select_model(module_widget, DEMO)
    assert [ui.qualitySelector.itemText(i) for i in range(ui.qualitySelector.count)] == ["normal"]
    assert len(_tree_items(ui)) == 43 and ui.structureCountLabel.text == "43 of 43"
    assert ui.licenseLabel.text.startswith("Licence:")


def test_structure_search_ticks_only_what_it_shows_and_sets_the_subset(module_widget):
    ui, structures = module_widget.ui, module_widget.panel.options.structures
    assert structures.selected_subset() is None  # everything ticked: the whole model runs
    ui.structureSearchBox.setText("kidney")
    shown = _visible_names(ui)
    assert shown and all("kidney" in n for n in shown)
    ui.clearStructuresButton.click()
    ui.structureSearchBox.setText("")
    assert len(_visible_names(ui)) == 117
    subset = structures.selected_subset()
    assert len(subset) == 117 - len(shown) and not set(shown) & set(subset)
    assert ui.structureCountLabel.text == f"{117 - len(shown)} of 117"
    ui.structureSearchBox.setText("vertebrae L")  # a space matches an underscore
    assert set(_visible_names(ui)) == {f"vertebrae_L{i}" for i in range(1, 6)}
    ui.structureSearchBox.setText("")
    ui.selectAllStructuresButton.click()
    assert structures.selected_subset() is None


def test_cpu_warning_for_a_full_resolution_run_of_a_large_ct(module_widget, mrml):
    ui = module_widget.ui
    add_volume(mrml.scene, np.zeros((300, 512, 512), np.int16), np.diag([0.8, 0.8, 1.5, 1.0]), name="big CT")
    select_data(ui.deviceSelector, "cpu")
    ui.qualitySelector.setCurrentIndex(ui.qualitySelector.findText("normal"))
    assert "many minutes" in ui.deviceWarningLabel.text
    ui.qualitySelector.setCurrentIndex(ui.qualitySelector.findText("fast"))
    assert ui.deviceWarningLabel.text == ""


def test_apply_waits_for_an_input_volume_and_never_offers_a_label_map(module_widget, mrml):
    ui = module_widget.ui
    assert ui.inputVolumeSelector.currentNode() is None
    assert not ui.applyButton.enabled and "input volume" in ui.applyButton.toolTip
    labels = add_volume(mrml.scene, np.zeros((4, 8, 8), np.uint8), np.eye(4), name="labels", label=True)
    assert labels not in ui.inputVolumeSelector.nodes()
    assert not ui.applyButton.enabled
    ct = add_volume(mrml.scene, np.zeros((4, 8, 8), np.int16), np.eye(4), name="CT")
    assert ui.inputVolumeSelector.currentNode() is ct and ui.applyButton.enabled


def test_a_2d_volume_is_refused_with_a_message_and_the_scene_unchanged(module_widget, mrml):
    import qt

    ui = module_widget.ui
    add_volume(mrml.scene, np.zeros((1, 64, 64), np.int16), np.eye(4), name="slice")
    select_model(module_widget, DEMO)
    before = scene_snapshot(mrml.scene)
    module_widget.robot.answer(qt.QMessageBox.Ok)
    ui.applyButton.click()
    process_events_until(lambda: module_widget.robot.seen, 10, "the error message")
    (dialog,) = module_widget.robot.take()
    assert "2D" in dialog.text and dialog.answered == "OK"
    assert module_widget.panel.running is None and ui.applyButton.text == "Apply"
    assert scene_snapshot(mrml.scene) == before
    assert not list(module_widget.work.glob("MedSegAI-*"))


def test_apply_runs_in_the_background_and_imports_what_the_runner_finds(module_widget, mrml, ct_volume):
    ui, widget = module_widget.ui, module_widget.panel
    select_model(module_widget, DEMO)
    select_data(ui.deviceSelector, "cpu")
    assert ui.inputVolumeSelector.currentNode() is ct_volume
    t0 = time.monotonic()
    ui.applyButton.click()  # runs Logic.start on the GUI thread: the volume's hand-over to the worker
    click_s = time.monotonic() - t0
    assert widget.running is not None
    assert ui.applyButton.text == "Cancel" and ui.applyButton.enabled and ui.progressBar.visible
    assert not ui.inputVolumeSelector.enabled and not ui.modelSelector.enabled and not ui.structureTree.enabled
    stages, values = set(), []

    def finished():
        stages.add(ui.stageLabel.text.split(":")[0])
        values.append(ui.progressBar.value)
        return widget.running is None

    worst_gap = max(click_s, longest_event_loop_gap(module_widget, finished))
    # The GUI stays responsive: the longest event-loop iteration of the whole run, including the
    # hand-over of the volume to the worker and the import of the result.
    assert worst_gap < 1.0, f"the GUI froze for {worst_gap:.2f} s"
    # The stages of the job (the worker's own "start" belongs to no job: the worker stays between runs).
    assert {"load", "predict"} <= stages, stages
    assert max(values) > 0 and values == sorted(values[:values.index(max(values)) + 1]) + values[values.index(max(values)) + 1:]
    assert ui.stageLabel.text.startswith("Done in"), ui.stageLabel.text
    assert ui.applyButton.text == "Apply" and ui.inputVolumeSelector.enabled and not ui.progressBar.visible
    node = ui.outputSegmentationSelector.currentNode()
    assert node is not None and node.IsA("vtkMRMLSegmentationNode")
    expected = medsegai.segment(image_from_volume(ct_volume), model="medsegai_ct_demo", device="cpu")
    names = [s.name for s in expected.present_segments()]
    seg = node.GetSegmentation()
    assert sorted(seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments())) == sorted(names)
    liver = seg.GetSegmentIdBySegmentName("liver")
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(node, liver, ct_volume) > 0
    np.testing.assert_array_equal(mask, expected.labels.array == seg.GetSegment(liver).GetLabelValue())
    assert not list(module_widget.work.glob("MedSegAI-*")), "temporary files left behind"

    ui.show3DCheckBox.setChecked(True)
    assert node.GetSegmentation().ContainsRepresentation(slicer.vtkSegmentationConverter.GetClosedSurfaceRepresentationName())
    assert node.GetDisplayNode().GetVisibility3D()


def test_cancel_stops_the_run_within_two_seconds_and_leaves_the_scene_as_it_was(module_widget, mrml, ct_volume):
    ui, panel = module_widget.ui, module_widget.panel
    select_model(module_widget, DEMO)
    select_data(ui.deviceSelector, "cpu")
    before = scene_snapshot(mrml.scene)
    ui.applyButton.click()
    process_events_until(lambda: ui.progressBar.value > 0, 120, "the first progress")
    handle = panel.running.job.handle
    ui.applyButton.click()  # now Cancel
    assert ui.stageLabel.text == "Cancelling..." and not ui.applyButton.enabled
    t0 = time.monotonic()
    wait_for_run(module_widget, 30)
    assert time.monotonic() - t0 < 2.5
    assert handle.finished and handle.final_event.kind == "cancelled"
    assert ui.stageLabel.text == "Cancelled; the scene was not changed."
    assert ui.applyButton.text == "Apply" and ui.applyButton.enabled
    assert scene_snapshot(mrml.scene) == before
    assert not list(module_widget.work.glob("MedSegAI-*"))


def _edit_segment(node, segment_id, volume):
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, volume)
    mask[:, :, : mask.shape[2] // 2] = 0  # the user erased half of it
    slicer.util.updateSegmentBinaryLabelmapFromArray(mask, node, segment_id, volume)


def test_edited_segments_are_kept_or_replaced_only_when_the_user_says_so(module_widget, mrml, ct_volume):
    from MedSegAIGui.qt_dialogs import DONT_IMPORT, KEEP_EDITS, REPLACE_EDITS
    from MedSegAILib.segment_edits import mask_checksum

    ui, robot = module_widget.ui, module_widget.robot
    select_model(module_widget, DEMO)
    select_data(ui.deviceSelector, "cpu")
    run_panel(module_widget)
    node = ui.outputSegmentationSelector.currentNode()
    liver = node.GetSegmentation().GetSegmentIdBySegmentName("liver")
    _edit_segment(node, liver, ct_volume)
    edited = mask_checksum(node, liver)

    # "Don't import": nothing changes.
    before = scene_snapshot(mrml.scene)
    robot.answer(DONT_IMPORT)
    run_panel(module_widget)
    (dialog,) = robot.take()
    assert "liver" in dialog.text and set(dialog.buttons) == {KEEP_EDITS, REPLACE_EDITS, DONT_IMPORT}
    assert scene_snapshot(mrml.scene) == before and "not imported" in ui.stageLabel.text
    assert not list(module_widget.work.glob("MedSegAI-*"))

    # "Keep my edits": the edited liver stays, the others are rewritten.
    robot.answer(KEEP_EDITS)
    run_panel(module_widget)
    assert robot.take()[0].answered == KEEP_EDITS
    assert mask_checksum(node, liver) == edited and "kept 1 edited" in ui.stageLabel.text

    # "Replace them": the model's liver comes back.
    robot.answer(REPLACE_EDITS)
    run_panel(module_widget)
    assert robot.take()[0].answered == REPLACE_EDITS
    assert mask_checksum(node, liver) != edited


def test_statistics_table_and_csv_export(module_widget, mrml, ct_volume, tmp_path):
    ui = module_widget.ui
    select_model(module_widget, DEMO)
    select_data(ui.deviceSelector, "cpu")
    assert not ui.exportStatisticsButton.enabled
    run_panel(module_widget)
    ui.computeStatisticsButton.click()
    table = ui.statisticsTable
    node = ui.outputSegmentationSelector.currentNode()
    assert table.rowCount == node.GetSegmentation().GetNumberOfSegments() > 0
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount)]
    assert headers == list(COLUMNS)
    expected = {s.name: s for s in module_widget.widget.logic.statistics(node, ct_volume)}
    name_col, volume_col = headers.index("Segment"), headers.index("Volume [mL]")
    for r in range(table.rowCount):
        name = table.item(r, name_col).text()
        assert float(table.item(r, volume_col).text()) == pytest.approx(expected[name].volume_ml, abs=0.01)

    path = tmp_path / "stats.csv"
    module_widget.robot.answer(str(path))
    ui.exportStatisticsButton.click()
    assert module_widget.robot.take()[0].kind == "QFileDialog"
    rows = list(csv.reader(path.open()))
    assert len(rows) == table.rowCount + 1 and rows[0][0] == "Segment"


def test_uncertainty_overlay_sliders_and_jump_from_the_panel(module_widget, mrml, ct_volume):
    ui, results = module_widget.ui, module_widget.panel.results
    select_model(module_widget, DEMO)
    select_data(ui.deviceSelector, "cpu")
    select_data(ui.uncertaintyMethodSelector, "entropy")
    assert not ui.uncertaintyPassesSpinBox.enabled  # entropy needs no extra passes
    assert not ui.jumpToLeastConfidentButton.enabled
    run_panel(module_widget)
    unc = results.uncertainty_node
    assert unc is not None and unc.GetScene() is mrml.scene
    composites = [mrml.scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
                  for i in range(mrml.scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))]
    assert composites and all(c.GetForegroundVolumeID() == unc.GetID() for c in composites)
    ui.overlayOpacitySlider.setValue(0.25)
    assert all(c.GetForegroundOpacity() == pytest.approx(0.25) for c in composites)
    ui.overlayThresholdSlider.setValue(0.3)
    assert unc.GetDisplayNode().GetLowerThreshold() == pytest.approx(0.3, abs=1e-3)
    assert ui.jumpToLeastConfidentButton.enabled
    ui.jumpToLeastConfidentButton.click()
    assert ui.stageLabel.text.startswith("Least confident: ")
    ui.computeStatisticsButton.click()
    headers = [ui.statisticsTable.horizontalHeaderItem(c).text() for c in range(ui.statisticsTable.columnCount)]
    assert "Confidence" in headers


def test_cleanup_while_running_stops_the_worker(module_widget, mrml, ct_volume):
    ui, panel = module_widget.ui, module_widget.panel
    select_model(module_widget, DEMO)
    select_data(ui.deviceSelector, "cpu")
    ui.applyButton.click()
    worker = panel.running.job.handle.worker
    module_widget.widget.cleanup()  # Slicer closing, or the module reloaded, mid-run
    process_events_until(lambda: not worker.running, 10, "the worker to stop")
    assert panel.running is None and not list(module_widget.work.glob("MedSegAI-*"))


def test_a_model_that_is_not_installed_is_downloaded_after_the_user_agrees(
        served_model, server, module_widget, mrml, ct_volume):
    import qt

    from medsegai.models import locate

    ui, widget, robot = module_widget.ui, module_widget.panel, module_widget.robot
    select_model(module_widget, f"model:{served_model}")  # from the user catalogue, not the built-in one
    select_data(ui.deviceSelector, "cpu")
    assert "not installed" in ui.licenseLabel.text
    before = scene_snapshot(mrml.scene)
    robot.answer(qt.QMessageBox.Cancel)
    ui.applyButton.click()
    (question,) = robot.take()
    assert "Test model served locally" in question.text and "Test-Licence" in question.text
    assert widget.running is None and ui.stageLabel.text.startswith("Not started")
    assert server.gets(f"/{served_model}.zip") == [] and scene_snapshot(mrml.scene) == before

    robot.answer(qt.QMessageBox.Ok)
    ui.applyButton.click()
    assert robot.take()[0].answered == "OK"
    stages = set()

    def finished():
        stages.add(ui.stageLabel.text.split(":")[0])
        return widget.running is None

    process_events_until(finished, 180, "the download and the run")
    assert {"download", "extract"} & stages, stages  # a small file: the poll may see only the extraction
    assert f"Installed model {served_model}" in ui.logText.toPlainText()
    assert len(server.gets(f"/{served_model}.zip")) == 1
    assert ui.stageLabel.text.startswith("Done in"), ui.stageLabel.text
    assert locate(served_model).available and "not installed" not in ui.licenseLabel.text
    assert ui.outputSegmentationSelector.currentNode().GetSegmentation().GetNumberOfSegments() > 0


def test_a_broken_model_is_a_message_and_the_scene_is_unchanged(model_env, small_model, tmp_path_factory, mrml,
                                                                 data_dir, request):
    """A model listed in the user catalogue whose checkpoint was cut short (a copy interrupted)."""
    import shutil

    from models_support.model_files import write_user_catalog

    broken = tmp_path_factory.mktemp("broken") / "Dataset902_Broken"
    shutil.copytree(small_model, broken / small_model.name)
    checkpoint = broken / small_model.name / "fold_0" / "checkpoint_final.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 3])
    write_user_catalog(model_env, [{
        "id": "Dataset902_Broken", "version": "1.0", "title": "A broken copy", "task": "test", "modality": "CT",
        "path": str(broken), "license": {"name": "Test-Licence", "text": "Tests only.", "requires_acceptance": False}}])
    panel = request.getfixturevalue("module_widget")  # after the catalogue exists: the panel lists it
    import qt
    slicer.util.loadVolume(str(data_dir / CT))
    select_model(panel, "model:Dataset902_Broken")
    select_data(panel.ui.deviceSelector, "cpu")
    before = scene_snapshot(mrml.scene)
    panel.robot.answer(qt.QMessageBox.Ok)
    run_panel(panel)
    (error,) = panel.robot.take()
    assert "checkpoint" in error.text.lower() and "Traceback" not in error.text, error.text
    assert panel.ui.stageLabel.text == "Failed; the scene was not changed."
    assert scene_snapshot(mrml.scene) == before
    assert not list(panel.work.glob("MedSegAI-*"))


class _FakeRun:
    """A run that reports progress twice and then ends; what RunningRun declares, nothing more."""

    def __init__(self, request):
        self.request = request
        self._events = [WorkerEvent("progress", {"stage": "predict", "fraction": 0.5, "message": "tiles"}),
                        WorkerEvent("log", {"message": "fake worker says hello"})]
        self.cancelled = False

    def poll(self):
        events, self._events = self._events[:1], self._events[1:]
        return events

    def cancel(self):
        self.cancelled = True

    @property
    def done(self):
        return not self._events


class _FakeLogic:
    """The panel's Logic reduced to PanelLogic's methods: the panel must work with nothing else."""

    def __init__(self, scene):
        self._scene = scene
        self.requests, self.discarded, self.shutdowns = [], [], 0
        self.warnings = []  # what the next finished run reports
        self.remote = None  # the panel's "Run on" choice

    def _check(self, request):
        from medsegai.run_request import RunRequestError
        from MedSegAILib.errors import InputError

        try:
            request.run.validate()
        except RunRequestError as e:
            raise InputError(str(e)) from None

    def missing_models(self, request):
        self._check(request)
        return []

    def export_dicom_seg(self, volume_node, segmentation_node, path, segmentation_type="BINARY"):
        from MedSegAILib.errors import InputError

        raise InputError("the fake Logic writes no DICOM SEG")

    def import_dicom_seg(self, path, volume_node):
        from MedSegAILib.errors import InputError

        raise InputError("the fake Logic reads no DICOM SEG")

    def start(self, request):
        self._check(request)
        self.requests.append(request)
        return _FakeRun(request)

    def finish(self, running, on_edited=None):
        node = self._scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "fake segmentation")
        return SimpleNamespace(segmentation_node=node, update=SimpleNamespace(node=node, written=["liver"], kept_edited=[]),
                               result=SimpleNamespace(notes=["a note"], warnings=list(self.warnings), model_reused=False),
                               seconds=1.0, uncertainty_node=None, uncertainty_method=None, confidence={})

    def discard(self, running):
        self.discarded.append(running)

    def statistics(self, segmentation_node, volume_node, uncertainty_volume=None, confidence_threshold=None):
        return []

    def jump_to_least_confident(self, segmentation_node, volume_node):
        raise AssertionError("not used here")

    def shutdown(self):
        self.shutdowns += 1


def test_the_panel_needs_only_the_logic_interface_and_shows_the_runs_warnings(mrml, slicer_app, tmp_path):
    """An injected Logic with PanelLogic's methods only: the Advanced options arrive in its RunRequest,
    a bad one is a message, the result's warnings stand beside it until the next Apply, and closing
    Slicer stops the worker."""
    import qt

    from MedSegAILib.logic_interface import PanelLogic

    logic = _FakeLogic(mrml.scene)
    assert isinstance(logic, PanelLogic)
    panel = open_panel(mrml, slicer_app, tmp_path, logic)
    try:
        ui = panel.ui
        assert panel.widget.logic is logic
        add_volume(mrml.scene, np.zeros((4, 8, 8), np.int16), np.eye(4), name="CT")
        select_model(panel, DEMO)
        select_data(ui.deviceSelector, "cpu")
        select_data(ui.precisionSelector, "fp32")
        select_data(ui.modeSelector, "nnunet")
        ui.tileStepSpinBox.setValue(0.75)
        ui.foldsLineEdit.setText("0, 2")
        ui.structureSearchBox.setText("kidney")
        ui.clearStructuresButton.click()
        ui.structureSearchBox.setText("")

        # A fold that is not a number: the Logic's message, nothing started.
        ui.foldsLineEdit.setText("zero")
        panel.robot.answer(qt.QMessageBox.Ok)
        ui.applyButton.click()
        (error,) = panel.robot.take()
        assert "folds" in error.text and panel.panel.running is None and not logic.requests
        ui.foldsLineEdit.setText("0, 2")

        logic.warnings = ["The input looks like MR; this model was trained on CT."]
        run_panel(panel, 30)
        run = logic.requests[-1].run
        assert (run.model, run.task, run.device, run.precision, run.mode) == ("medsegai_ct_demo", None, "cpu",
                                                                             "fp32", "nnunet")
        assert run.tile_step == pytest.approx(0.75) and run.folds == ["0", "2"]
        assert run.roi_subset and not any("kidney" in n for n in run.roi_subset)
        assert ui.stageLabel.text.startswith("Done in") and "fake worker says hello" in ui.logText.toPlainText()
        assert ui.resultWarningLabel.visible and "trained on CT" in ui.resultWarningLabel.text
        assert ui.outputSegmentationSelector.currentNode().GetName() == "fake segmentation"
        assert run.speed == "exact"

        # Speed fast chooses the precision itself: with fp32 chosen too, the Logic's message.
        select_data(ui.speedSelector, "fast")
        panel.robot.answer(qt.QMessageBox.Ok)
        ui.applyButton.click()
        (error,) = panel.robot.take()
        assert "chooses the precision itself" in error.text and panel.panel.running is None
        select_data(ui.precisionSelector, "auto")
        run_panel(panel, 30)
        assert logic.requests[-1].run.speed == "fast" and logic.requests[-1].run.precision == "auto"

        # The next run clears the warning as it starts; a clean result leaves it empty.
        logic.warnings = []
        ui.applyButton.click()
        assert not ui.resultWarningLabel.visible and ui.resultWarningLabel.text == ""
        wait_for_run(panel, 30)
        assert not ui.resultWarningLabel.visible

        slicer_app.emit("aboutToQuit()")
        assert logic.shutdowns == 1
    finally:
        close_panel(panel)
    assert panel.widget.cleanup not in slicer_app.signal_slots["aboutToQuit()"]  # a closed panel is let go


def test_a_second_apply_reuses_the_worker_and_its_model(module_widget, mrml, ct_volume):
    ui, panel, app = module_widget.ui, module_widget.panel, module_widget.app
    select_model(module_widget, DEMO)
    select_data(ui.deviceSelector, "cpu")
    run_panel(module_widget)
    first = panel.last_outcome
    ui.applyButton.click()
    worker = panel.running.job.handle.worker
    pid = worker.pid
    wait_for_run(module_widget)
    assert ui.stageLabel.text.startswith("Done in"), ui.stageLabel.text
    assert not first.result.model_reused and panel.last_outcome.result.model_reused
    assert worker.running and worker.pid == pid and worker.starts == 1

    app.emit("aboutToQuit()")  # Slicer exits: the worker that stayed goes with it
    process_events_until(lambda: not worker.running, 10, "the worker to stop")


def test_without_an_injected_logic_the_widget_builds_the_real_one_on_slicers_scene(mrml, slicer_app):
    """What Slicer gets: it constructs the widget with a parent only."""
    import MedSegAI
    from MedSegAILib.segment_logic import SegmentLogic
    from pythonqt_env.slicer_application import module_panel

    widget, parent = module_panel(MedSegAI.MedSegAIWidget, mrml.scene)
    try:
        assert isinstance(widget.logic, SegmentLogic) and widget.logic.scene is mrml.scene
        assert widget.panel.logic is widget.logic
    finally:
        widget.cleanup()
        for combo in (widget.ui.inputVolumeSelector, widget.ui.outputSegmentationSelector):
            combo.setMRMLScene(None)
        parent.deleteLater()


@pytest.fixture
def run_on_reset():
    """The "Run on" choice lives in the application's settings: put it back for the next tests."""
    yield
    import qt

    settings = qt.QSettings()
    settings.remove("MedSegAI/Remote")
    settings.sync()


def test_run_on_a_server_from_the_panel_stored_in_the_settings_never_in_the_scene(
        module_widget, mrml, ct_volume, tmp_path_factory, run_on_reset):
    import qt

    from server_support import TOKEN, Server

    from MedSegAILib.remote_job import RemoteSettings

    ui, panel = module_widget.ui, module_widget.panel
    srv = Server(tmp_path_factory.mktemp("srv")).wait_ready()
    try:
        assert ui.runOnSelector.currentData == "local" and not ui.serverUrlLineEdit.enabled
        select_data(ui.runOnSelector, "server")
        assert panel.logic.remote is None and "needs the server's address" in ui.serverStatusLabel.text
        select_model(module_widget, DEMO)
        module_widget.robot.answer(qt.QMessageBox.Ok)
        ui.applyButton.click()  # "Server" without an address: a message, not a run on this computer
        (error,) = module_widget.robot.take()
        assert "needs the server's address" in error.text and panel.running is None
        ui.serverUrlLineEdit.setText(srv.url)

        def probe():
            ui.testConnectionButton.click()
            assert not ui.testConnectionButton.enabled  # asked in a thread: the panel goes on
            process_events_until(lambda: ui.testConnectionButton.enabled, 60, "the connection test")
            return ui.serverStatusLabel.text

        assert "refused" in probe()  # no token
        ui.serverTokenLineEdit.setText(TOKEN)
        answer = probe()
        assert answer.startswith("Connected: MedSegAI") and "medsegai_ct_demo" in answer, answer

        select_model(module_widget, DEMO)
        run_panel(module_widget)  # Apply reads the fields as they are (no Enter pressed)
        assert panel.logic.remote == RemoteSettings(srv.url, TOKEN)
        assert ui.stageLabel.text.startswith("Done in"), ui.stageLabel.text
        info = srv_info(srv)
        assert info["queue"]["accepted"] == 1
        node = ui.outputSegmentationSelector.currentNode()
        expected = medsegai.segment(image_from_volume(ct_volume), model="medsegai_ct_demo", device="cpu", threads=1)
        seg = node.GetSegmentation()
        assert sorted(seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments())) == \
            sorted(s.name for s in expected.present_segments())
        liver = seg.GetSegmentIdBySegmentName("liver")
        np.testing.assert_array_equal(slicer.util.arrayFromSegmentBinaryLabelmap(node, liver, ct_volume) > 0,
                                      expected.labels.array == seg.GetSegment(liver).GetLabelValue())

        # In the application's settings, and nowhere in a saved scene.
        settings = qt.QSettings()
        assert settings.value("MedSegAI/Remote/RunOn") == "server" and settings.value("MedSegAI/Remote/Token") == TOKEN
        mrml.scene.SetSaveToXMLString(1)
        mrml.scene.Commit()
        xml = mrml.scene.GetSceneXMLString()
        assert TOKEN not in xml and str(srv.port) not in xml

        # A dead server: the panel says so and the scene stays as it was.
        srv.kill()
        before = scene_snapshot(mrml.scene)
        module_widget.robot.answer(qt.QMessageBox.Ok)
        run_panel(module_widget)
        (error,) = module_widget.robot.take()
        assert "Cannot reach the MedSegAI server" in error.text and "\n" not in error.text.strip()
        assert ui.stageLabel.text == "Failed; the scene was not changed."
        assert scene_snapshot(mrml.scene) == before

        # Back to this computer: the fields stay for later, runs are local again.
        select_data(ui.runOnSelector, "local")
        assert panel.logic.remote is None and not ui.serverUrlLineEdit.enabled
        assert ui.serverUrlLineEdit.text == srv.url and settings.value("MedSegAI/Remote/RunOn") == "local"
    finally:
        srv.stop()


def srv_info(srv):
    import requests

    return requests.get(srv.url + "/v1/info", headers=srv.auth, timeout=30).json()


def test_dicom_seg_export_and_import_from_the_panel(module_widget, mrml, data_dir, tmp_path):
    """A volume loaded from DICOM (its instance UIDs, the files found through Slicer's DICOM database,
    here a folder index answering the same lookup): export the output segmentation, import it back."""
    import qt
    import pydicom

    from dicom_seg_support import pancreas_crop
    from medsegai import terminology
    from medsegai.io.dicom_series_select import find_series
    from medsegai.io.read import read_image
    from medsegai.io.segments import segments_from_names

    from MedSegAILib.dicom_seg_bridge import INSTANCE_UIDS_ATTRIBUTE, FolderIndex
    from MedSegAILib.segmentation_bridge import write_segments

    ui, robot = module_widget.ui, module_widget.robot
    series = pancreas_crop(data_dir, tmp_path / "ct", first=60, count=8)
    image = read_image(series)
    volume = add_volume(mrml.scene, image.array, image.ijk_to_ras(), name="Pancreas CT")
    volume.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, " ".join(
        str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in find_series(series)[0].files))
    labels = np.zeros(image.shape, np.uint8)
    labels[1:6, 100:200, 100:220] = 1
    labels[2:5, 250:330, 300:380] = 2
    node = write_segments(mrml.scene, image.with_array(labels),
                          segments_from_names({1: "liver", 2: "spleen"}, terminology.lookup),
                          reference_volume=volume).node
    ui.inputVolumeSelector.setCurrentNode(volume)
    ui.outputSegmentationSelector.setCurrentNode(node)
    saved = getattr(slicer, "dicomDatabase", None)
    slicer.dicomDatabase = FolderIndex(series)
    try:
        out = tmp_path / "export" / "seg.dcm"
        out.parent.mkdir()
        robot.answer(str(out))
        ui.exportDicomSegButton.click()
        assert [d.kind for d in robot.take()] == ["QFileDialog"]
        assert out.is_file() and ui.dicomSegStatusLabel.text.startswith(f"Wrote {out}")

        robot.answer(str(out))
        ui.importDicomSegButton.click()
        robot.take()
        back = ui.outputSegmentationSelector.currentNode()
        assert back is not node and "Imported 2 segment(s)" in ui.dicomSegStatusLabel.text
        seg = back.GetSegmentation()
        for name, value in (("liver", 1), ("spleen", 2)):
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(back, seg.GetSegmentIdBySegmentName(name), volume)
            np.testing.assert_array_equal(mask > 0, labels == value, err_msg=name)

        # A volume that did not come from DICOM: a message, no file, the scene as it was.
        plain = add_volume(mrml.scene, image.array, image.ijk_to_ras(), name="plain")
        ui.inputVolumeSelector.setCurrentNode(plain)
        ui.outputSegmentationSelector.setCurrentNode(node)
        before = scene_snapshot(mrml.scene)
        refused = tmp_path / "export" / "refused.dcm"
        robot.answer(str(refused), qt.QMessageBox.Ok)
        ui.exportDicomSegButton.click()
        file_dialog, error = robot.take()
        assert "was not loaded from DICOM" in error.text and not refused.exists()
        assert scene_snapshot(mrml.scene) == before
    finally:
        slicer.dicomDatabase = saved
