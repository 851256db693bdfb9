"""Bond bookkeeping (covalent radii, hysteresis, periodic images) and the reaction-sign check."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT

from aiida_reactmlip.physics import (
    DEFAULT_REACTIONS,
    bond_changes,
    bonded_pairs,
    energy_sign,
    library_end_states,
    min_distance,
    n_fragments,
    pair_label,
    reaction_energy,
)


def _h2(d):
    return Atoms("H2", positions=[[0, 0, 0], [d, 0, 0]])


def test_bond_changes_with_hysteresis():
    # H-H: bonded below 1.3 x 0.62 = 0.806 Å, broken beyond 1.6 x 0.62 = 0.992 Å
    assert bonded_pairs(_h2(0.74)) == {(0, 1)}
    assert bonded_pairs(_h2(0.85)) == set()
    stretched = bond_changes(_h2(0.74), _h2(0.95))  # vibrating, not broken
    assert stretched["n_broken"] == 0 and stretched["n_bonds_end"] == 0
    broken = bond_changes(_h2(0.74), _h2(1.2))
    assert broken["broken"] == [[0, 1]] and broken["broken_by_pair"] == {"H-H": 1}
    formed = bond_changes(_h2(1.2), _h2(0.74))
    assert formed["formed"] == [[0, 1]] and formed["n_broken"] == 0
    # from 0.9 Å (neither bonded nor far apart) to 0.74 Å: not counted as formed
    assert bond_changes(_h2(0.9), _h2(0.74))["n_formed"] == 0
    with pytest.raises(ValueError):
        bond_changes(_h2(0.74), Atoms("HO", positions=[[0, 0, 0], [1, 0, 0]]))


def test_bonds_follow_periodic_images():
    atoms = Atoms("H2", positions=[[0.1, 5, 5], [9.6, 5, 5]], cell=[10, 10, 10], pbc=True)
    assert bonded_pairs(atoms) == {(0, 1)}  # 0.5 Å apart through the boundary
    assert min_distance(atoms) == pytest.approx(0.5)
    atoms.pbc = False
    assert bonded_pairs(atoms) == set()
    assert min_distance(atoms) == pytest.approx(9.5)


def test_fragments():
    co_h = Atoms("COH", positions=[[0, 0, 0], [1.13, 0, 0], [6, 0, 0]])
    assert n_fragments(co_h) == 2
    co_h.positions[2] = [2.2, 0, 0]  # O-H 1.07 Å
    assert n_fragments(co_h) == 1
    assert n_fragments(Atoms()) == 0


def test_pair_label_orders_by_atomic_number():
    assert pair_label("O", "C") == "C-O"
    assert pair_label("Cu", "H") == "H-Cu"


def test_energy_sign():
    assert energy_sign(0.3) == 1
    assert energy_sign(-0.3) == -1
    assert energy_sign(0.01, tolerance=0.02) == 0
    assert energy_sign(0.0) == 0


def test_library_end_states():
    initial, final = library_end_states("h2-on-cu111")
    assert initial.info["name"] == "h2-on-cu111-initial"
    assert final.info["name"] == "h2-on-cu111-final"
    assert initial.get_chemical_formula() == final.get_chemical_formula() == "H2Cu12"
    assert initial.get_distance(12, 13) < 1.0 < final.get_distance(12, 13)  # H2 intact, then split
    names = DEFAULT_REACTIONS["ch4-dissociation"]
    first, last = library_end_states("ch4-dissociation", *names)
    assert first.get_distance(0, 1) == pytest.approx(1.09) and last.get_distance(0, 1) == pytest.approx(2.0)
    with pytest.raises(KeyError, match="role 'initial'"):
        library_end_states("ch4-dissociation")
    with pytest.raises(KeyError, match="no configuration"):
        library_end_states("ch4-dissociation", "nope", names[1])
    with pytest.raises(ValueError, match="same atoms"):
        library_end_states("h2-on-cu111", initial="cu111-slab")


def test_reaction_energy_and_sign_against_dft():
    initial, final = library_end_states("h2-on-cu111")
    e_i = initial.copy()
    e_i.calc = EMT()
    e_f = final.copy()
    e_f.calc = EMT()
    expected = e_f.get_potential_energy() - e_i.get_potential_energy()
    result = reaction_energy(EMT(), initial, final)
    assert result["reaction_energy"] == pytest.approx(expected, abs=1e-10)
    assert result["sign"] == np.sign(expected)
    assert result["sign_agrees"] is None and result["error"] is None
    same = reaction_energy(EMT(), initial, final, dft_reaction_energy=expected + 0.1 * np.sign(expected))
    assert same["sign_agrees"] is True
    assert same["error"] == pytest.approx(-0.1 * np.sign(expected), abs=1e-10)
    opposite = reaction_energy(EMT(), initial, final, dft_reaction_energy=-expected)
    assert opposite["sign_agrees"] is False
    assert opposite["error"] == pytest.approx(2 * expected, abs=1e-10)
    # within the tolerance both count as thermoneutral
    loose = reaction_energy(
        EMT(), initial, final, dft_reaction_energy=0.0, sign_tolerance=abs(expected) + 0.01
    )
    assert loose["sign"] == 0 and loose["sign_agrees"] is True


def test_physics_package_is_aiida_free():
    import subprocess
    import sys

    code = (
        "import sys, aiida_reactmlip.physics\n"
        "bad = [m for m in sys.modules if m == 'aiida' or m.startswith(('aiida.', 'torch', 'chgnet', 'sevenn'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
