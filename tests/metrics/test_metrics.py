"""Metrics against hand-computed numbers (pure numpy, milliseconds)."""

import json

import numpy as np
import pytest
from ase import units

from aiida_reactmlip.metrics import (
    apply_elemental_references,
    compare,
    energy_metrics,
    fit_elemental_references,
    force_metrics,
    paired_relative_energies,
    reference_indices,
    relative_energies,
    stress_metrics,
)

DFT = np.array([-10.0, -10.5, -9.0, -10.2])  # eV; lowest DFT frame is 1


def test_constant_offset_gives_zero_relative_error_while_totals_differ():
    pred = DFT + 123.456
    assert np.all(np.abs(pred - DFT) > 100)  # raw totals are far apart
    for reference in ("relative:min", "relative:mean"):
        m = energy_metrics(DFT, pred, n_atoms=[2, 2, 2, 2], reference=reference)
        assert m["energy_mae"] == pytest.approx(0.0, abs=1e-12)
        assert m["energy_rmse_per_atom"] == pytest.approx(0.0, abs=1e-12)
        assert m["energy_max_abs_error"] == pytest.approx(0.0, abs=1e-12)
        assert m["energy_reference_key"] == reference


def test_relative_min_uses_the_dft_minimum_frame_for_both():
    # The model's own minimum is frame 0, DFT's is frame 1: the shift must be pred[1].
    pred = np.array([-20.0, -19.0, -18.0, -18.5])
    ref = reference_indices(DFT)
    assert ref == {0: 1}
    dft_rel, pred_rel, ref2 = paired_relative_energies(DFT, pred)
    assert ref2 == ref
    np.testing.assert_allclose(dft_rel, [0.5, 0.0, 1.5, 0.3])
    np.testing.assert_allclose(pred_rel, [-1.0, 0.0, 1.0, 0.5])
    np.testing.assert_allclose(relative_energies(pred, reference_index=ref), pred_rel)
    # Without the DFT index the model would be shifted by its own minimum: not what we compare.
    assert not np.allclose(relative_energies(pred), pred_rel)


def test_hand_computed_mae_rmse_reference_frame_excluded():
    pred = np.array([-20.0, -19.0, -18.0, -18.5])
    # errors (pred_rel - dft_rel): frame0 -1.5, frame2 -0.5, frame3 0.2 (frame1 is the reference)
    m = energy_metrics(DFT, pred, n_atoms=[2, 2, 2, 2])
    assert m["n_frames_compared"] == 3
    assert m["n_frames_total"] == 4
    assert m["energy_mae"] == pytest.approx((1.5 + 0.5 + 0.2) / 3)
    assert m["energy_rmse"] == pytest.approx(np.sqrt((1.5**2 + 0.5**2 + 0.2**2) / 3))
    assert m["energy_max_abs_error"] == pytest.approx(1.5)
    assert m["energy_mae_per_atom"] == pytest.approx((1.5 + 0.5 + 0.2) / 3 / 2)
    assert m["energy_rmse_per_atom"] == pytest.approx(np.sqrt((0.75**2 + 0.25**2 + 0.1**2) / 3))
    assert "lowest-DFT-energy frame of each group" in m["energy_reference"]


def test_relative_mean_hand_computed():
    dft = np.array([1.0, 2.0, 3.0])
    pred = np.array([10.0, 10.0, 13.0])
    # dft - mean: -1, 0, 1 ; pred - mean: -1, -1, 2 ; errors 0, -1, 1
    m = energy_metrics(dft, pred, n_atoms=[1, 1, 1], reference="relative:mean")
    assert m["n_frames_compared"] == 3
    assert m["energy_mae"] == pytest.approx(2 / 3)
    assert m["energy_rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert "group mean" in m["energy_reference"]


def test_groups_are_referenced_separately():
    dft = np.array([0.0, 1.0, 100.0, 101.5])
    pred = np.array([50.0, 51.0, -7.0, -5.0])  # offsets differ per group
    groups = ["a", "a", "b", "b"]
    m = energy_metrics(dft, pred, n_atoms=[2, 2, 3, 3], groups=groups)
    assert m["n_groups"] == 2
    assert m["n_frames_compared"] == 2
    # group a: error 0; group b: pred rel 2.0 vs dft rel 1.5 -> 0.5 eV, 0.5/3 eV/atom
    assert m["energy_mae"] == pytest.approx(0.25)
    assert m["energy_mae_per_atom"] == pytest.approx((0 + 0.5 / 3) / 2)
    assert m["energy_max_abs_error"] == pytest.approx(0.5)


def test_group_mixing_compositions_is_refused():
    with pytest.raises(ValueError, match="mixes compositions"):
        energy_metrics([0.0, 1.0], [0.0, 1.0], n_atoms=[2, 3])
    with pytest.raises(ValueError, match="mixes compositions"):
        energy_metrics([0.0, 1.0], [0.0, 1.0], n_atoms=[2, 2], numbers=[[1, 1], [8, 8]])


def test_single_frame_groups_leave_nothing_to_compare():
    with pytest.raises(ValueError, match="at least two frames"):
        energy_metrics([0.0, 1.0], [0.0, 1.0], n_atoms=[2, 2], groups=["a", "b"])


def test_elemental_fit_recovers_known_references_exactly():
    rng = np.random.default_rng(1)
    mu = {"H": -3.2, "C": -9.1, "O": -5.4}
    z = {"H": 1, "C": 6, "O": 8}
    numbers = []
    for _ in range(12):
        counts = rng.integers(0, 4, size=3)
        counts[rng.integers(0, 3)] += 1
        numbers.append(sum(([z[s]] * int(c) for s, c in zip(mu, counts)), []))
    energies = np.array([sum(mu[s] * n.count(z[s]) for s in mu) for n in numbers])
    refs = fit_elemental_references(numbers, energies)
    assert set(refs) == set(mu)
    for s in mu:
        assert refs[s] == pytest.approx(mu[s], abs=1e-10)
    np.testing.assert_allclose(apply_elemental_references(numbers, energies, refs), 0.0, atol=1e-10)


def test_elemental_fit_train_mask_and_missing_element():
    numbers = [[1, 1], [8, 8], [1, 8], [6, 8]]
    energies = [-6.0, -10.0, -8.0, -15.0]  # H -3, O -5 exactly; C only in frame 3
    mask = np.array([True, True, True, False])
    refs = fit_elemental_references(numbers, energies, train_mask=mask)
    assert refs == pytest.approx({"H": -3.0, "O": -5.0})
    with pytest.raises(ValueError, match="element C .*frame 3"):
        apply_elemental_references(numbers, energies, refs)


def test_elemental_fit_metrics_held_out():
    numbers = [[1, 1], [8, 8], [1, 8], [1, 1, 8], [1, 8, 8]]
    mu_dft = {1: -3.0, 8: -5.0}
    mu_pred = {1: -2.0, 8: -7.5}  # a different DFT set-up: per-element shifts
    dft = np.array([sum(mu_dft[x] for x in n) for n in numbers]) + [0, 0, 0, -0.3, 0.2]
    pred = np.array([sum(mu_pred[x] for x in n) for n in numbers]) + [0, 0, 0, -0.1, 0.2]
    mask = np.array([True, True, True, False, False])
    m = energy_metrics(dft, pred, n_atoms=None, numbers=numbers, reference="elemental_fit", train_mask=mask)
    assert m["n_frames_compared"] == 2
    assert m["n_frames_train"] == 3
    assert m["energy_mae"] == pytest.approx(0.1)  # errors 0.2 and 0.0
    assert m["energy_max_abs_error_per_atom"] == pytest.approx(0.2 / 3)
    assert m["energy_elemental_offset_H"] == pytest.approx(1.0)
    assert m["energy_elemental_offset_O"] == pytest.approx(-2.5)
    assert "held-out" in m["energy_reference"]


def test_elemental_fit_refuses_compositions_outside_the_training_span():
    numbers = [[6, 8], [6, 8], [8, 8]]  # CO only in training: mu_C + mu_O known, not mu_O alone
    mask = np.array([True, True, False])
    with pytest.raises(ValueError, match="frame 2 \\(O2\\)"):
        energy_metrics([-1.0, -2.0, -3.0], [0.0, 0.0, 0.0], None, numbers=numbers,
                       reference="elemental_fit", train_mask=mask)


def test_forces_rotated_by_90_degrees_have_cosine_zero():
    dft = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.5]])
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 deg about z
    pred = dft @ rot.T
    pred[2] = [0.5, 0.0, 0.0]  # z vector: rotate about y instead
    m = force_metrics(dft, pred)
    assert m["force_cosine_similarity"] == pytest.approx(0.0, abs=1e-12)
    assert m["force_norm_mae"] == pytest.approx(0.0, abs=1e-12)
    assert m["force_cosine_n_atoms"] == 3
    same = force_metrics(dft, dft)
    assert same["force_cosine_similarity"] == pytest.approx(1.0)
    assert same["force_mae"] == 0.0


def test_force_hand_computed_and_small_forces_left_out_of_cosine():
    dft = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    pred = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    m = force_metrics(dft, pred)
    # component errors: -1, 1, 0, 0, 0, 3
    assert m["force_mae"] == pytest.approx(5 / 6)
    assert m["force_rmse"] == pytest.approx(np.sqrt(11 / 6))
    assert m["force_max_abs_error"] == pytest.approx(3.0)
    assert m["force_norm_mae"] == pytest.approx(1.5)
    assert m["force_cosine_n_atoms"] == 1
    assert m["force_cosine_similarity"] == pytest.approx(0.0)
    assert m["n_atoms_compared"] == 2


def test_force_validation_messages():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 3\)"):
        force_metrics(np.zeros((2, 3)), np.zeros((3, 3)))
    bad = [np.zeros((2, 3)), np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]])]
    with pytest.raises(ValueError, match="frame 1, atom 1"):
        force_metrics(bad, [np.zeros((2, 3)), np.zeros((2, 3))])


def test_energy_validation_messages():
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        energy_metrics([0.0, 1.0, 2.0], [0.0, 1.0], n_atoms=[1, 1, 1])
    with pytest.raises(ValueError, match="dft energies .*frame 1"):
        energy_metrics([0.0, np.nan, 2.0], [0.0, 1.0, 2.0], n_atoms=[1, 1, 1])
    with pytest.raises(ValueError, match="reference must be one of"):
        energy_metrics([0.0, 1.0], [0.0, 1.0], n_atoms=[1, 1], reference="absolute")
    with pytest.raises(ValueError, match="train_mask applies only"):
        energy_metrics([0.0, 1.0], [0.0, 1.0], n_atoms=[1, 1], train_mask=np.array([True, False]))


def test_stress_nan_rows_ignored_and_gpa():
    dft = np.array([[0.01, 0.0, 0.0, 0.0, 0.0, 0.0], [np.nan] * 6])
    pred = np.array([[0.013, 0.0, 0.0, 0.0, 0.0, 0.003], [0.5] * 6])
    m = stress_metrics(dft, pred)
    assert m["n_stress_frames_compared"] == 1
    assert m["stress_mae"] == pytest.approx(0.001)
    assert m["stress_mae_gpa"] == pytest.approx(0.001 / units.GPa)
    assert m["stress_mae_gpa"] == pytest.approx(0.16021766, rel=1e-6)
    with pytest.raises(ValueError, match="frame 0"):
        stress_metrics(dft, np.array([[np.nan] * 6, [0.0] * 6]))


def test_compare_is_flat_and_json_able():
    n_atoms = [2, 2, 2]
    dft = {
        "energies": np.array([-1.0, -2.0, -1.5]),
        "forces": [np.array([[0.1, 0, 0], [-0.1, 0, 0]])] * 3,
        "stress": np.full((3, 6), np.nan),
    }
    pred = {
        "energies": dft["energies"] + 7.0,
        "forces": [np.array([[0.2, 0, 0], [-0.2, 0, 0]])] * 3,
        "stress": np.zeros((3, 6)),
    }
    m = compare(dft, pred, n_atoms)
    assert json.loads(json.dumps(m, allow_nan=False)) == m
    assert all(type(v) in (float, int, str) for v in m.values())
    assert m["energy_mae"] == pytest.approx(0.0, abs=1e-12)
    assert m["force_mae"] == pytest.approx(0.1 / 3)
    assert m["n_stress_frames_compared"] == 0
    assert "stress_mae" not in m
    with pytest.raises(ValueError, match="predictions lack \\['forces'\\]"):
        compare(dft, {"energies": pred["energies"], "stress": pred["stress"]}, n_atoms)
    with pytest.raises(ValueError, match="n_atoms sums to 7"):
        compare(dft, pred, [2, 2, 3], groups=["a", "a", "b"])
