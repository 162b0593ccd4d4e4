"""``InteractiveSession`` on a real CT with TotalSegmentator's reference labels.

Every prompt kind runs the real classical engine on TotalSegmentator's abdomen-pelvis example CT
(122x101x112, 3 mm) and is checked against the reference organs. Only the tests about the
session's own bookkeeping (which engine calls happen, with which prompts) use ``RecordingEngine``,
a tiny deterministic engine defined here, because they are about the session and not about an
engine's output.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage as ndi

from medsegai import Image, InvalidImageError, MedSegAIError
from medsegai.interactive import (EngineUnavailableError, InteractiveError, InteractiveSession, StructureNotFoundError,
                                  UnknownStructureError)
from medsegai.interactive.engine import Update
from medsegai.interactive.names import choose, lookup
from medsegai.io.read import read_image

SPLEEN, KIDNEY_RIGHT, LIVER = 1, 2, 5


@pytest.fixture(scope="module")
def ct(ts_ref) -> Image:
    return read_image(ts_ref / "example_ct.nii.gz")


@pytest.fixture(scope="module")
def ref(ts_ref, ct) -> np.ndarray:
    labels = read_image(ts_ref / "example_seg_fast_force_split.nii.gz")
    assert labels.same_grid(ct)
    return labels.array


@pytest.fixture
def session(ct) -> InteractiveSession:
    s = InteractiveSession(engine="classical")
    s.set_image(ct)
    return s


def deepest(mask: np.ndarray, spacing=(3.0, 3.0, 3.0)):
    d = ndi.distance_transform_edt(mask, sampling=spacing)
    return tuple(int(x) for x in np.unravel_index(np.argmax(d), d.shape))


def dice(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))


def bbox(mask):
    return tuple((int(s.start), int(s.stop)) for s in ndi.find_objects(mask.astype(np.uint8))[0])


def changed_within(before, after, region) -> bool:
    outside = np.ones(before.shape, bool)
    outside[region] = False
    return np.array_equal(before[outside], after[outside])


def state(s: InteractiveSession):
    return s.mask.copy(), s.prompts, s.history_nbytes, s.can_undo, s.can_redo


def assert_same_state(before, s: InteractiveSession):
    mask, prompts, nbytes, can_undo, can_redo = before
    np.testing.assert_array_equal(s.mask, mask)
    assert s.prompts == prompts and s.history_nbytes == nbytes
    assert (s.can_undo, s.can_redo) == (can_undo, can_redo)


# -- every prompt kind on a real organ --------------------------------------------------------------
def test_point_inside_spleen_grows_a_blob_on_the_spleen(session, ref):
    spleen = ref == SPLEEN
    region = session.add_point(deepest(spleen))
    mask = session.mask.astype(bool)
    assert mask.dtype == bool and session.mask.dtype == np.uint8
    assert np.count_nonzero(mask) > 200  # a blob, not the clicked voxel
    assert np.count_nonzero(mask & spleen) / np.count_nonzero(mask) > 0.8
    assert dice(mask, spleen) > 0.3
    assert changed_within(np.zeros_like(mask), mask, region)


def test_negative_point_removes_voxels_near_it_only(session, ref):
    spleen = ref == SPLEEN
    leaky = ndi.binary_dilation(spleen, iterations=3)  # a segment that leaked 9 mm into its surroundings
    session.set_mask(leaky.astype(np.uint8))
    ring = leaky & ~ndi.binary_dilation(spleen, iterations=1)
    click = deepest(ring)
    before = session.mask.copy()
    region = session.add_point(click, positive=False)
    after = session.mask.astype(bool)
    removed = before.astype(bool) & ~after
    assert after[click] == 0 and np.count_nonzero(removed) > 100
    assert not np.any(after & ~before.astype(bool))  # a negative click never adds
    assert changed_within(before, session.mask, region)
    assert dice(after, spleen) > dice(before, spleen)  # the edit moved towards the organ


def test_box_limits_the_mask_and_finds_the_organ(session, ref):
    for value in (SPLEEN, KIDNEY_RIGHT):
        organ = ref == value
        box = bbox(organ)
        session.reset()
        session.add_box(box)
        inside = np.zeros(organ.shape, bool)
        inside[tuple(slice(a, b) for a, b in box)] = True
        assert not np.any(session.mask.astype(bool) & ~inside)
        assert dice(session.mask, organ) > 0.6


def test_2d_box_on_one_slice_segments_through_neighbouring_slices(session, ref):
    spleen = ref == SPLEEN
    k = int(np.argmax(spleen.sum(axis=(1, 2))))
    (j0, j1), (i0, i1) = bbox(spleen[k])
    session.add_box(((k, k + 1), (j0, j1), (i0, i1)))
    mask = session.mask.astype(bool)
    assert dice(mask[k], spleen[k]) > 0.7
    assert mask[k - 2].any() and mask[k + 2].any()  # 3D, not just the slice
    assert not mask[:, :j0].any() and not mask[:, j1:].any() and not mask[:, :, :i0].any() and not mask[:, :, i1:].any()


def test_scribble_and_lasso_add_and_remove_where_drawn(session, ref):
    liver = ref == LIVER
    k = int(np.argmax(liver.sum(axis=(1, 2))))
    core = ndi.binary_erosion(liver[k], iterations=4)
    stroke = np.zeros(liver.shape, np.uint8)
    jj, ii = np.nonzero(core)
    stroke[k, jj[::7], ii[::7]] = 1
    session.add_scribble(stroke)
    mask = session.mask.astype(bool)
    assert mask[stroke.astype(bool)].all()
    assert np.count_nonzero(mask & liver) / np.count_nonzero(mask) > 0.8

    before = session.mask.copy()
    (j0, j1), (i0, i1) = bbox(core)
    lasso = np.zeros((1, j1 - j0, i1 - i0), np.uint8)
    lasso[0, : (j1 - j0) // 2, : (i1 - i0) // 2] = 1
    region = session.add_lasso(lasso, positive=False, offset=(k, j0, i0))
    assert not session.mask[k, j0:j0 + (j1 - j0) // 2, i0:i0 + (i1 - i0) // 2].any()
    assert np.count_nonzero(session.mask) < np.count_nonzero(before)
    assert changed_within(before, session.mask, region)


def test_scribble_crop_with_offset_equals_the_full_grid_form(ct, ref):
    spleen = ref == SPLEEN
    k, j, i = deepest(spleen)
    full = np.zeros(spleen.shape, np.uint8)
    full[k, j - 2:j + 3, i] = 1
    a, b = InteractiveSession(engine="classical"), InteractiveSession(engine="classical")
    a.set_image(ct)
    b.set_image(ct)
    a.add_scribble(full)
    b.add_scribble(np.ones((1, 5, 1), np.uint8), offset=(k, j - 2, i))
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.prompts[0].mask.shape == (1, 5, 1)  # history holds the stroke, not a full-size copy


def test_set_mask_then_negative_click_edits_the_existing_segment(session, ref):
    kidney = (ref == KIDNEY_RIGHT).astype(np.uint8)
    region = session.set_mask(kidney)
    np.testing.assert_array_equal(session.mask, kidney)
    assert changed_within(np.zeros_like(kidney), session.mask, region)
    click = deepest(kidney.astype(bool))
    session.add_point(click, positive=False)
    mask = session.mask.astype(bool)
    assert mask[click] == 0 and 0 < np.count_nonzero(mask) < kidney.sum()
    assert not np.any(mask & ~kidney.astype(bool))
    far = np.ones(kidney.shape, bool)
    far[max(0, click[0] - 20):click[0] + 21] = False  # a negative click reaches 50 mm: 60 mm away is untouched
    np.testing.assert_array_equal(session.mask[far], kidney[far])


# -- undo / redo ----------------------------------------------------------------------------------
def test_undo_redo_many_levels_restore_exact_voxels(session, ref):
    spleen, liver, kidney = ref == SPLEEN, ref == LIVER, ref == KIDNEY_RIGHT
    k = int(np.argmax(liver.sum(axis=(1, 2))))
    stroke = np.zeros(ref.shape, np.uint8)
    stroke[k][ndi.binary_erosion(liver[k], iterations=6)] = 1
    steps = [
        lambda: session.add_point(deepest(spleen)),
        lambda: session.add_point(deepest(liver)),
        lambda: session.add_scribble(stroke),
        lambda: session.add_box(bbox(kidney)),
        lambda: session.add_point(deepest(kidney), positive=False),
        lambda: session.set_mask(spleen.astype(np.uint8)),
        lambda: session.add_point(deepest(spleen & ~ndi.binary_erosion(spleen, iterations=2)), positive=False),
        lambda: session.add_lasso(stroke[k:k + 1], offset=(k, 0, 0)),
    ]
    snapshots = [session.mask.copy()]
    for step in steps:
        step()
        snapshots.append(session.mask.copy())
    assert len({s.tobytes() for s in snapshots}) == len(snapshots)  # every step changed something
    for n in range(len(steps), 0, -1):
        before = session.mask.copy()
        region = session.undo()
        np.testing.assert_array_equal(session.mask, snapshots[n - 1])
        assert changed_within(before, session.mask, region)
    assert session.undo() == (slice(0, 0),) * 3 and not session.can_undo
    for n in range(1, len(steps) + 1):
        session.redo()
        np.testing.assert_array_equal(session.mask, snapshots[n])
    assert session.redo() == (slice(0, 0),) * 3 and not session.can_redo


def test_new_prompt_after_undo_clears_redo(session, ref):
    spleen = ref == SPLEEN
    session.add_point(deepest(spleen))
    session.add_point(deepest(ref == LIVER))
    session.undo()
    assert session.can_redo
    session.add_point(deepest(ref == KIDNEY_RIGHT))
    assert not session.can_redo and len(session.prompts) == 2
    assert session.redo() == (slice(0, 0),) * 3


def test_reset_empties_mask_and_history(session, ref):
    session.add_point(deepest(ref == SPLEEN))
    region = session.reset()
    assert not session.mask.any() and not session.can_undo and not session.can_redo
    assert all(s.stop > s.start for s in region)


def test_history_holds_only_changed_regions(session, ref):
    for value in (SPLEEN, LIVER, KIDNEY_RIGHT):
        session.add_point(deepest(ref == value))
    changed = np.count_nonzero(session.mask)
    assert 0 < session.history_nbytes < 0.25 * 3 * session.mask.nbytes
    assert session.history_nbytes >= 2 * changed  # old and new values of at least the changed voxels


def test_mask_is_read_only(session):
    with pytest.raises(ValueError):
        session.mask[0, 0, 0] = 1


# -- the session's bookkeeping with a deterministic engine -----------------------------------------
class RecordingEngine:
    """Sets the prompt's own voxels (a box's whole interior) and records every call: tests the
    session's bookkeeping (what it asks of an engine), not segmentation quality."""
    name = "recording"

    def __init__(self):
        self.calls = []

    def set_image(self, image):
        self.calls.append(("set_image", image.shape))

    def predict(self, prompts, mask):
        self.calls.append(("predict", len(prompts)))
        p = prompts[-1]
        region = p.region()
        values = np.full(mask[region].shape, 1 if p.positive else 0, np.uint8)
        if p.mask is not None:
            values = np.where(p.mask > 0, values, mask[region])
        return Update(region, values)

    def sync(self, prompts, mask):
        self.calls.append(("sync", tuple(p.kind for p in prompts), int(mask.sum())))

    def close(self):
        self.calls.append(("close",))


@pytest.fixture
def recorded(ct):
    s = InteractiveSession(engine="classical")
    s.engine = RecordingEngine()
    s.set_image(ct)
    return s


def test_sync_after_undo_redo_reset_set_mask_and_no_recompute_on_redo(recorded):
    e = recorded.engine
    recorded.add_point((50, 50, 50))
    recorded.add_box(((10, 20), (10, 20), (10, 20)))
    assert [c[0] for c in e.calls] == ["set_image", "predict", "predict"]
    e.calls.clear()
    recorded.undo()
    recorded.redo()
    full = np.zeros(recorded.image.shape, np.uint8)
    full[0:2, 0:2, 0:2] = 1
    recorded.set_mask(full)
    recorded.undo()
    recorded.reset()
    assert e.calls == [("sync", ("point",), 1), ("sync", ("point", "box"), 1001), ("sync", ("point", "box", "mask"), 8),
                       ("sync", ("point", "box"), 1001), ("sync", (), 0)]


def test_an_engine_failure_leaves_the_mask_and_resyncs(recorded):
    recorded.add_point((50, 50, 50))
    before = state(recorded)

    def broken(prompts, mask):
        raise RuntimeError("engine crashed")

    recorded.engine.predict = broken
    recorded.engine.calls.clear()
    with pytest.raises(RuntimeError):
        recorded.add_point((60, 60, 60))
    assert_same_state(before, recorded)
    assert recorded.engine.calls == [("sync", ("point",), 1)]


def test_a_bad_engine_update_never_reaches_the_mask(recorded):
    before = state(recorded)
    outside = (slice(0, 5), slice(0, 5), slice(0, 500))
    recorded.engine.predict = lambda prompts, mask: Update(outside, np.ones((5, 5, 500)))
    with pytest.raises(RuntimeError, match="outside the image"):
        recorded.add_point((1, 1, 1))
    assert_same_state(before, recorded)


# -- bad input: one clear error, nothing changed ------------------------------------------------------
BAD_PROMPTS = {
    "point outside": (lambda s: s.add_point((112, 0, 0)), "outside the image"),
    "point negative index": (lambda s: s.add_point((-1, 5, 5)), "outside the image"),
    "point not 3 numbers": (lambda s: s.add_point((1, 2)), "3 numbers"),
    "point NaN": (lambda s: s.add_point((float("nan"), 1, 1)), "finite number"),
    "box zero size": (lambda s: s.add_box(((10, 10), (0, 5), (0, 5))), "zero size"),
    "box inverted": (lambda s: s.add_box(((20, 10), (0, 5), (0, 5))), "inverted"),
    "box outside": (lambda s: s.add_box(((100, 120), (0, 5), (0, 5))), "outside the image"),
    "box a line": (lambda s: s.add_box(((10, 11), (0, 1), (0, 5))), "line"),
    "scribble empty": (lambda s: s.add_scribble(np.zeros(s.image.shape, np.uint8)), "empty"),
    "scribble float": (lambda s: s.add_scribble(np.ones(s.image.shape, np.float32)), "dtype float32"),
    "scribble wrong shape": (lambda s: s.add_scribble(np.ones((10, 10, 10), np.uint8)), "shape"),
    "scribble 2D": (lambda s: s.add_scribble(np.ones((10, 10), np.uint8), offset=(0, 0, 0)), "3D"),
    "scribble labels": (lambda s: s.add_scribble(np.full((1, 2, 2), 5, np.uint8), offset=(1, 1, 1)), "only 0 and 1"),
    "scribble offset outside": (lambda s: s.add_scribble(np.ones((1, 2, 2), np.uint8), offset=(0, 100, 0)), "outside"),
    "lasso on two slices": (lambda s: s.add_lasso(np.ones((2, 5, 5), np.uint8), offset=(10, 10, 10)), "one slice"),
    "mask wrong shape": (lambda s: s.set_mask(np.ones((5, 5, 5), np.uint8)), "shape"),
    "mask float": (lambda s: s.set_mask(np.ones(s.image.shape, np.float64)), "dtype"),
    "mask on another grid": (lambda s: s.set_mask(Image(np.ones(s.image.shape, np.uint8), spacing=(1, 1, 1))),
                             "another grid"),
    "positive not bool": (lambda s: s.add_point((5, 5, 5), positive="yes"), "True or False"),
    "text empty": (lambda s: s.add_text("  "), "empty"),
    "text unknown": (lambda s: s.add_text("livr"), "liver"),
}


@pytest.mark.parametrize("name", list(BAD_PROMPTS))
def test_bad_prompt_is_refused_before_anything_changes(session, ref, name):
    session.add_point(deepest(ref == SPLEEN))
    session.add_point(deepest(ref == LIVER))
    session.undo()  # a redo entry too: a refused prompt must not clear it
    before = state(session)
    call, message = BAD_PROMPTS[name]
    with pytest.raises(InteractiveError, match=message):
        call(session)
    assert_same_state(before, session)


@pytest.mark.parametrize("array, message", [
    (np.zeros((10, 10), np.float32), "2D"),
    (np.zeros((4, 10, 10, 2), np.float32), "4D"),
    (np.where(np.arange(1000).reshape(10, 10, 10) == 5, np.nan, 0.0), "NaN"),
])
def test_bad_image_is_refused_and_the_session_keeps_its_image(session, ref, array, message):
    session.add_point(deepest(ref == SPLEEN))
    before, image = state(session), session.image
    with pytest.raises(InvalidImageError, match=message):
        session.set_image(Image(array))
    assert session.image is image
    assert_same_state(before, session)


def test_prompt_before_set_image_and_bare_arrays_are_refused():
    s = InteractiveSession(engine="classical")
    for call in (lambda: s.add_point((1, 1, 1)), lambda: s.undo(), lambda: s.mask, lambda: s.add_text("liver")):
        with pytest.raises(InteractiveError, match="set_image"):
            call()
    with pytest.raises(InteractiveError, match="medsegai.Image"):
        s.set_image(np.zeros((10, 10, 10)))


def test_set_image_from_a_path(ts_ref):
    s = InteractiveSession(engine="classical")
    s.set_image(ts_ref / "example_ct_sm.nii.gz")
    assert s.mask.shape == s.image.shape == (30, 101, 122) and not s.mask.any()


# -- engines -------------------------------------------------------------------------------------
def test_auto_falls_back_to_classical_without_the_click_model(tmp_path, monkeypatch):
    from medsegai.interactive import registry

    monkeypatch.setattr(registry, "click_model_folder", lambda: None)
    auto = InteractiveSession()
    assert auto.engine.name == "classical" and "medsegai_clicks" in auto.engine_note
    # installed, but its engine is not part of this runner: the same fallback, saying why
    monkeypatch.setattr(registry, "click_model_folder", lambda: tmp_path)
    monkeypatch.setitem(registry.ENGINES, "clicks", "medsegai.interactive.no_such_engine:create_engine")
    auto = InteractiveSession()
    assert auto.engine.name == "classical" and "not part of this runner" in auto.engine_note
    with pytest.raises(EngineUnavailableError, match="'clicks' interactive engine is not part of this runner"):
        InteractiveSession(engine="clicks")


def test_engine_choice_and_errors(tmp_path):
    assert InteractiveSession(engine="classical").engine_note is None
    with pytest.raises(EngineUnavailableError, match="Unknown interactive engine 'magic'.*classical"):
        InteractiveSession(engine="magic")
    with pytest.raises(InteractiveError, match="nnInteractive model folder"):
        InteractiveSession(engine="nninteractive")
    with pytest.raises(InteractiveError, match="not an nnInteractive model folder"):
        InteractiveSession(model=tmp_path)
    assert issubclass(InteractiveError, MedSegAIError)


def test_nninteractive_model_folders_are_recognised(tmp_path):
    from medsegai.interactive.registry import nninteractive_folder

    legacy, new = tmp_path / "legacy", tmp_path / "parent" / "nnInteractive_v1.0"
    for folder, info in ((legacy, "inference_session_class.json"), (new, "inference_info.json")):
        folder.mkdir(parents=True)
        (folder / "plans.json").write_text("{}")
        (folder / info).write_text("{}")
    assert nninteractive_folder(legacy) == legacy
    assert nninteractive_folder(tmp_path / "parent") == new  # the folder a download unpacks into
    assert nninteractive_folder(tmp_path / "missing") is None and nninteractive_folder(None) is None
    (tmp_path / "plans_only").mkdir()
    (tmp_path / "plans_only" / "plans.json").write_text("{}")
    assert nninteractive_folder(tmp_path / "plans_only") is None  # an nnU-Net model, not an nnInteractive one


def test_import_is_light():
    code = ("import sys, medsegai.interactive, medsegai.interactive.cli; "
            "print(sorted(m for m in ('torch', 'skimage', 'scipy', 'SimpleITK') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "torch" not in out.stdout and "skimage" not in out.stdout


# -- structure names --------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("liver", ["liver"]), ("Left Kidney", ["kidney_left"]), ("kidney-left", ["kidney_left"]),
    ("KIDNEY_RIGHT", ["kidney_right"]), ("kidney right", ["kidney_right"]), ("spleen", ["spleen"]),
    ("aorta", ["aorta"]), ("IVC", ["inferior_vena_cava"]), ("innominate artery", ["brachiocephalic_trunk"]),
    ("right lung", ["lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right"]),
])
def test_structure_names_and_synonyms(text, expected):
    from medsegai.totalseg.tasks import class_map

    assert choose(lookup(text), set(class_map("total").values())) == expected


def test_a_model_that_names_lungs_gets_the_lung_not_its_lobes():
    assert choose(lookup("right lung"), {"lung_right", "lung_left"}) == ["lung_right"]
    assert choose(lookup("right lung"), {"lung_lower_lobe_right", "liver"}) == ["lung_lower_lobe_right"]


def test_unknown_name_lists_the_closest():
    with pytest.raises(UnknownStructureError, match=r"'spleeen'.*Closest known names: spleen"):
        lookup("spleeen")
    with pytest.raises(UnknownStructureError, match="kidney left"):
        lookup("kidny lft")


@pytest.fixture(scope="module")
def small_ct(ts_ref) -> Image:
    return read_image(ts_ref / "example_ct_sm.nii.gz")


@pytest.fixture(scope="module")
def text_session(small_ct):
    s = InteractiveSession(engine="classical", device="cpu")
    s.set_image(small_ct)
    return s


def test_add_text_liver_is_the_liver_the_bundled_model_finds(text_session, small_ct):
    from medsegai import Predictor

    s = text_session
    s.reset()
    region = s.add_text("Liver")
    result = Predictor(device="cpu").predict(small_ct, roi_subset=["liver"])
    liver_value = next(seg.value for seg in result.segments if seg.name == "liver")
    expected = (result.labels.array == liver_value).astype(np.uint8)
    assert expected.sum() > 10000
    np.testing.assert_array_equal(s.mask, expected)
    assert s.text_structures == ["liver"]
    assert changed_within(np.zeros_like(expected), s.mask, region)
    # clicks refine it, undo goes back to the model's liver, then to nothing
    s.add_point(deepest(expected.astype(bool)), positive=False)
    assert s.mask.sum() < expected.sum()
    s.undo()
    np.testing.assert_array_equal(s.mask, expected)
    s.undo()
    assert not s.mask.any()


def test_second_name_reuses_the_loaded_model(text_session):
    s = text_session
    s.reset()
    s.add_text("spleen")
    predictors = dict(s._text._predictors)
    s.add_text("left kidney")
    assert s._text._predictors == predictors and len(predictors) == 1
    assert s.text_structures == ["kidney_left"] and s.mask.any()


def test_structure_the_model_does_not_find_leaves_the_mask(text_session):
    s = text_session
    s.reset()
    s.add_text("spleen")
    before = state(s)
    with pytest.raises(StructureNotFoundError, match="found no 'left femur'"):
        s.add_text("left femur")  # the bundled model knows it; these upper-abdomen slices hold none
    assert_same_state(before, s)
    with pytest.raises(UnknownStructureError, match="does not segment 'heart'"):
        s.add_text("heart")  # a TotalSegmentator name the bundled model never learned
    assert_same_state(before, s)
