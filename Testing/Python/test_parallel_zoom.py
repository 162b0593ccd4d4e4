"""The threaded zoom equals scipy's ``ndimage.zoom`` bit for bit (the exact-mode parity depends on it),
on a real CT and on odd shapes, for every order, grid mode and thread count the runner uses."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medsegai.inference import parallel_zoom
from medsegai.io.read import read_image


@pytest.fixture(scope="module")
def ct(ts_ref):
    return read_image(ts_ref / "example_ct.nii.gz").array


class _NoPublicZoom:
    """scipy.ndimage for parallel_zoom, minus the public zoom: a test fails if the fallback ran."""

    def __getattr__(self, name):
        if name == "zoom":
            raise AssertionError("parallel_zoom fell back to ndimage.zoom")
        return getattr(ndimage, name)


def _threaded(monkeypatch, fn, *args, **kwargs):
    monkeypatch.setattr(parallel_zoom, "ndimage", _NoPublicZoom())
    try:
        return fn(*args, **kwargs)
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("order,grid_mode", [(0, False), (1, False), (3, False), (3, True), (1, True)])
@pytest.mark.parametrize("threads", [2, 3])
def test_equals_scipy_bit_for_bit_on_a_real_ct(ct, order, grid_mode, threads, monkeypatch):
    data = ct.T.astype(np.float64)  # TotalSegmentator's (i, j, k) order and dtype
    for factors in ((0.5, 0.47, 1.0), (1.31, 0.77, 0.5)):
        want = ndimage.zoom(data, factors, order=order, mode="nearest", grid_mode=grid_mode)
        got = _threaded(monkeypatch, parallel_zoom.zoom, data, factors, order=order, mode="nearest",
                        grid_mode=grid_mode, threads=threads)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want), (factors, float(np.abs(got - want).max()))


def test_odd_shapes_integer_data_and_the_small_array_path(monkeypatch):
    rng = np.random.default_rng(7)
    big = rng.integers(-1024, 3000, size=(131, 97, 89)).astype(np.int16)
    for order in (0, 1, 3):
        want = ndimage.zoom(big, (0.61, 1.7, 0.33), order=order, mode="nearest")
        got = _threaded(monkeypatch, parallel_zoom.zoom, big, (0.61, 1.7, 0.33), order=order, threads=4)
        assert got.dtype == want.dtype and np.array_equal(got, want), order
    small = rng.random((5, 7, 9))  # under the threshold: scipy's own call
    assert np.array_equal(parallel_zoom.zoom(small, 2.0, order=3, threads=2),
                          ndimage.zoom(small, 2.0, order=3, mode="nearest"))
    assert np.array_equal(parallel_zoom.zoom(big, 1.0, order=1, threads=2), big)


def test_the_slice_by_slice_resampling_of_anisotropic_data_is_the_same_on_any_thread_count(ct):
    import torch

    from medsegai.inference.resample import resample_image_nnunet

    data = ct[None].astype(np.float32)  # (C, X, Y, Z) with a coarse last axis: nnU-Net's separate-z path
    args = ((1, 60, 80, 61), (1.0, 1.0, 4.0), (1.8, 1.3, 2.0))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = resample_image_nnunet(data, args[0][1:], args[1], args[2])
        torch.set_num_threads(3)
        three = resample_image_nnunet(data, args[0][1:], args[1], args[2])
    finally:
        torch.set_num_threads(before)
    assert one.shape == (1, 60, 80, 61) and np.array_equal(one, three)
