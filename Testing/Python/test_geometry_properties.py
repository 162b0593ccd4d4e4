"""Property-based tests (hypothesis) of the geometry every entry point relies on: RAS/LPS and
IJK-to-RAS conversions of medsegai.Image, SimpleITK round trips, the canonical reorientation and
crop/paste, on random grids (spacings from 0.05 to 50 mm, any rotation, left- and right-handed)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from medsegai.inference.crop import crop_image, paste
from medsegai.inference.orientation import from_canonical, to_canonical
from medsegai.io.image import Image

FLIP_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

spacings = st.tuples(*[st.floats(0.05, 50.0, allow_nan=False)] * 3)
origins = st.tuples(*[st.floats(-1000.0, 1000.0, allow_nan=False)] * 3)
shapes = st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 7))


@st.composite
def directions(draw):
    """Any rotation, optionally with one axis mirrored (a left-handed grid)."""
    quat = draw(st.tuples(*[st.floats(-1, 1, allow_nan=False)] * 4).filter(lambda q: np.linalg.norm(q) > 0.1))
    m = Rotation.from_quat(quat).as_matrix()
    if draw(st.booleans()):
        m = m @ np.diag([1.0, 1.0, -1.0])
    return m


@st.composite
def images(draw):
    shape = draw(shapes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return Image(rng.integers(-1000, 1000, shape).astype(np.int16), draw(spacings), draw(origins), draw(directions()))


def _world(image: Image, kji) -> np.ndarray:
    k, j, i = kji
    return (image.ijk_to_lps() @ np.array([i, j, k, 1.0]))[:3]


@settings(max_examples=150, deadline=None)
@given(images())
def test_ijk_to_ras_is_ijk_to_lps_with_x_and_y_negated_and_round_trips(image):
    ras = image.ijk_to_ras()
    np.testing.assert_array_equal(ras, FLIP_TO_RAS @ image.ijk_to_lps())
    back = Image.from_ijk_to_ras(image.array, ras)
    np.testing.assert_allclose(back.spacing, image.spacing, rtol=1e-12)
    np.testing.assert_allclose(back.origin, image.origin, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.direction, image.direction, rtol=0, atol=1e-12)
    np.testing.assert_allclose(back.ijk_to_ras(), ras, rtol=0, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(images())
def test_simpleitk_round_trip_keeps_voxels_and_geometry(image):
    back = Image.from_sitk(image.to_sitk())
    np.testing.assert_array_equal(back.array, image.array)
    np.testing.assert_allclose(back.ijk_to_lps(), image.ijk_to_lps(), rtol=0, atol=1e-9)


@settings(max_examples=150, deadline=None)
@given(images())
def test_canonical_reorientation_moves_no_voxel_in_space_and_undoes_exactly(image):
    canon, ro = to_canonical(image)
    np.testing.assert_array_equal(from_canonical(canon.array, ro), image.array)
    # the canonical grid's axes point (mostly) right, anterior, superior
    assert np.all(np.diag(canon.ijk_to_ras()[:3, :3] / np.asarray(canon.spacing)) > 0) or min(image.shape) == 1
    # every voxel keeps its value at its physical position
    rng = np.random.default_rng(0)
    for _ in range(5):
        kji = tuple(int(rng.integers(0, n)) for n in canon.shape)
        world = _world(canon, kji)
        ijk = np.linalg.solve(image.ijk_to_lps()[:3, :3], world - np.asarray(image.origin))
        src = tuple(int(round(v)) for v in ijk[::-1])
        np.testing.assert_allclose(ijk[::-1], src, atol=1e-6)
        assert canon.array[kji] == image.array[src]


@st.composite
def image_and_box(draw):
    image = draw(images())
    box = []
    for n in image.shape:
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, n))
        box.append(slice(a, b))
    return image, tuple(box)


@settings(max_examples=150, deadline=None)
@given(image_and_box(), st.integers(-5, 5))
def test_crop_keeps_every_voxel_in_place_and_paste_restores_it_exactly(image_box, fill):
    image, box = image_box
    part = crop_image(image, box)
    np.testing.assert_array_equal(part.array, image.array[box])
    corner = tuple(s.start for s in box)
    np.testing.assert_allclose(_world(part, (0, 0, 0)), _world(image, corner), rtol=0, atol=1e-9)
    whole = paste(part.array, box, image.shape, fill=fill)
    np.testing.assert_array_equal(whole[box], image.array[box])
    outside = np.ones(image.shape, bool)
    outside[box] = False
    assert np.all(whole[outside] == fill)


@pytest.mark.parametrize("classes", [1, 3])
@settings(max_examples=40, deadline=None)
@given(image_and_box())
def test_paste_with_leading_class_axis_and_per_class_fill(classes, image_box):
    image, box = image_box
    part = np.stack([image.array[box] + c for c in range(classes)])
    fills = np.arange(classes, dtype=part.dtype) * 7
    whole = paste(part, box, image.shape, fill=fills, leading=1)
    np.testing.assert_array_equal(whole[(slice(None),) + box], part)
    outside = np.ones(image.shape, bool)
    outside[box] = False
    for c in range(classes):
        assert np.all(whole[c][outside] == fills[c])
