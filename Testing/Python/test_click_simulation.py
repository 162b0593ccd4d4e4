"""The click simulator: deepest points, the largest error region, Dice and NoC."""
from __future__ import annotations

import numpy as np

from medsegai.interactive.click_simulation import ClickRun, deepest_point, dice, next_click, simulate_clicks


def _ball(shape, centre, radius):
    k, j, i = np.indices(shape)
    return ((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2 <= radius ** 2).astype(np.uint8)


def test_deepest_point_is_the_centre_of_a_ball_in_millimetres():
    ball = _ball((30, 40, 50), (12, 20, 31), 6)
    assert deepest_point(ball) == (12, 20, 31)
    assert deepest_point(np.zeros((4, 4, 4), np.uint8)) is None
    # A plate (9 x 9 voxels in k, j; 3 in i) joined to a rod (3 x 3 in k, j; 9 in i): which is deeper
    # depends on the voxel size, and the simulator clicks where a user would, in millimetres.
    shape = np.zeros((11, 11, 16), np.uint8)
    shape[1:10, 1:10, 1:4] = 1
    shape[4:7, 4:7, 4:13] = 1
    assert deepest_point(shape, spacing_kji=(1.0, 1.0, 3.0))[2] < 4  # the plate
    assert deepest_point(shape, spacing_kji=(3.0, 3.0, 1.0))[2] >= 6  # the rod


def test_next_click_goes_to_the_largest_error_and_has_the_reference_sign():
    ref = _ball((40, 40, 40), (20, 20, 20), 10)
    pred = ref.copy()
    pred[_ball(ref.shape, (20, 20, 20), 4).astype(bool)] = 0  # a large hole: positive click there
    pred[0:2, 0:2, 0:2] = 1  # a small false positive elsewhere
    point, positive = next_click(pred, ref)
    assert positive and point == (20, 20, 20)
    assert next_click(ref, ref) is None


def test_simulated_session_reaches_the_object_and_counts_clicks():
    ref = _ball((40, 40, 40), (20, 18, 22), 8)
    state = {"mask": np.zeros_like(ref)}

    def add_point(point, positive):  # a toy "engine": grows a ball of radius 5 per click
        b = _ball(ref.shape, point, 5).astype(bool)
        state["mask"][b] = 1 if positive else 0

    run = simulate_clicks(add_point, lambda: state["mask"], ref, clicks=20)
    assert run.dice[0] == dice(_ball(ref.shape, (20, 18, 22), 5), ref)
    assert all(b >= a - 0.2 for a, b in zip(run.dice, run.dice[1:]))
    assert run.noc(0.85) <= 20 and len(run.seconds) == len(run.dice)
    assert ClickRun(dice=[0.5, 0.7, 0.86, 0.91]).noc(0.85) == 3
    assert ClickRun(dice=[0.5, 0.7]).noc(0.9) == 20 and ClickRun(dice=[0.5, 0.7]).dice_at(5) == 0.7
