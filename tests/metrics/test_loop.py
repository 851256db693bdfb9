"""Loop metrics against hand-computed numbers (pure numpy, milliseconds)."""

import json

import numpy as np
import pytest

from aiida_reactmlip.metrics.loop import (
    area_under_curve,
    compare_to_random,
    labels_this_round,
    labels_to_target,
    mean_curve,
    stop_reason,
)

N = [0, 2, 4, 6, 8]
NOISY = [0.30, 0.18, 0.09, 0.12, 0.08]  # eV/Å: dips below 0.10 at 4 labels, back above at 6


def test_labels_to_target_first_and_sustained():
    assert labels_to_target(N, NOISY, 0.10) == 4
    assert labels_to_target(N, NOISY, 0.10, sustained=True) == 8
    assert labels_to_target(N, NOISY, 0.30) == 0  # the zero-shot model already meets it
    assert labels_to_target(N, NOISY, 0.05) is None
    assert labels_to_target(N, NOISY, 0.05, sustained=True) is None
    assert labels_to_target(N, NOISY, 0.09) == 4  # equality counts as reached


@pytest.mark.parametrize(
    ("n", "err", "match"),
    [([0, 2], [0.1], "2 label counts but 1 errors"), ([2, 2], [0.1, 0.2], "increase strictly"),
     ([0, 2], [0.1, float("nan")], "finite"), ([], [], "empty"), ([-1, 2], [0.1, 0.2], ">= 0")],
)
def test_bad_curves_are_refused_with_the_reason(n, err, match):
    with pytest.raises(ValueError, match=match):
        labels_to_target(n, err, 0.1)


def test_area_under_curve_is_the_trapezoid_mean():
    # trapezoids: (0.30+0.18)/2*2 + (0.18+0.09)/2*2 = 0.48 + 0.27 = 0.75 over 4 labels
    assert area_under_curve(N, NOISY, upto=4) == pytest.approx(0.75 / 4)
    # up to 3: interpolated 0.135 at 3; 0.48 + (0.18+0.135)/2 = 0.6375 over 3
    assert area_under_curve(N, NOISY, upto=3) == pytest.approx(0.6375 / 3)
    assert area_under_curve([5], [0.2]) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="outside"):
        area_under_curve(N, NOISY, upto=10)


def test_mean_curve_keeps_shared_label_counts():
    grid, mean, std = mean_curve([([0, 2, 4], [0.3, 0.2, 0.1]), ([0, 2, 4, 6], [0.3, 0.1, 0.1, 0.05])])
    assert grid.tolist() == [0, 2, 4]
    np.testing.assert_allclose(mean, [0.3, 0.15, 0.1])
    np.testing.assert_allclose(std, [0.0, 0.05, 0.0])
    with pytest.raises(ValueError, match="share no label count"):
        mean_curve([([0, 2], [0.3, 0.2]), ([1, 3], [0.3, 0.2])])


def test_compare_to_random_counts_labels_and_wins():
    loop = [([0, 2, 4, 6], [0.30, 0.12, 0.08, 0.07]), ([0, 2, 4, 6], [0.30, 0.15, 0.11, 0.09])]
    rand = [([0, 2, 4, 6], [0.30, 0.20, 0.14, 0.09]), ([0, 2, 4, 6], [0.30, 0.16, 0.12, 0.11])]
    result = compare_to_random(loop, rand, 0.10)
    assert result["loop_labels"] == [4, 6]
    assert result["random_labels"] == [6, None]
    assert result["loop_wins"] == 2 and result["random_wins"] == 0 and result["ties"] == 0
    # mean curves: loop [0.30, 0.135, 0.095, 0.08] -> 4; random [0.30, 0.18, 0.13, 0.10] -> 6
    assert result["loop_labels_mean"] == 4
    assert result["random_labels_mean"] == 6
    assert result["loop_auc"] < result["random_auc"]
    assert result["budget"] == 6
    assert result["verdict"] == "the loop reached 0.1 with 4 labels, random selection needed 6"
    assert json.loads(json.dumps(result)) == result


def test_compare_to_random_says_when_the_loop_loses_or_nobody_reaches():
    loop = [([0, 2, 4], [0.3, 0.2, 0.09])]
    rand = [([0, 2, 4], [0.3, 0.09, 0.08])]
    result = compare_to_random(loop, rand, 0.1)
    assert result["random_wins"] == 1
    assert result["verdict"].startswith("the loop did not beat random: it needed 4")
    none = compare_to_random(loop, rand, 0.01)
    assert none["loop_labels"] == [None] and none["random_labels"] == [None]
    assert none["verdict"].startswith("neither")
    with pytest.raises(ValueError, match="seed by seed"):
        compare_to_random(loop, rand + rand, 0.1)


def test_labels_this_round_respects_budget_and_pool():
    assert labels_this_round(4, n_labels=0) == 4
    assert labels_this_round(4, n_labels=18, max_dft_labels=20) == 2
    assert labels_this_round(4, n_labels=20, max_dft_labels=20) == 0
    assert labels_this_round(4, n_labels=0, pool_left=3) == 3
    with pytest.raises(ValueError, match="positive integer"):
        labels_this_round(0, n_labels=0)


def test_stop_reason_order_and_targets():
    common = {"target_force_mae": 0.1, "max_dft_labels": 10, "max_rounds": 3}
    assert stop_reason(n_rounds=1, n_labels=2, force_mae=0.2, **common) is None
    assert stop_reason(n_rounds=1, n_labels=2, force_mae=0.1, **common) == "target"
    assert stop_reason(n_rounds=1, n_labels=10, force_mae=0.2, **common) == "budget"
    assert stop_reason(n_rounds=3, n_labels=6, force_mae=0.2, **common) == "max_rounds"
    assert stop_reason(n_rounds=1, n_labels=6, force_mae=0.2, pool_left=0, **common) == "pool_exhausted"
    # both targets must be met
    both = {"target_force_mae": 0.1, "target_energy_mae": 0.01}
    assert stop_reason(n_rounds=1, n_labels=2, force_mae=0.05, energy_mae=0.02, **both) is None
    assert stop_reason(n_rounds=1, n_labels=2, force_mae=0.05, energy_mae=0.005, **both) == "target"
    assert stop_reason(n_rounds=1, n_labels=2, force_mae=None, **common) is None


def test_stop_reason_barrier_check_comes_first():
    common = {"max_dft_labels": 10, "max_rounds": 3, "target_barrier_error": 0.05}
    assert stop_reason(n_rounds=1, n_labels=2, barrier_error=0.08, **common) is None
    assert stop_reason(n_rounds=1, n_labels=2, barrier_error=-0.04, **common) == "barrier"  # |error| counts
    assert stop_reason(n_rounds=3, n_labels=10, barrier_error=0.05, **common) == "barrier"
    assert stop_reason(n_rounds=3, n_labels=10, barrier_error=0.06, **common) == "budget"
    assert stop_reason(n_rounds=1, n_labels=2, barrier_error=None, **common) is None


# ---------------------------------------------------------------------------- barrier loop: saddle check
def test_saddle_image_is_the_highest_interior_image():
    from aiida_reactmlip.metrics.loop import saddle_image

    assert saddle_image([-10.0, -9.7, -9.5, -9.9, -10.2]) == 2
    # A downhill band: the highest image overall is the initial state, the saddle the highest in between.
    assert saddle_image([0.0, -0.2, -0.1, -0.5]) == 2
    with pytest.raises(ValueError, match="at least one image between"):
        saddle_image([0.0, 1.0])
    with pytest.raises(ValueError, match="non-finite energy at image 1"):
        saddle_image([0.0, float("nan"), 0.0])


def test_saddle_check_by_hand():
    from aiida_reactmlip.metrics.loop import saddle_check

    # model: -10.0 -> -9.7 (0.30 eV); DFT at the same geometries: -50.0 -> -49.62 (0.38 eV)
    check = saddle_check(model_initial=-10.0, model_saddle=-9.7, dft_initial=-50.0, dft_saddle=-49.62)
    assert check["model_barrier_eV"] == pytest.approx(0.30)
    assert check["dft_barrier_eV"] == pytest.approx(0.38)
    assert check["barrier_error_eV"] == pytest.approx(-0.08)
    assert check["barrier_abs_error_eV"] == pytest.approx(0.08)
    assert json.loads(json.dumps(check)) == check
    with pytest.raises(ValueError, match="dft_saddle is nan"):
        saddle_check(0.0, 0.1, 0.0, float("nan"))
