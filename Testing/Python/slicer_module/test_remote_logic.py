"""'Run on: server' from the Slicer Logic: Apply and the interactive prompts on a real ``medsegai serve``
(a subprocess on 127.0.0.1 with a token), compared with the same work on this computer.

Apply's segments must equal a local run's voxel for voxel; prompts on the server must give exactly
the voxels the runner's session gives in-process (the classical engine: deterministic). A dead
server, a wrong token and a server that dies mid-session are one-line messages with the scene as it
was, and undo keeps working.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import slicer

from conftest import add_volume, scene_snapshot, segment_node
from geometry_cases import GEOMETRIES
from medsegai.interactive import InteractiveSession
from medsegai.io.read import read_image
from server_support import TOKEN, Server, free_port

from MedSegAILib.errors import SessionLostError
from MedSegAILib.interactive_logic import InteractiveLogic
from MedSegAILib.remote_job import RemoteSettings
from MedSegAILib.volume_bridge import image_from_volume, ijk_to_ras_matrix

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'medsegai[server]'")

POINT = (15, 50, 60)  # (k, j, i) inside the abdomen of the small example CT
NEGATIVE = (15, 58, 68)
FAR = (15, 30, 85)
ENGINE = "classical"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("srv"), "--session-idle", "600", "--interactive-engine", ENGINE).wait_ready()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ct(ts_ref):
    return read_image(ts_ref / "example_ct_sm.nii.gz")


@pytest.fixture
def volume(mrml, ct):
    return add_volume(mrml.scene, ct.array, GEOMETRIES["oblique_anisotropic"])


def _masks(node, volume):
    seg = node.GetSegmentation()
    out = {}
    for n in range(seg.GetNumberOfSegments()):
        sid = seg.GetNthSegmentID(n)
        arr = slicer.util.arrayFromSegmentBinaryLabelmap(node, sid, volume)
        out[seg.GetSegment(sid).GetName()] = None if arr is None else (arr > 0)
    return out


def _segmentation(scene, volume):
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Seg")
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    node.GetSegmentation().AddEmptySegment("new", "new")
    return node


def _direct(volume):
    """The runner's session in this process on the image the Logic sends: what the voxels must be."""
    direct = InteractiveSession(engine=ENGINE)
    direct.set_image(image_from_volume(volume))
    return direct


def _mask(node, volume):
    return slicer.util.arrayFromSegmentBinaryLabelmap(node, "new", volume) > 0


def _world(volume, kji):
    return (ijk_to_ras_matrix(volume) @ np.array([kji[2], kji[1], kji[0], 1.0]))[:3]


# -- Apply ----------------------------------------------------------------------------------------
def test_apply_on_the_server_imports_what_a_local_run_imports(mrml, logic, volume, server):
    local = segment_node(logic, volume, model="medsegai_ct_demo", device="cpu").segmentation_node
    logic.remote = RemoteSettings(server.url, TOKEN)
    assert logic.missing_models(_request(volume)) == []  # the server has its own models
    remote = segment_node(logic, volume, model="medsegai_ct_demo").segmentation_node
    assert remote is not local
    a, b = _masks(local, volume), _masks(remote, volume)
    assert sorted(a) == sorted(b) and len(a) >= 2
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _request(volume):
    from medsegai.run_request import RunRequest

    from MedSegAILib.segment_logic import SegmentationRequest

    return SegmentationRequest(volume, RunRequest(model="medsegai_ct_demo"))


@pytest.mark.parametrize("problem", ["dead", "token"])
def test_a_dead_server_or_a_wrong_token_is_one_line_and_the_scene_is_unchanged(mrml, logic, volume, server,
                                                                                problem):
    url, token = (f"http://127.0.0.1:{free_port()}", TOKEN) if problem == "dead" else (server.url, "wrong-token")
    logic.remote = RemoteSettings(url, token)
    before = scene_snapshot(mrml.scene)
    with pytest.raises(Exception) as info:
        segment_node(logic, volume, model="medsegai_ct_demo", timeout=120)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert ("Cannot reach the MedSegAI server" in message) if problem == "dead" else ("refused" in message)
    assert scene_snapshot(mrml.scene) == before


# -- interactive prompts --------------------------------------------------------------------------
def test_prompts_on_the_server_give_the_runners_voxels_and_undo_is_exact(mrml, logic, volume, server):
    logic.remote = RemoteSettings(server.url, TOKEN)
    interactive = InteractiveLogic(mrml.scene, lambda: logic.session_worker)
    try:
        node = _segmentation(mrml.scene, volume)
        session = interactive.interactiveSession(volume, node, "new", engine=ENGINE)
        direct = _direct(volume)

        change = session.addPoint(_world(volume, POINT))
        direct.add_point(POINT)
        got = _mask(node, volume)
        np.testing.assert_array_equal(got, direct.mask > 0)
        assert change.added == int(direct.mask.sum()) > 0
        assert session.engine == ENGINE

        session.addPoint(_world(volume, NEGATIVE), positive=False)
        direct.add_point(NEGATIVE, positive=False)
        np.testing.assert_array_equal(_mask(node, volume),
                                      direct.mask > 0)
        session.undo()
        np.testing.assert_array_equal(_mask(node, volume), got)
        info = logic.session_worker.client.info()
        assert info["sessions"]["open"] >= 1
    finally:
        interactive.shutdown()
        logic.shutdown()  # the relay closes the server's sessions it opened
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _open_sessions(server):
        time.sleep(0.1)
    assert _open_sessions(server) == 0


def _open_sessions(server) -> int:
    import requests

    return requests.get(server.url + "/v1/info", headers=server.auth, timeout=30).json()["sessions"]["open"]


def test_switching_between_this_computer_and_the_server_keeps_the_segment_and_its_history(mrml, logic, volume,
                                                                                          server):
    interactive = InteractiveLogic(mrml.scene, lambda: logic.session_worker)
    try:
        node = _segmentation(mrml.scene, volume)
        session = interactive.interactiveSession(volume, node, "new", engine=ENGINE)
        session.addPoint(_world(volume, POINT))  # on this computer's worker
        first = _mask(node, volume)
        logic.remote = RemoteSettings(server.url, TOKEN)
        session.addPoint(_world(volume, FAR))  # the server's session starts from the segment as it is
        both = _mask(node, volume)
        assert both.sum() > first.sum() and not (first & ~both).any()
        session.undo()
        np.testing.assert_array_equal(_mask(node, volume), first)
    finally:
        interactive.shutdown()


def test_a_server_that_dies_mid_session_is_a_message_and_undo_still_works(mrml, logic, volume, tmp_path):
    doomed = Server(tmp_path, "--interactive-engine", ENGINE).wait_ready()
    logic.remote = RemoteSettings(doomed.url, TOKEN)
    interactive = InteractiveLogic(mrml.scene, lambda: logic.session_worker)
    try:
        node = _segmentation(mrml.scene, volume)
        session = interactive.interactiveSession(volume, node, "new", engine=ENGINE)
        session.addPoint(_world(volume, POINT))
        first = _mask(node, volume)
        doomed.kill()
        before = scene_snapshot(mrml.scene)
        with pytest.raises(SessionLostError) as info:
            session.addPoint(_world(volume, FAR))
        assert "Cannot reach the MedSegAI server" in str(info.value) and "unchanged" in str(info.value)
        assert scene_snapshot(mrml.scene) == before
        session.undo()  # the voxel history is the Logic's, not the server's
        assert not (_mask(node, volume)).any() and first.any()
    finally:
        interactive.shutdown()
        doomed.stop()


def test_a_prompt_in_flight_when_the_user_switches_to_the_server_still_lands(mrml, logic, volume, server):
    """Its reply comes back from the worker it went to, not from where the next prompt goes."""
    interactive = InteractiveLogic(mrml.scene, lambda: logic.session_worker)
    try:
        node = _segmentation(mrml.scene, volume)
        session = interactive.interactiveSession(volume, node, "new", engine=ENGINE)
        direct = _direct(volume)
        pending = session.addPoint(_world(volume, POINT), wait=False)  # to this computer's worker
        logic.remote = RemoteSettings(server.url, TOKEN)
        change = pending.finish(timeout=120)
        direct.add_point(POINT)
        assert change.added == int(direct.mask.sum()) > 0
        np.testing.assert_array_equal(_mask(node, volume),
                                      direct.mask > 0)
        session.addPoint(_world(volume, FAR))  # now on the server
        assert session.runner.worker is logic.session_worker and _open_sessions(server) >= 1
    finally:
        interactive.shutdown()
        logic.shutdown()


def test_a_wrong_token_for_prompts_is_a_message_not_a_lost_session(mrml, logic, volume, server):
    from MedSegAILib.errors import InputError

    logic.remote = RemoteSettings(server.url, "wrong-token")
    interactive = InteractiveLogic(mrml.scene, lambda: logic.session_worker)
    try:
        node = _segmentation(mrml.scene, volume)
        session = interactive.interactiveSession(volume, node, "new", engine=ENGINE)
        before = scene_snapshot(mrml.scene)
        with pytest.raises(InputError) as info:
            session.addPoint(_world(volume, POINT))
        assert not isinstance(info.value, SessionLostError)
        assert "refused" in str(info.value) and "\n" not in str(info.value)
        assert scene_snapshot(mrml.scene) == before
    finally:
        interactive.shutdown()
