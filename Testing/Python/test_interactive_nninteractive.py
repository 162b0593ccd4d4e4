"""The nnInteractive engine against nnInteractive 2.6.0's own inference session (test-only package),
same random-weight checkpoint of its architecture, same real CT, same prompts, step by step.

Parity is exact: the same masks bit for bit, and below that the same encoded channels, the same
network input at every zoom and the same refinement boxes. nnInteractive's refinement planner
draws from numpy's global generator when its grid misses voxels; numpy is seeded before each of
its calls with the seed our engine uses for its own generator.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import medsegai
from medsegai import InvalidModelError, UnsafeCheckpointError
from medsegai.interactive.engine import Prompt
from medsegai.interactive.errors import InteractiveError
from medsegai.interactive.nninteractive import NNInteractiveEngine, create_engine, load_model_folder
from medsegai.interactive.nninteractive.autozoom import network_input
from medsegai.interactive.nninteractive.boxes import cover
from medsegai.interactive.nninteractive.engine import PLANNER_SEED
from medsegai.interactive.nninteractive.normalization import NormalizedImage
from medsegai.interactive.nninteractive.prompts import PromptChannels, point_ball
from nninteractive_support import reference_session, write_nninteractive_folder

# The prompt positions are chosen on this image (112 x 101 x 122 voxels, 3 mm).
CT = "example_ct.nii.gz"
SEG = "example_seg_fast_force_split.nii.gz"  # TotalSegmentator's labels for that CT


@pytest.fixture(scope="module")
def ct(ts_ref) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(ts_ref / CT)))


@pytest.fixture(scope="module")
def labels(ts_ref) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(ts_ref / SEG)))


@pytest.fixture(scope="module")
def gallbladder(labels) -> np.ndarray:
    return (labels == 4).astype(np.uint8)  # 12 x 18 x 13 voxels: fits one patch


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    # bias 2: about 0.5% foreground, so AutoZoom zooms out for some prompts and not for others
    return write_nninteractive_folder(tmp_path_factory.mktemp("nnint") / "model", bias_shift=2.0)


def _quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _crop_box(p: Prompt):
    return [[o, o + s] for o, s in zip(p.offset, p.mask.shape)]


def _reference_apply(ref, p: Prompt, run: bool = True):
    """The same prompt through nnInteractive's API (its coordinates are the array's own voxel order)."""
    np.random.seed(PLANNER_SEED)
    if p.kind == "point":
        return _quiet(ref.add_point_interaction, p.point, include_interaction=p.positive, run_prediction=run)
    if p.kind == "box":
        return _quiet(ref.add_bbox_interaction, [list(b) for b in p.box], include_interaction=p.positive,
                      run_prediction=run)
    if p.kind == "scribble":
        return _quiet(ref.add_scribble_interaction, p.mask, include_interaction=p.positive, run_prediction=run,
                      interaction_bbox=_crop_box(p))
    if p.kind == "lasso":
        return _quiet(ref.add_lasso_interaction, p.mask, include_interaction=p.positive, run_prediction=run,
                      interaction_bbox=_crop_box(p))
    full = np.zeros(ref.original_image_shape[1:], np.uint8)
    full[p.region()] = p.mask
    return _quiet(ref.add_initial_seg_interaction, full, run_prediction=run)


def _scribble() -> Prompt:
    m = np.zeros((1, 20, 30), np.uint8)
    m[0, 10, :] = 1
    m[0, :, 15] = 1
    return Prompt("scribble", True, mask=m, offset=(70, 40, 50))


def _lasso(positive=False) -> Prompt:
    m = np.zeros((1, 30, 30), np.uint8)
    yy, xx = np.mgrid[:30, :30]
    m[0] = (yy - 15) ** 2 + (xx - 14) ** 2 <= 121  # a filled closed curve on one slice
    return Prompt("lasso", positive, mask=m, offset=(30, 20, 30))


# ------------------------------------------------------------------------------------------------
# The acceptance test: one scripted interaction, both engines step by step.
# ------------------------------------------------------------------------------------------------
STEPS = ["point+", "point-", "box", "scribble", "lasso-", "point near border", "undo", "point after undo",
         "initial mask", "point on initial mask", "initial mask refined"]


@pytest.fixture(scope="module")
def session_run(model, ct, gallbladder, labels):
    """Runs the whole script once; each entry: (step, reference mask, our mask, our stats, seconds ref/ours)."""
    pytest.importorskip("nnInteractive")
    ref = reference_session(model)
    target = np.zeros(ct.shape, np.uint8)
    _quiet(ref.set_image, ct[None])
    ref.set_target_buffer(target)
    ours = NNInteractiveEngine(model, device="cpu")
    ours.set_image(medsegai.Image(ct))
    mask = np.zeros(ct.shape, np.uint8)
    prompts, results = [], {}

    def step(name, p: Prompt):
        nonlocal mask
        t0 = time.perf_counter()
        _reference_apply(ref, p)
        t1 = time.perf_counter()
        prompts.append(p)
        up = ours.predict(list(prompts), mask)
        t2 = time.perf_counter()
        mask = mask.copy()
        mask[up.region] = up.values
        results[name] = (target.copy(), mask.copy(), ours.last, t1 - t0, t2 - t1)

    step("point+", Prompt("point", True, point=(56, 50, 60)))
    step("point-", Prompt("point", False, point=(60, 40, 70)))
    step("box", Prompt("box", True, box=((50, 51), (30, 70), (40, 90))))
    step("scribble", _scribble())
    step("lasso-", _lasso())
    before = mask.copy()
    step("point near border", Prompt("point", True, point=(56, 98, 118)))  # its ball and windows leave the image
    # undo: nnInteractive's own undo; the session puts its mask back and syncs the engine
    assert _quiet(ref.undo)
    prompts.pop()
    mask = before
    ours.sync(list(prompts), mask)
    results["undo"] = (target.copy(), mask.copy(), None, 0.0, 0.0)
    step("point after undo", Prompt("point", True, point=(80, 60, 40)))
    # set_mask: an existing segment to start from (nnInteractive: initial seg without prediction)
    init = Prompt("mask", True, mask=gallbladder[84:96, 58:76, 75:88].copy(), offset=(84, 58, 75))
    _reference_apply(ref, init, run=False)
    prompts, mask = [init], np.zeros(ct.shape, np.uint8)
    mask[init.region()] = init.mask
    ours.sync(prompts, mask)
    results["initial mask"] = (target.copy(), mask.copy(), None, 0.0, 0.0)
    step("point on initial mask", Prompt("point", False, point=(90, 67, 81)))
    # a longer segment (51 voxels along k) as a prompt that is predicted: zoomed out, then refined
    # in boxes over the whole segment (nnInteractive's force_full_refine)
    step("initial mask refined", Prompt("mask", True, mask=(labels == 52).astype(np.uint8)))
    return results


@pytest.mark.parametrize("name", STEPS)
def test_parity_step_by_step(session_run, name):
    ref_mask, our_mask, _stats, _tr, _to = session_run[name]
    assert ref_mask.any() or name == "undo", "the reference predicted nothing: the step proves nothing"
    diff = int((ref_mask != our_mask).sum())
    assert diff == 0, f"{name}: {diff} voxels differ from nnInteractive's mask"


def test_script_exercised_autozoom_and_refinement(session_run):
    """The script is only a proof if it took every path: zoom 1, zoom-out with refinement, several boxes."""
    stats = {n: r[2] for n, r in session_run.items() if r[2] is not None}
    assert any(s.zoom == 1 for s in stats.values())
    assert any(s.zoom > 1 and s.refinement_boxes >= 1 for s in stats.values())
    assert max(s.zoom for s in stats.values()) >= 2.25
    assert stats["initial mask refined"].refinement_boxes > 1
    lines = [f"{n:24s} zoom {s.zoom:5.2f} passes {s.forward_passes:3d} boxes {s.refinement_boxes:3d} "
             f"nnInteractive {session_run[n][3]:5.2f} s ours {session_run[n][4]:5.2f} s" for n, s in stats.items()]
    print("\n" + "\n".join(lines))


def test_through_the_interactive_session(session_run, model, ct, gallbladder):
    """The session finds the engine by name and drives it: set_mask then a click gives nnInteractive's
    mask; undo syncs the engine, and the same click again gives the same mask."""
    from medsegai.interactive import InteractiveSession

    with InteractiveSession(engine="nninteractive", model=model, device="cpu") as session:
        session.set_image(medsegai.Image(ct))
        session.set_mask(gallbladder)
        session.add_point((90, 67, 81), positive=False)
        np.testing.assert_array_equal(session.mask, session_run["point on initial mask"][0])
        first = session.mask.copy()
        session.undo()
        np.testing.assert_array_equal(session.mask, gallbladder)
        session.add_point((90, 67, 81), positive=False)
        np.testing.assert_array_equal(session.mask, first)


# ------------------------------------------------------------------------------------------------
# Below the masks: encoding, network input and refinement boxes compared directly.
# ------------------------------------------------------------------------------------------------
def _encoded_pair(model_folder, ct, prompts, initial=None):
    """nnInteractive's session and our channels after ``prompts`` (no prediction)."""
    ref = reference_session(model_folder)
    _quiet(ref.set_image, ct[None])
    ref.set_target_buffer(np.zeros(ct.shape, np.uint8))
    if initial is not None:
        _quiet(ref.add_initial_seg_interaction, initial, run_prediction=False)
    ours = PromptChannels(load_model_folder(model_folder).capability, ct.shape)
    for p in prompts:
        _reference_apply(ref, p, run=False)
        ours.add(p, (64, 64, 64))
    ref._finish_preprocessing_and_initialize_interactions()
    return ref, ours


def _prompt_mix():
    return [Prompt("point", True, point=(56, 50, 60)), Prompt("box", False, box=((40, 41), (30, 70), (40, 90))),
            Prompt("point", False, point=(57, 52, 61)), _scribble(), _lasso(True),
            Prompt("point", True, point=(0, 100, 121)), Prompt("box", True, box=((10, 80), (0, 1), (5, 60))),
            Prompt("point", True, point=(58, 50, 64))]


@pytest.mark.parametrize("decay", [None, 0.1], ids=["decay 0.98", "decay 0.1 (renormalises twice)"])
def test_channels_equal_nninteractive(model, ct, tmp_path, decay):
    """Every prompt channel, over the whole image, bit for bit; with decay 0.1 the intensity passes
    float16's maximum at the 5th and 7th prompt and everything stored is scaled down."""
    pytest.importorskip("nnInteractive")
    folder = model
    if decay is not None:
        folder = tmp_path / "model"
        shutil.copytree(model, folder)
        (folder / "inference_info.json").write_text(f'{{"interaction_decay": {decay}}}')
    ref, ours = _encoded_pair(folder, ct, _prompt_mix())
    assert ours.intensity == ref.current_interaction_intensity
    whole = [[0, s] for s in ct.shape]
    for c in range(7):
        if c == ours.cap.prev_seg:
            continue
        assert torch.equal(ours.region(c, whole), ref.interactions[c]), f"channel {c}"
        assert torch.equal(ours.region(c, [[20, 90], [10, 60], [30, 121]]), ref.interactions[c, 20:90, 10:60, 30:121])


def test_point_ball_and_normalisation_equal_nninteractive(model, ct):
    pytest.importorskip("nnInteractive")
    from nnInteractive.interaction.point import build_point

    assert torch.equal(torch.from_numpy(point_ball(4)), build_point((4, 4, 4), True, False))
    ref, _ = _encoded_pair(model, ct, [])
    img = NormalizedImage(ct)
    assert torch.equal(img.crop([[0, s] for s in ct.shape]), ref.preprocessed_image)
    # a zero border: statistics over the non-zero box only
    framed = np.zeros((120, 110, 130), ct.dtype)
    framed[4:116, 5:106, 4:126] = ct
    ref2, _ = _encoded_pair(model, framed, [])
    assert torch.equal(NormalizedImage(framed).crop([[0, s] for s in framed.shape]), ref2.preprocessed_image)


@pytest.mark.parametrize("zoom", [1.0, 1.109375, 1.5, 2.25, 4.0])
def test_network_input_equal_nninteractive(model, ct, gallbladder, zoom):
    """The 8-channel network input AutoZoom builds, at every zoom it can reach, with a previous mask."""
    pytest.importorskip("nnInteractive")
    ref, ours = _encoded_pair(model, ct, _prompt_mix(), initial=gallbladder)
    center = (84, 62, 80)
    a, a_size, a_box, a_prev = ref._build_network_input(center, zoom)
    b, win, b_prev = network_input(NormalizedImage(ct), ours, gallbladder, center, zoom, (64, 64, 64),
                                   torch.device("cpu"))
    assert (list(win.size), win.box) == (list(a_size), a_box)
    assert b.dtype == a.dtype and torch.equal(b, a), f"max diff {(b - a).abs().max().item()}"
    assert torch.equal(b_prev, a_prev)


def _random_masks():
    rng = np.random.RandomState(5)
    blob = np.zeros((70, 60, 64), np.uint8)
    blob[10:50, 20:55, 5:40] = 1
    speck = (rng.rand(40, 50, 45) < 0.003).astype(np.uint8)  # scattered voxels: the random fallback
    ring = np.zeros((64, 64, 64), np.uint8)
    ring[30, 5:60, 5:60] = 1
    ring[30, 10:55, 10:55] = 0
    return {"blob": blob, "speckle": speck, "ring": ring}


@pytest.mark.parametrize("name", ["blob", "speckle", "ring"])
def test_refinement_boxes_equal_nninteractive(name):
    pytest.importorskip("nnInteractive")
    from nnInteractive.utils.bboxes import generate_bounding_boxes

    mask = _random_masks()[name]
    for patch in ((64, 64, 64), (96, 80, 64)):
        np.random.seed(PLANNER_SEED)
        ref = generate_bounding_boxes(torch.from_numpy(mask.copy()), patch, stride="auto", margin=(24, 24, 24),
                                      max_depth=3)
        ours = cover(mask, patch, (24, 24, 24), np.random.RandomState(PLANNER_SEED))
        assert ours == ref
        assert len(ours) >= 1


# ------------------------------------------------------------------------------------------------
# The engine on its own: model folder, safety, licence, memory, protocol.
# ------------------------------------------------------------------------------------------------
def test_model_folder_exposes_license_and_capability(model):
    m = load_model_folder(model)
    assert m.license == "CC0 1.0 (random test weights)"
    assert "Not a trained model" in m.license_text
    assert m.patch_size == (64, 64, 64) and m.in_channels == 8
    assert m.capability.decay == 0.98 and m.capability.prev_seg == 0
    assert m.spec.class_name == "ResidualEncoderUNet"
    engine = create_engine(model=model.parent, device="cpu")  # the folder holding the model folder works too
    assert engine.license == m.license and engine.name == "nninteractive"


def test_legacy_info_file_and_missing_license(tmp_path):
    folder = write_nninteractive_folder(tmp_path / "m", features=(16, 16, 16), license_text=None, legacy_info=True,
                                        info={"interaction_decay": 0.9, "point_radius": 3})
    m = load_model_folder(folder)
    assert m.license is None and m.license_text is None
    assert (m.capability.decay, m.capability.point_radius) == (0.9, 3)
    (folder / "inference_session_class.json").write_text('"nnInteractiveInferenceSession"')
    assert load_model_folder(folder).capability.decay == 0.9  # the oldest format: just a class name


@pytest.mark.parametrize("remove, message", [
    ("plans.json", "missing plans.json"),
    ("inference_info.json", r"missing inference_info.json \(or inference_session_class.json\)"),
    ("fold_0", "missing fold_0/checkpoint_final.pth"),
])
def test_incomplete_folder_is_named(model, tmp_path, remove, message):
    folder = tmp_path / "m"
    shutil.copytree(model, folder)
    target = folder / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(InvalidModelError, match=message) as info:
        NNInteractiveEngine(folder, device="cpu")
    assert "\n" not in str(info.value)


def test_checkpoint_not_matching_its_plans(model, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(model, folder)
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"][0] = 32
    (folder / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(InvalidModelError, match="does not match the network its plans describe: .*wrong shape") as info:
        load_model_folder(folder)
    assert "\n" not in str(info.value)


def test_newer_inference_class_is_refused(model, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(model, folder)
    (folder / "inference_info.json").write_text('{"inference_class_min_version": "3.0.0"}')
    with pytest.raises(InvalidModelError, match=r"needs nnInteractive >= 3.0.0"):
        load_model_folder(folder)


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_executing_checkpoint_is_refused(model, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(model, folder)
    path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(path, weights_only=False)  # our own file, written by the fixture
    marker = tmp_path / "pwned"
    ckpt["init_args"]["plans"] = _RunsCode(marker)
    torch.save(ckpt, path)
    # control: nnInteractive's own loader (weights_only=False) would run it
    code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
    assert marker.exists(), "the payload does not run under weights_only=False: the test proves nothing"
    marker.unlink()
    with pytest.raises(UnsafeCheckpointError, match="Refusing to load .*system"):
        NNInteractiveEngine(folder, device="cpu")
    assert not marker.exists()


def test_engine_holds_prompts_not_volumes(model, ct):
    engine = NNInteractiveEngine(model, device="cpu", autozoom=False)
    engine.set_image(medsegai.Image(ct))
    mask = np.zeros(ct.shape, np.uint8)
    prompts = []
    for p in (Prompt("point", True, point=(56, 50, 60)), _scribble(), Prompt("point", False, point=(57, 52, 61))):
        prompts.append(p)
        up = engine.predict(list(prompts), mask)
        mask[up.region] = up.values
        assert up.values.shape == tuple(s.stop - s.start for s in up.region)
    # nnInteractive would hold 7 float16 channels and a float32 image, 18 bytes a voxel (25 MB here)
    assert engine.state_bytes() < 20_000
    # replaying the prompt list (what the session does after undo/redo) gives the same prediction
    nxt = Prompt("point", True, point=(60, 55, 62))
    a = engine.predict(prompts + [nxt], mask)
    engine.sync(prompts, mask)
    b = engine.predict(prompts + [nxt], mask)
    fresh = NNInteractiveEngine(model, device="cpu", autozoom=False)
    fresh.set_image(medsegai.Image(ct))
    c = fresh.predict(prompts + [nxt], mask)  # no sync at all: rebuilt from the list
    assert a.region == b.region == c.region
    assert np.array_equal(a.values, b.values) and np.array_equal(a.values, c.values)


def test_unsupported_prompts_change_nothing(model, ct):
    engine = NNInteractiveEngine(model, device="cpu", autozoom=False)
    engine.set_image(medsegai.Image(ct))
    mask = np.zeros(ct.shape, np.uint8)
    with pytest.raises(InteractiveError, match="2D boxes only"):
        engine.predict([Prompt("box", True, box=((10, 20), (10, 20), (10, 20)))], mask)
    assert engine.state_bytes() == 0 and engine._channels.intensity == 1.0
    engine.close()
    with pytest.raises(RuntimeError):
        engine.predict([Prompt("point", True, point=(5, 5, 5))], mask)
