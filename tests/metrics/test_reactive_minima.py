"""Which frames are DFT minima, how their stability is summarised, and MLIP NEB vs DFT NEB barriers (pure)."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import add_adsorbate, fcc111

from aiida_reactmlip.metrics.reactive import (
    barrier_error,
    neb_barrier_error,
    select_minima,
    stability_summary,
    structural_stability,
)


def test_select_minima_end_states_flags_and_lowest_energy():
    infos = [
        {"role": "scan"}, {"role": "scan"}, {"role": "scan"},          # group a: a bond scan
        {"role": "initial"}, {"role": "image"}, {"role": "final"},     # group b: a path
        {"role": "reference"},                                         # group c: a lone reference slab
        {"role": "final", "minimum": False}, {"role": "image", "minimum": True},  # group d: explicit flags
        {"role": "scan"},                                              # group e: no energy
    ]
    energies = [-1.0, -3.0, -2.0, -5.0, -4.0, -5.5, -7.0, -1.0, -0.5, np.nan]
    groups = ["a", "a", "a", "b", "b", "b", "c", "d", "d", "e"]
    # a: lowest DFT energy (index 1, not the first); b: both end states, not the lower-lying image
    # choice by energy; c: its only frame; d: the flagged image only, the unflagged end state excluded.
    assert select_minima(infos, energies, groups) == [1, 3, 5, 6, 8]


def test_select_minima_refuses_misaligned_input():
    with pytest.raises(ValueError, match="one entry per frame"):
        select_minima([{}, {}], [0.0], ["a", "a"])


def _slab_with_h(site: str) -> Atoms:
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, "H", 1.0, site)
    slab.info["adsorbate"] = "H"
    return slab


def test_stability_summary_counts_changes():
    still = _slab_with_h("fcc")
    shaken = still.copy()
    shaken.positions[4] += [0.05, 0.0, 0.0]   # a small relaxation of one Cu atom
    hopped = still.copy()
    hopped.positions[-1] += (still.cell[0] + still.cell[1]) / 6  # fcc -> hcp hollow, 1.47 Å in-plane
    gas = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[8, 8, 8], pbc=True)
    broken = gas.copy()
    broken.positions[1, 2] = 1.5
    results = [structural_stability(still, shaken), structural_stability(still, hopped),
               {**structural_stability(gas, broken), "converged": False}]
    # one of 13 atoms moved by 0.05 Å: the rigid translation 0.05/13 Å is removed first
    assert results[0]["rmsd_A"] == pytest.approx(np.sqrt(((0.05 * 12 / 13) ** 2 + 12 * (0.05 / 13) ** 2) / 13), rel=1e-9)
    assert not results[0]["adsorbate_left_site"] and results[0]["n_bonds_broken"] == 0
    assert results[1]["adsorbate_left_site"] and results[1]["adsorbate_site_relaxed"] == "hcp"
    assert results[2]["dissociated"]
    summary = stability_summary(results)
    assert summary["n_minima"] == 3
    assert summary["n_changed"] == 2 and summary["n_left_site"] == 1 and summary["n_dissociated"] == 1
    assert summary["n_bonds_broken"] == results[1]["n_bonds_broken"] + 1
    assert summary["n_not_converged"] == 1
    assert summary["rmsd_mean_A"] == pytest.approx(np.mean([r["rmsd_A"] for r in results]))
    assert results[2]["rmsd_A"] == pytest.approx(0.38)  # H2 stretched by 0.76 Å: each atom 0.38 Å from the centre
    # H hopped 1.47 Å, one of 13 atoms: sqrt(((1.47 * 12/13)^2 + 12 (1.47/13)^2) / 13) = 0.3927 Å, the largest
    hop = np.linalg.norm((still.cell[0] + still.cell[1]) / 6)
    assert summary["rmsd_max_A"] == pytest.approx(np.sqrt(((hop * 12 / 13) ** 2 + 12 * (hop / 13) ** 2) / 13), rel=1e-9)
    with pytest.raises(ValueError, match="no structural_stability results"):
        stability_summary([])


def test_neb_barrier_error_bands_of_different_lengths():
    dft = [-10.0, -9.8, -9.6, -9.75, -10.05]          # barrier 0.40 eV at image 2 of 5
    model = [3.0, 3.1, 3.35, 3.2, 2.9, 2.95, 2.92]   # its own band, 7 images: barrier 0.35 eV at image 2 of 7
    out = neb_barrier_error(dft, model)
    assert out["dft_barrier_eV"] == pytest.approx(0.40)
    assert out["model_barrier_eV"] == pytest.approx(0.35)
    assert out["barrier_error_eV"] == pytest.approx(-0.05)
    assert out["reverse_barrier_error_eV"] == pytest.approx((3.35 - 2.92) - (-9.6 + 10.05))
    assert out["reaction_energy_error_eV"] == pytest.approx(-0.08 - (-0.05))
    # highest image at 2/6 = 0.33 of the band against 2/4 = 0.5: half a spacing of the coarser band is 0.125
    assert not out["highest_image_agrees"]
    assert "profile_mae_eV" not in out
    same = neb_barrier_error(dft, [0.0, 0.1, 0.5, 0.3, 0.0])
    assert same["highest_image_agrees"] and same["barrier_error_eV"] == pytest.approx(0.1)
    # with equal lengths the profile MAE is the one of barrier_error
    assert same["profile_mae_eV"] == pytest.approx(barrier_error(dft, [0.0, 0.1, 0.5, 0.3, 0.0])["profile_mae_eV"])
    with pytest.raises(ValueError, match="at least 2 images"):
        neb_barrier_error([1.0], [1.0, 2.0])
