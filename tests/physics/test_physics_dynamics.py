"""NVE energy conservation and the heating ramp, with EMT, Lennard-Jones and Morse (seconds in all)."""

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import fcc111
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.calculators.morse import MorsePotential
from ase.cluster import Icosahedron
from ase.constraints import FixAtoms

from aiida_reactmlip.physics import energy_drift, nve_run, relax, temperature_ramp


@pytest.fixture(scope="module")
def cu13():
    relaxed, info = relax(EMT(), Icosahedron("Cu", 2))
    assert info["converged"] and info["energy_change"] < 0
    return relaxed


def test_energy_drift_of_synthetic_traces():
    t = np.linspace(0.0, 2.0, 201)  # ps
    n_atoms = 4
    etot = n_atoms * (-1.0 + 0.003 * t)  # eV: +3 meV/atom/ps
    d = energy_drift(t, etot, n_atoms)
    assert d["drift_meV_per_atom_per_ps"] == pytest.approx(3.0, rel=1e-9)
    assert d["spread_meV_per_atom"] == pytest.approx(0.0, abs=1e-9)
    assert d["max_deviation_meV_per_atom"] == pytest.approx(6.0, rel=1e-9)
    wobble = etot + n_atoms * 0.001 * np.sin(2 * np.pi * t * 10)  # ±1 meV/atom, 20 full periods
    d = energy_drift(t, wobble, n_atoms)
    assert d["drift_meV_per_atom_per_ps"] == pytest.approx(3.0, abs=0.05)
    assert d["spread_meV_per_atom"] == pytest.approx(1.0 / np.sqrt(2), rel=0.02)  # std of a sine
    with pytest.raises(ValueError):
        energy_drift([0.0], [1.0], 1)


def test_nve_drift_grows_with_the_time_step(cu13):
    small = nve_run(EMT(), cu13, 300.0, timestep_fs=0.5, duration_ps=0.5, seed=1)
    huge = nve_run(EMT(), cu13, 300.0, timestep_fs=10.0, duration_ps=0.5, seed=1)
    assert small["n_steps"] == 1000 and huge["n_steps"] == 50
    assert small["steps_done"] == 1000
    assert small["temperature"][0] == pytest.approx(300.0, rel=1e-9)  # scaled to exactly T
    assert small["max_deviation_meV_per_atom"] < 0.05
    assert abs(small["drift_meV_per_atom_per_ps"]) < 0.05
    assert huge["max_deviation_meV_per_atom"] > 20 * small["max_deviation_meV_per_atom"]
    assert huge["spread_meV_per_atom"] > 20 * small["spread_meV_per_atom"]
    assert small["bonds"]["n_broken"] == 0 and small["bonds"]["n_formed"] == 0
    assert small["times_ps"][-1] == pytest.approx(0.5)
    assert small["etot"] == pytest.approx(small["epot"] + small["ekin"])


def test_nve_is_seeded_and_keeps_the_centre_of_mass(cu13):
    a = nve_run(EMT(), cu13, 500.0, timestep_fs=1.0, duration_ps=0.05, seed=7)
    b = nve_run(EMT(), cu13, 500.0, timestep_fs=1.0, duration_ps=0.05, seed=7)
    c = nve_run(EMT(), cu13, 500.0, timestep_fs=1.0, duration_ps=0.05, seed=8)
    np.testing.assert_array_equal(a["etot"], b["etot"])
    assert not np.allclose(a["epot"], c["epot"])
    masses = cu13.get_masses()[:, None]
    com_start = (masses * cu13.positions).sum(0) / masses.sum()
    com_end = (masses * a["final_positions"]).sum(0) / masses.sum()
    np.testing.assert_allclose(com_end, com_start, atol=1e-8)


def test_nve_keeps_fixed_atoms_fixed():
    slab = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    slab.set_constraint(FixAtoms(indices=range(4)))
    slab, _ = relax(EMT(), slab)
    run = nve_run(EMT(), slab, 600.0, timestep_fs=2.0, duration_ps=0.1, seed=0)
    np.testing.assert_array_equal(run["final_positions"][:4], slab.positions[:4])
    assert np.abs(run["final_positions"][4:] - slab.positions[4:]).max() > 1e-3
    # 8 free atoms: 24 degrees of freedom carry the kinetic energy
    assert run["ekin"][0] == pytest.approx(0.5 * 24 * units.kB * 600.0, rel=1e-9)


def _lj_dimer(epsilon):
    sigma = 2.0  # Å; with Ar's covalent radius (1.06 Å) the bond counts as broken beyond 3.39 Å
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [2 ** (1 / 6) * sigma, 0, 0]])
    return atoms, LennardJones(epsilon=epsilon, sigma=sigma, rc=6.0, smooth=True)


def test_ramp_breaks_a_weak_dimer_in_the_expected_range():
    """The dimer counts as fallen apart at 3.39 Å, where the LJ energy is -0.16 epsilon: leaving the
    well takes dE = 0.84 epsilon. The relative motion has 3 degrees of freedom (stretch, 2 rotations),
    internal energy about 2 kT, and the ramp gives it tens of vibrational periods at each temperature,
    so it breaks once kT is a sizeable fraction of dE: between dE/(4 kB) and 3 dE/kB (0.05 eV: 120 K
    to 1460 K). A unit slip (fs/ps, K/eV) or a thermostat that does not heat moves it far outside."""
    epsilon = 0.05
    barrier_K = 0.84 * epsilon / units.kB
    reached = []
    for seed in range(3):
        atoms, calc = _lj_dimer(epsilon)
        r = temperature_ramp(
            calc,
            atoms,
            t_start=10.0,
            t_end=3000.0,
            duration_ps=20.0,
            timestep_fs=10.0,
            seed=seed,
            check_every=5,
        )
        assert r["reason"] == "fragmented"
        assert not r["stable"]
        assert r["n_fragments_start"] == 1 and r["n_fragments"][-1] == 2
        reached.append(r["t_reached"])
    assert all(barrier_K / 4 < t < 3 * barrier_K for t in reached), (reached, barrier_K)
    # ten times deeper: breaks clearly later (or not at all)
    atoms, calc = _lj_dimer(10 * epsilon)
    deep = temperature_ramp(
        calc, atoms, t_start=10.0, t_end=3000.0, duration_ps=20.0, timestep_fs=10.0, seed=0, check_every=5
    )
    assert deep["t_reached"] > 1.5 * max(reached)


def test_ramp_keeps_a_strong_bond_and_reports_the_end_temperature():
    h2 = Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    r = temperature_ramp(
        MorsePotential(epsilon=4.5, r0=0.74, rho0=1.5),
        h2,
        t_start=300,
        t_end=3000,
        duration_ps=0.2,
        timestep_fs=0.25,
    )
    assert r["stable"] and r["reason"] is None
    assert r["t_reached"] == 3000.0
    assert r["steps_done"] == r["n_steps"] == 800
    assert r["target_temperature"][0] == 300.0 and r["target_temperature"][-1] == 3000.0


def test_ramp_stops_when_atoms_overlap():
    # Morse with its minimum at 0.3 Å pulls the atoms onto each other
    h2 = Atoms("H2", positions=[[0, 0, 0], [1.0, 0, 0]])
    calc = MorsePotential(epsilon=5.0, r0=0.3, rho0=0.5, rcut1=10.0, rcut2=12.0)
    r = temperature_ramp(calc, h2, t_start=300, t_end=1000, duration_ps=0.2, timestep_fs=0.5)
    assert r["reason"] == "overlap"
    assert r["min_distance"][-1] < 0.5
    assert r["t_reached"] < 1000


def test_ramp_bond_breaks_against_the_intended_chemistry(cu13):
    kwargs = dict(t_start=300, t_end=4000, duration_ps=1.0, timestep_fs=2.0, seed=3)
    free = temperature_ramp(EMT(), cu13, **kwargs)
    strict = temperature_ramp(EMT(), cu13, allowed_breaks=[], **kwargs)
    allowed = temperature_ramp(EMT(), cu13, allowed_breaks=["Cu-Cu"], **kwargs)
    assert strict["reason"] == "bond_broken"
    assert strict["broken_not_allowed"] == ["Cu-Cu"]
    assert strict["bonds"]["n_broken"] >= 1
    # the same seeded trajectory: the strict check stops first, the others are identical
    assert strict["t_reached"] < free["t_reached"]
    assert allowed["t_reached"] == free["t_reached"] and allowed["reason"] == free["reason"]
    np.testing.assert_array_equal(strict["epot"], free["epot"][: len(strict["epot"])])


def test_ramp_refuses_a_falling_ramp():
    with pytest.raises(ValueError, match="t_end"):
        temperature_ramp(EMT(), Icosahedron("Cu", 2), t_start=1000, t_end=300)
