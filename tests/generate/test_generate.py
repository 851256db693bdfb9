"""Configuration generators: exact geometry, determinism, no mutation of the input."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from aiida_reactmlip.generate import bond_scan, rattle, strain_series


def _h2():
    atoms = Atoms("H2", positions=[[4.0, 4.0, 3.63], [4.0, 4.0, 4.37]], cell=[8, 8, 8], pbc=True)
    atoms.info["system"] = "h2"
    return atoms


def test_bond_scan_distances_exact_and_tagged():
    atoms = _h2()
    before = atoms.get_positions().copy()
    distances = [0.55, 0.74, 1.1, 2.345678]
    frames = bond_scan(atoms, 0, 1, distances)
    assert len(frames) == 4
    for d, f in zip(distances, frames):
        assert abs(f.get_distance(0, 1) - d) < 1e-12
        assert f.info["role"] == "scan"
        assert f.info["scan_coordinate"] == d
        np.testing.assert_allclose(f.positions.mean(axis=0), before.mean(axis=0), atol=1e-12)  # centre kept
    names = [f.info["name"] for f in frames]
    assert names == ["h2-scan-0.55", "h2-scan-0.74", "h2-scan-1.10", "h2-scan-2.345678"]
    np.testing.assert_array_equal(atoms.get_positions(), before)  # input untouched
    assert "role" not in atoms.info


def test_bond_scan_fix_i_keeps_atom_i_and_other_atoms():
    water = molecule("H2O")
    water.center(vacuum=4.0)
    frames = bond_scan(water, 0, 1, [0.9, 1.2], fix="i", name="water")
    for d, f in zip([0.9, 1.2], frames):
        assert abs(f.get_distance(0, 1) - d) < 1e-12
        np.testing.assert_array_equal(f.positions[0], water.positions[0])
        np.testing.assert_array_equal(f.positions[2], water.positions[2])
    assert frames[0].info["name"] == "water-scan-0.90"


def test_bond_scan_minimum_image_across_the_cell_boundary():
    # 0.6 Å apart through the periodic image
    atoms = Atoms("H2", positions=[[0.2, 0, 0], [7.6, 0, 0]], cell=[8, 8, 8], pbc=True)
    (f,) = bond_scan(atoms, 0, 1, [0.8])
    assert abs(f.get_distance(0, 1, mic=True) - 0.8) < 1e-12


def test_bond_scan_validation():
    with pytest.raises(ValueError, match="different atoms"):
        bond_scan(_h2(), 1, 1, [0.7])
    with pytest.raises(ValueError, match="positive"):
        bond_scan(_h2(), 0, 1, [0.7, -1.0])
    with pytest.raises(ValueError, match="fix"):
        bond_scan(_h2(), 0, 1, [0.7], fix="middle")


def test_rattle_deterministic_per_seed():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    before = atoms.get_positions().copy()
    a = rattle(atoms, 3, stdev=0.05, seed=7)
    b = rattle(atoms, 3, stdev=0.05, seed=7)
    c = rattle(atoms, 3, stdev=0.05, seed=8)
    assert len(a) == 3
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x.positions, y.positions)
        assert not np.allclose(x.positions, z.positions)
        assert x.info["role"] == "rattle"
    assert not np.allclose(a[0].positions, a[1].positions)  # frames differ from each other
    np.testing.assert_array_equal(atoms.get_positions(), before)
    disp = np.concatenate([f.positions - before for f in rattle(atoms, 200, stdev=0.05, seed=1)])
    assert disp.std() == pytest.approx(0.05, rel=0.05)
    assert len({f.info["name"] for f in a}) == 3


def test_rattle_indices_and_zero_stdev():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    (f,) = rattle(atoms, 1, stdev=0.1, seed=0, indices=[2])
    moved = np.linalg.norm(f.positions - atoms.positions, axis=1) > 0
    assert moved.tolist() == [False, False, True, False]
    (g,) = rattle(atoms, 1, stdev=0.0)
    np.testing.assert_array_equal(g.positions, atoms.positions)


def test_strain_series_volumes_and_fractional_positions():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    v0 = atoms.get_volume()
    frames = strain_series(atoms, [-0.01, 0.0, 0.02])
    for s, f in zip([-0.01, 0.0, 0.02], frames):
        assert f.get_volume() == pytest.approx(v0 * (1 + s) ** 3, rel=1e-12)
        np.testing.assert_allclose(f.get_scaled_positions(), atoms.get_scaled_positions(), atol=1e-12)
        assert f.info["role"] == "strain"
        assert f.info["volumetric_strain"] == pytest.approx((1 + s) ** 3 - 1)
    assert frames[2].info["name"] == "cu4-strain-+0.020"
    assert atoms.get_volume() == v0
    (t,) = strain_series(atoms, [[0.01, 0.0, -0.01]])
    np.testing.assert_allclose(t.cell.lengths(), [3.6 * 1.01, 3.6, 3.6 * 0.99])
    with pytest.raises(ValueError, match="bulk"):
        strain_series(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[8, 8, 8]), [0.01])
