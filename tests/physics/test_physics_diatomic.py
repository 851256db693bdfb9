"""Diatomic curves and their metrics: exact answers from analytic potentials (Morse, Lennard-Jones, EMT)."""

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.calculators.morse import MorsePotential

from aiida_reactmlip.physics import (
    DEFAULT_DISTANCES,
    curve_metrics,
    diatomic_curve,
    diatomic_pairs,
    sign_changes,
)


def _metrics(curve):
    iso = curve["isolated_energies"]
    a, b = curve["elements"]
    return curve_metrics(
        curve["distances"],
        curve["energies"],
        curve["forces"],
        fd_forces=curve["fd_forces"],
        isolated_energy_sum=iso[a] + iso[b],
    )


@pytest.mark.parametrize(("epsilon", "r0", "rho0"), [(2.0, 1.1, 6.0), (4.5, 0.74, 1.4), (0.3, 2.0, 5.0)])
def test_morse_minimum_depth_and_smoothness_recovered(epsilon, r0, rho0):
    # ASE's smooth cutoff from 4.0 to 5.5 Å (rcut1/rcut2 are in units of r0): far enough out not to
    # bend the curve (its default, 1.9 r0, would add inflections to the soft curve)
    calc = MorsePotential(epsilon=epsilon, r0=r0, rho0=rho0, rcut1=4.0 / r0, rcut2=5.5 / r0)
    curve = diatomic_curve(calc, "H", "H")
    m = _metrics(curve)
    assert abs(m["r_min"] - r0) < 1e-3
    assert abs(m["well_depth"] - epsilon) < 1e-3
    assert abs(m["e_min"] + epsilon) < 1e-3
    assert m["tail_offset"] == pytest.approx(0.0, abs=1e-12)  # the cutoff is inside 6 Å
    assert m["n_inflections"] == 1
    assert m["n_force_flips"] == 1
    assert m["short_range_repulsion"] is True
    assert m["repulsion_spearman"] == pytest.approx(-1.0)
    assert m["force_energy_max_dev"] < 0.02  # conservative: only the central difference's h**2 error
    assert m["fd_method"] == "central"
    assert not m["minimum_at_edge"]
    # the pair sits along x: the radial force is the analytic Morse derivative
    r = curve["distances"]
    k = np.argmin(np.abs(r - (r0 + 0.2)))
    x = np.exp(rho0 * (1 - r[k] / r0))
    if r[k] < 4.0:  # before the smooth cutoff the formula is exact
        assert curve["forces"][k] == pytest.approx(2 * epsilon * rho0 / r0 * (x * x - x), rel=1e-9)


def test_lennard_jones_minimum_and_depth():
    sigma, epsilon = 1.0, 0.7
    curve = diatomic_curve(LennardJones(sigma=sigma, epsilon=epsilon, rc=5.5), "Ar", "Ar")
    m = _metrics(curve)
    assert abs(m["r_min"] - 2 ** (1 / 6) * sigma) < 1e-3
    assert abs(m["well_depth"] - epsilon) < 1e-3
    assert m["n_force_flips"] == 1


def test_curve_geometry_and_isolated_atoms_with_emt():
    curve = diatomic_curve(EMT(), "Cu", "H", distances=[2.0, 0.8, 1.5, 3.0], fd_step=None)
    assert curve["pair"] == "H-Cu"  # atomic-number order
    np.testing.assert_array_equal(curve["distances"], [0.8, 1.5, 2.0, 3.0])
    assert curve["fd_forces"] is None
    assert curve["n_calls"] == 4 + 2
    assert set(curve["isolated_energies"]) == {"Cu", "H"}
    # one call by hand at 1.5 Å agrees
    from ase import Atoms

    pair = Atoms("CuH", positions=[[0, 0, 0], [1.5, 0, 0]])
    pair.calc = EMT()
    assert curve["energies"][1] == pytest.approx(pair.get_potential_energy(), abs=1e-10)
    assert curve["forces"][1] == pytest.approx(
        0.5 * (pair.get_forces()[1, 0] - pair.get_forces()[0, 0]), abs=1e-10
    )
    # a periodic box large enough gives the same numbers
    periodic = diatomic_curve(EMT(), "Cu", "H", distances=[0.8, 1.5, 2.0, 3.0], pbc=True, fd_step=None)
    np.testing.assert_allclose(periodic["energies"], curve["energies"], atol=1e-10)


def test_emt_cu_dimer_reaches_its_isolated_atoms():
    m = _metrics(diatomic_curve(EMT(), "Cu", "Cu"))
    assert m["tail_offset"] == pytest.approx(0.0, abs=1e-6)
    assert 1.8 < m["r_min"] < 2.6
    assert m["short_range_repulsion"] is True


def test_pbc_box_too_small_is_refused():
    with pytest.raises(ValueError, match="too small"):
        diatomic_curve(EMT(), "Cu", "Cu", pbc=True, box=10.0)


class _ScaledForces(Calculator):
    """A non-conservative model: Morse energies, forces scaled by 1.2."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, **kwargs):
        super().__init__()
        self.inner = MorsePotential(**kwargs)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self.inner
        self.results = {"energy": work.get_potential_energy(), "forces": 1.2 * work.get_forces()}


def test_force_energy_inconsistency_is_caught():
    good = _metrics(diatomic_curve(MorsePotential(epsilon=2.0, r0=1.1, rho0=3.0), "H", "H"))
    bad_curve = diatomic_curve(_ScaledForces(epsilon=2.0, r0=1.1, rho0=3.0), "H", "H")
    bad = _metrics(bad_curve)
    assert good["force_energy_max_dev"] < 0.01
    assert bad["force_energy_max_dev"] > 1.0
    # the grid finite differences (no extra calls) catch it too
    grid = curve_metrics(bad_curve["distances"], bad_curve["energies"], bad_curve["forces"])
    assert grid["fd_method"] == "grid"
    assert grid["force_energy_max_dev"] > 1.0
    # energies are the same: minimum and depth are not affected
    assert bad["r_min"] == pytest.approx(good["r_min"], abs=1e-9)


def _morse(r, depth=2.0, r0=1.1, a=3.0):
    x = np.exp(-a * (r - r0))
    return depth * (x * x - 2 * x)


def test_wiggles_and_a_short_range_hole_are_counted():
    r = np.asarray(DEFAULT_DISTANCES)
    wiggle = 0.05 * np.sin(2 * np.pi * r / 0.6)
    e = _morse(r) + wiggle
    f = -np.gradient(e, r, edge_order=2)
    m = curve_metrics(r, e, f)
    assert m["n_inflections"] > 5
    assert m["n_force_flips"] > 5
    # a hole: inside 0.8 Å the energy falls again as the atoms approach
    hole = np.where(r >= 0.8, _morse(r), _morse(0.8) - 5.0 * (0.8 - r))
    m_hole = curve_metrics(r, hole, -np.gradient(hole, r, edge_order=2))
    assert m_hole["short_range_repulsion"] is False
    assert m_hole["repulsion_spearman"] > -0.95
    assert curve_metrics(r, _morse(r), -np.gradient(_morse(r), r))["short_range_repulsion"] is True


def test_minimum_at_edge_and_unbound_curves():
    r = np.linspace(0.5, 6.0, 50)
    repulsive = np.exp(-r)
    m = curve_metrics(r, repulsive)
    assert m["minimum_at_edge"] is True
    assert m["r_min"] == pytest.approx(6.0)
    assert m["well_depth"] == pytest.approx(0.0)
    assert m["n_force_flips"] is None  # no forces given
    with pytest.raises(ValueError, match="non-finite"):
        curve_metrics(r, np.where(r > 3, np.nan, repulsive))


def test_sign_changes_ignores_noise():
    assert sign_changes([1.0, 0.001, -0.002, 0.003, 1.0], tolerance=0.01) == 0
    assert sign_changes([1.0, 0.001, -0.5, 0.003, 1.0], tolerance=0.01) == 2
    assert sign_changes([-1.0, 0.0, 0.0, 2.0], tolerance=0.0) == 1


def test_diatomic_pairs():
    assert diatomic_pairs(["Cu", "H"]) == [("H", "H"), ("Cu", "Cu"), ("H", "Cu")]
    assert diatomic_pairs(["O", "C", "O"], heteronuclear=False) == [("C", "C"), ("O", "O")]
    assert len(diatomic_pairs(["H", "C", "O", "Cu"])) == 10
    with pytest.raises(ValueError, match="Xx"):
        diatomic_pairs(["H", "Xx"])


@pytest.mark.mlip
def test_chgnet_h2_curve_minimum():
    from aiida_reactmlip.models import load_calculator
    from aiida_reactmlip.models.registry import locate_model_file

    calc = load_calculator("chgnet", locate_model_file("chgnet-0.3.0"))
    curve = diatomic_curve(calc, "H", "H", distances=np.round(np.arange(0.5, 3.0, 0.05), 3))
    m = _metrics(curve)
    assert 0.74 <= m["r_min"] <= 0.76
    assert 3.5 < m["well_depth"] < 5.5  # PBE's H2 binding energy is 4.5 eV
    assert m["force_energy_max_dev"] < 0.2  # CHGNet forces are autograd derivatives of its energy
