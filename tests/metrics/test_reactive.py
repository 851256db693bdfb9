"""Reactive metrics against hand-computed numbers (pure numpy/ASE, milliseconds)."""

import json

import numpy as np
import pytest
from ase import Atoms

from aiida_reactmlip.metrics import (
    adsorption_energy_errors,
    barrier_error,
    reaction_energy_error,
    site_preference,
    structural_stability,
)
from aiida_reactmlip.systems.surfaces import fcc_slab, find_sites, place_adsorbate


def _json(d):
    assert json.loads(json.dumps(d)) == d


# ---------------------------------------------------------------------------- adsorption energies
DFT_ADS = {"fcc": -108.0, "hcp": -107.7}
MODEL_ADS = {"fcc": -58.1, "hcp": -57.6}


def _ads(**kw):
    args = dict(
        dft_slab_adsorbate=DFT_ADS,
        model_slab_adsorbate=MODEL_ADS,
        dft_slab=-100.0,
        model_slab=-50.0,
        dft_references={"H2O": -14.0, "H2": -6.8},
        model_references={"H2O": -14.2, "H2": -6.7, "O2": -9.0},
        adsorbate="O",
    )
    args.update(kw)
    return adsorption_energy_errors(**args)


def test_adsorption_energy_errors_by_hand():
    # DFT: -108 + 100 + (14.0 - 6.8) = -0.8 (fcc), -0.5 (hcp); model: -58.1 + 50 + 7.5 = -0.6, -0.1
    m = _ads()
    _json(m)
    assert m["sites"] == ["fcc", "hcp"]
    assert m["dft_adsorption_energies_eV"] == pytest.approx([-0.8, -0.5])
    assert m["model_adsorption_energies_eV"] == pytest.approx([-0.6, -0.1])
    assert m["adsorption_energy_errors_eV"] == pytest.approx([0.2, 0.4])
    assert m["adsorption_energy_mae_eV"] == pytest.approx(0.3)
    assert m["adsorption_energy_rmse_eV"] == pytest.approx(np.sqrt(0.1))
    assert m["adsorption_energy_max_abs_error_eV"] == pytest.approx(0.4)
    assert m["definition"] == "E_ads(O) = E(slab+O) - E(slab) - [E(H2O) - E(H2)]"
    assert m["n_sites"] == 2


def test_adsorption_energy_errors_o2_scheme():
    m = _ads(dft_references={"O2": -10.0}, model_references={"O2": -9.0}, scheme={"O2": 0.5})
    # DFT: -108 + 100 + 5 = -3.0; model: -58.1 + 50 + 4.5 = -3.6
    assert m["dft_adsorption_energies_eV"][0] == pytest.approx(-3.0)
    assert m["adsorption_energy_errors_eV"][0] == pytest.approx(-0.6)
    assert "1/2 E(O2)" in m["definition"]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"model_slab_adsorbate": {"fcc": -58.1}}, "model lacks site(s) ['hcp']"),
        ({"dft_references": {"H2O": -14.0}}, "dft_references lacks gas molecule(s) ['H2']"),
        ({"dft_slab": float("nan")}, "dft_slab is nan"),
        ({"model_slab_adsorbate": {"fcc": -58.1, "hcp": np.inf}}, "model_slab_adsorbate['hcp']"),
        ({"adsorbate": "Xe"}, "no default reference for adsorbate 'Xe'"),
    ],
)
def test_adsorption_energy_errors_bad_input(kw, message):
    with pytest.raises(ValueError) as exc:
        _ads(**kw)
    assert message in str(exc.value)


# ------------------------------------------------------------------------------ reaction energies
def test_reaction_energy_error_by_hand():
    m = reaction_energy_error(-10.0, -10.5, -3.0, -3.2)
    _json(m)
    assert m["dft_reaction_energy_eV"] == pytest.approx(-0.5)
    assert m["model_reaction_energy_eV"] == pytest.approx(-0.2)
    assert m["reaction_energy_error_eV"] == pytest.approx(0.3)
    assert m["reaction_energy_abs_error_eV"] == pytest.approx(0.3)
    assert m["sign_agrees"] is True
    assert reaction_energy_error(0.0, -0.1, 0.0, 0.2)["sign_agrees"] is False
    with pytest.raises(ValueError, match="model_final is nan"):
        reaction_energy_error(0.0, 1.0, 0.0, float("nan"))


# -------------------------------------------------------------------------------------- barriers
DFT_PATH = np.array([0.0, 0.5, 1.2, 0.4, -0.3]) - 100.0
MODEL_PATH = np.array([0.0, 0.9, 0.8, 0.1, -0.5]) + 7.0


def test_barrier_error_by_hand():
    m = barrier_error(DFT_PATH, MODEL_PATH)
    _json(m)
    assert m["dft_barrier_eV"] == pytest.approx(1.2)
    assert m["model_barrier_eV"] == pytest.approx(0.9)
    assert m["barrier_error_eV"] == pytest.approx(-0.3)
    assert m["barrier_abs_error_eV"] == pytest.approx(0.3)
    assert m["dft_reverse_barrier_eV"] == pytest.approx(1.5)
    assert m["model_reverse_barrier_eV"] == pytest.approx(1.4)
    assert m["reverse_barrier_error_eV"] == pytest.approx(-0.1)
    assert m["reaction_energy_error_eV"] == pytest.approx(-0.2)
    assert (m["dft_highest_image"], m["model_highest_image"]) == (2, 1)
    assert m["highest_image_agrees"] is False
    # relative-profile errors: 0.4, -0.4, -0.3, -0.2 on images 1..4
    assert m["profile_mae_eV"] == pytest.approx(0.325)
    assert m["profile_max_abs_error_eV"] == pytest.approx(0.4)
    assert m["n_images"] == 5


def test_barrier_error_same_shape_shifted_is_exact_and_downhill_has_zero_barrier():
    m = barrier_error(DFT_PATH, DFT_PATH + 55.0)
    assert m["barrier_error_eV"] == pytest.approx(0.0, abs=1e-12)
    assert m["highest_image_agrees"] is True
    down = barrier_error([0.0, -0.2, -0.5], [1.0, 0.9, 0.3])
    assert down["dft_barrier_eV"] == 0.0 and down["model_barrier_eV"] == 0.0
    assert down["dft_reverse_barrier_eV"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "dft, model, message",
    [
        ([0.0, 1.0, 0.0], [0.0, 1.0], "dft_profile has 3 images but model_profile has 2"),
        ([0.0, np.nan, 0.0], [0.0, 1.0, 0.0], "dft_profile has a non-finite energy at image 1"),
        ([0.0], [0.0], "at least 2 images"),
        ([[0.0, 1.0]], [0.0, 1.0], "1-d"),
    ],
)
def test_barrier_error_bad_input(dft, model, message):
    with pytest.raises(ValueError) as exc:
        barrier_error(dft, model)
    assert message in str(exc.value)


# ------------------------------------------------------------------------------- site preference
DFT_SITES = {"top": -0.2, "bridge": -0.5, "fcc": -0.9, "hcp": -0.8}
MODEL_SITES = {"top": -0.3, "bridge": -0.7, "fcc": -0.6, "hcp": -0.8}  # fcc mis-ranked


def test_site_preference_misordered_model():
    m = site_preference(DFT_SITES, MODEL_SITES)
    _json(m)
    assert m["sites_by_dft"] == ["fcc", "hcp", "bridge", "top"]
    assert m["sites_by_model"] == ["hcp", "bridge", "fcc", "top"]
    assert m["most_stable_dft"] == "fcc" and m["most_stable_model"] == "hcp"
    assert m["most_stable_agrees"] is False
    # 6 pairs, fcc<hcp (100 meV) and fcc<bridge (400 meV) reversed: tau = (4 - 2) / 6
    assert m["misordered_pairs"] == [
        ["fcc", "hcp", pytest.approx(100.0)],
        ["fcc", "bridge", pytest.approx(400.0)],
    ]
    assert (m["n_misordered_pairs"], m["n_pairs"]) == (2, 6)
    assert m["kendall_tau"] == pytest.approx(1 / 3)
    assert m["dft_relative_energies_meV"] == pytest.approx([0.0, 100.0, 400.0, 700.0])
    assert m["model_relative_energies_meV"] == pytest.approx([0.0, -200.0, -100.0, 300.0])
    assert m["relative_energy_mae_meV"] == pytest.approx(400.0)


def test_site_preference_same_order_and_ties():
    shifted = {k: v + 3.0 for k, v in DFT_SITES.items()}
    m = site_preference(DFT_SITES, shifted)
    assert m["kendall_tau"] == pytest.approx(1.0)
    assert m["n_misordered_pairs"] == 0 and m["most_stable_agrees"] is True
    # a 100 meV DFT gap within the tie tolerance is not a mis-ordering
    t = site_preference(DFT_SITES, MODEL_SITES, tie_meV=150.0)
    assert t["n_misordered_pairs"] == 1 and t["n_pairs"] == 5


@pytest.mark.parametrize(
    "dft, model, message",
    [
        (DFT_SITES, {"top": 0.0, "bridge": 0.0, "fcc": 0.0}, "model lacks site(s) ['hcp']"),
        ({"top": 0.0}, {"top": 0.0}, "at least 2 sites"),
        (DFT_SITES, {**MODEL_SITES, "hollow": 0.0}, "DFT lacks site(s) ['hollow']"),
        ({**DFT_SITES, "top": np.nan}, MODEL_SITES, "dft_site_energies['top'] is nan"),
    ],
)
def test_site_preference_bad_input(dft, model, message):
    with pytest.raises(ValueError) as exc:
        site_preference(dft, model)
    assert message in str(exc.value)


# ------------------------------------------------------------------------- structural stability
def _h2(d, box=10.0):
    return Atoms("H2", positions=[(5, 5, 5), (5, 5, 5 + d)], cell=[box] * 3, pbc=True)


def test_stretched_h2_dissociates_at_1p2_not_at_0p8():
    ref = _h2(0.74)
    broken = structural_stability(ref, _h2(1.2), bond_scale=1.25)
    _json(broken)
    assert broken["dissociated"] is True
    assert broken["bonds_broken"] == [[0, 1, "H", "H", pytest.approx(0.74), pytest.approx(1.2)]]
    # 0.8 A lies beyond the natural cutoff (1.25 x 2 x 0.31 = 0.775 A) but within 1.25 x 0.74 A
    kept = structural_stability(ref, _h2(0.8), bond_scale=1.25)
    assert kept["dissociated"] is False and kept["n_bonds_broken"] == 0
    assert kept["n_bonds_reference"] == 1
    # symmetric stretch: each atom moves 0.03 A, no rigid translation is left after centring
    assert kept["rmsd_A"] == pytest.approx(0.03)
    assert "adsorbate_left_site" not in kept  # no slab


def test_bond_formed():
    m = structural_stability(_h2(1.5), _h2(0.74))
    assert m["bonds_formed"] == [[0, 1, "H", "H", pytest.approx(1.5), pytest.approx(0.74)]]
    assert m["n_bonds_reference"] == 0 and m["dissociated"] is False


def test_pure_translation_and_periodic_wrap_give_zero_rmsd():
    ref = _h2(0.74)
    moved = ref.copy()
    moved.positions += [0.3, -0.4, 0.0]
    m = structural_stability(ref, moved)
    assert m["rmsd_A"] == pytest.approx(0.0, abs=1e-12)
    assert m["max_displacement_A"] == pytest.approx(0.0, abs=1e-12)
    assert m["rigid_translation_A"] == pytest.approx(0.5)
    wrapped = ref.copy()
    wrapped.positions[1, 0] += 10.0  # one whole cell away: the same structure
    w = structural_stability(ref, wrapped)
    assert w["rmsd_A"] == pytest.approx(0.0, abs=1e-12) and w["n_bonds_broken"] == 0


def test_rmsd_counts_every_atom_after_removing_the_mean_shift():
    ref = Atoms("Cu4", positions=[(0, 0, 0), (3, 0, 0), (0, 3, 0), (3, 3, 0)], cell=[12] * 3, pbc=False)
    new = ref.copy()
    new.positions[0, 0] += 2.0
    # displacements 2,0,0,0 along x; mean 0.5 removed -> 1.5, -0.5, -0.5, -0.5
    m = structural_stability(ref, new)
    assert m["rmsd_A"] == pytest.approx(np.sqrt(0.75))
    assert m["max_displacement_A"] == pytest.approx(1.5)
    assert m["max_displacement_atom"] == 0


def _h_on_cu(site_from, toward=None, shift=0.0):
    slab = fcc_slab("Cu", "111", size=(2, 2, 3))
    sites = find_sites(slab)
    atoms = place_adsorbate(slab, "H", sites[site_from])
    if toward is not None:
        a = np.array(sites[site_from].position)
        b = np.array(sites[toward].position)
        atoms.positions[-1, :2] += shift * (b - a) / np.linalg.norm(b - a)
    return atoms


def test_adatom_fcc_to_hcp_left_site():
    ref = _h_on_cu("fcc")
    hcp = ref.copy()
    slab = fcc_slab("Cu", "111", size=(2, 2, 3))
    hcp.positions[-1, :2] = find_sites(slab)["hcp"].position
    m = structural_stability(ref, hcp)
    _json(m)
    assert m["adsorbate_indices"] == [len(ref) - 1]
    assert (m["adsorbate_site_reference"], m["adsorbate_site_relaxed"]) == ("fcc", "hcp")
    # fcc and hcp sites of Cu(111) are nn/sqrt(3) apart in the plane, nn = a/sqrt(2), a = 3.63 A
    nn = slab.info["lattice_constant"] / np.sqrt(2)
    assert m["adsorbate_lateral_displacement_A"] == pytest.approx(nn / np.sqrt(3), abs=1e-6)
    assert m["adsorbate_left_site"] is True
    assert m["dissociated"] is False  # one atom: nothing to dissociate
    assert m["n_bonds_broken"] == 1 and m["n_bonds_formed"] == 1  # Cu of fcc triangle swapped
    assert {b[2] + b[3] for b in m["bonds_broken"] + m["bonds_formed"]} == {"CuH"}


def test_adatom_small_moves():
    ref = _h_on_cu("fcc")
    # 0.3 A toward hcp: still nearest to fcc, well under 1 A
    near = structural_stability(ref, _h_on_cu("fcc", "hcp", 0.3))
    assert near["adsorbate_site_relaxed"] == "fcc" and near["adsorbate_left_site"] is False
    # 0.8 A toward hcp: past the bridge (0.74 A away), under 1 A but the nearest site changed
    bridge = structural_stability(ref, _h_on_cu("fcc", "hcp", 0.8))
    assert bridge["adsorbate_site_relaxed"] == "bridge"
    assert bridge["adsorbate_lateral_displacement_A"] == pytest.approx(0.8)
    assert bridge["adsorbate_left_site"] is True
    # the whole system translated by 2 A laterally: the adsorbate did not move relative to the slab
    moved = ref.copy()
    moved.positions[:, 0] += 2.0
    t = structural_stability(ref, moved)
    assert t["adsorbate_left_site"] is False and t["rmsd_A"] == pytest.approx(0.0, abs=1e-9)


def test_bare_substrate_has_nothing_to_dissociate_and_h_on_si_is_the_adsorbate():
    ref = Atoms("Cu2", positions=[(0, 0, 0), (2.5, 0, 0)], cell=[12] * 3)
    far = Atoms("Cu2", positions=[(0, 0, 0), (4.0, 0, 0)], cell=[12] * 3)
    m = structural_stability(ref, far)
    assert m["n_bonds_broken"] == 1 and m["dissociated"] is False
    sih = Atoms("Si2H2", positions=[(0, 0, 0), (2.35, 0, 0), (0, 0, 1.5), (0.74, 0, 1.5)], cell=[12] * 3)
    new = sih.copy()
    new.positions[3] = (2.35, 0, 1.5)  # H-H (0.74 A) broken: H2 dissociated onto the Si pair
    s = structural_stability(sih, new)
    assert s["dissociated"] is True
    assert ["H", "H"] in [b[2:4] for b in s["bonds_broken"]]


def test_co_dissociation_on_slab():
    slab = fcc_slab("Cu", "111", size=(2, 2, 3))
    ref = place_adsorbate(slab, "CO", find_sites(slab)["top"])
    new = ref.copy()
    new.positions[-1] = new.positions[-2] + [2.0, 0.0, 0.6]  # O pulled 2.1 A away from C
    m = structural_stability(ref, new)
    assert m["adsorbate_indices"] == [len(ref) - 2, len(ref) - 1]
    assert m["dissociated"] is True
    assert ["C", "O"] in [b[2:4] for b in m["bonds_broken"]]
    assert m["adsorbate_site_relaxed"] == "top" and m["adsorbate_left_site"] is False


@pytest.mark.parametrize(
    "relaxed, kw, message",
    [
        (Atoms("H3", positions=np.zeros((3, 3))), {}, "reference_atoms has 2 atoms but relaxed_atoms has 3"),
        (Atoms("HO", positions=[(5, 5, 5), (5, 5, 5.74)], cell=[10] * 3, pbc=True), {}, "atom 1 is H"),
        (_h2(0.74, box=11.0), {}, "cells differ"),
        (_h2(0.74), {"bond_scale": 0.9}, "bond_scale must be >= 1"),
        (_h2(0.74), {"adsorbate_indices": [5]}, "out of range"),
    ],
)
def test_structural_stability_bad_input(relaxed, kw, message):
    with pytest.raises(ValueError) as exc:
        structural_stability(_h2(0.74), relaxed, **kw)
    assert message in str(exc.value)


def test_structural_stability_nan_positions():
    bad = _h2(0.74)
    bad.positions[0, 0] = np.nan
    with pytest.raises(ValueError, match="relaxed_atoms has non-finite positions"):
        structural_stability(_h2(0.74), bad)
