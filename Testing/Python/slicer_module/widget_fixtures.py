"""Fixtures that build the module's real widget (MedSegAI.MedSegAIWidget, the real .ui file) on
real Qt widgets over a real MRML scene, with PythonQt and the application emulated by
``pythonqt_env`` (see its slicer_application.py for what is real and what stands in)."""
from __future__ import annotations

import functools
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pythonqt_env.slicer_application import DialogRobot, add_slice_views, install, module_panel, process_events_until

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def slicer_app(tmp_path_factory):
    return install(tmp_path_factory.mktemp("slicer_app"))


def real_logic(mrml, work_root, worker_env):
    """The Logic the module builds, with the runs' files in ``work_root`` (a test checks that nothing
    is left behind) and the worker held to one thread."""
    from MedSegAILib.segment_logic import SegmentLogic

    return SegmentLogic(mrml.scene, mrml.segmentations, work_root=str(work_root), worker_env=worker_env,
                        colors_logic=mrml.colors)


def open_panel(mrml, slicer_app, work, logic):
    """The module's widget with ``logic`` injected, as Slicer builds it, and a robot for its dialogs."""
    import qt

    import MedSegAI

    qt.SLOT_ERRORS.clear()
    slicer_app.testing = False
    robot = DialogRobot()
    add_slice_views(mrml.scene)
    widget, parent = module_panel(functools.partial(MedSegAI.MedSegAIWidget, logic=logic), mrml.scene)
    parent.show()
    return SimpleNamespace(widget=widget, ui=widget.ui, panel=widget.panel, robot=robot, parent=parent,
                           app=slicer_app, work=work)


def close_panel(panel) -> None:
    import qt

    widget, robot, parent = panel.widget, panel.robot, panel.parent
    widget.cleanup()
    for combo in (widget.ui.inputVolumeSelector, widget.ui.outputSegmentationSelector):
        combo.setMRMLScene(None)
    robot.stop()
    parent.hide()
    parent.deleteLater()
    panel.app.processEvents()
    unexpected = [d for d in robot.seen if d.problem]
    assert not unexpected, f"dialogs the test did not answer: {unexpected}"
    assert not qt.SLOT_ERRORS, "exceptions in slots:\n" + "\n".join(qt.SLOT_ERRORS)


@pytest.fixture
def module_widget(mrml, slicer_app, tmp_path, worker_env):
    panel = open_panel(mrml, slicer_app, tmp_path, real_logic(mrml, tmp_path, worker_env))
    yield panel
    close_panel(panel)


def wait_for_run(panel, timeout_s=300.0):
    """Let the event loop run until the widget's run has finished (its Apply button is back)."""
    process_events_until(lambda: panel.panel.running is None, timeout_s, "the run to finish")


def run_panel(panel, timeout_s=300.0):
    panel.ui.applyButton.click()
    assert panel.panel.running is not None, panel.ui.stageLabel.text
    wait_for_run(panel, timeout_s)


def longest_event_loop_gap(panel, until, timeout_s=300.0) -> float:
    """Run the event loop until ``until()`` and return the longest time one iteration took: how long
    the GUI was frozen at worst."""
    import qt

    worst, deadline, last = 0.0, time.monotonic() + timeout_s, time.monotonic()
    while not until():
        assert time.monotonic() < deadline, "timed out"
        qt.QApplication.processEvents()
        now = time.monotonic()
        worst, last = max(worst, now - last), now
        time.sleep(0.005)
        last = time.monotonic()
    return worst


def select_model(panel, key: str) -> None:
    combo = panel.ui.modelSelector
    index = combo.findData(key)
    assert index >= 0, f"model selector has no {key}"
    combo.setCurrentIndex(index)


def select_data(combo, value) -> None:
    index = combo.findData(value)
    assert index >= 0, f"{combo.name} has no item {value!r}"
    combo.setCurrentIndex(index)
