"""NVE energy conservation and a heating ramp to the breaking point (pure ASE/numpy).

- :func:`nve_run`: velocity-Verlet MD from Maxwell-Boltzmann velocities (seeded); the total
  energy of a conservative model integrated with a small enough time step stays constant, so
  its drift measures both the model's smoothness and force/energy consistency.
  :func:`energy_drift` turns the trace into a drift per atom per ps and a spread.
- :func:`temperature_ramp`: Langevin MD whose target temperature rises linearly until the
  structure falls apart (it splits into more fragments than it started with, an atom flies away,
  or a bond breaks that is not part of the intended chemistry) or two atoms overlap; reports the
  temperature reached.

Times in ps (traces) or fs (steps), energies in eV, temperatures in K, lengths in Å.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase import Atoms, units

from .bonds import BOND_FACTOR, BREAK_FACTOR, bond_changes, min_distance, n_fragments, pair_label

__all__ = [
    "OVERLAP_DISTANCE",
    "energy_drift",
    "nve_run",
    "relax",
    "temperature_ramp",
]

#: two atoms closer than this (Å) overlap: no chemistry puts nuclei that close
OVERLAP_DISTANCE = 0.5


def _prepare(atoms: Atoms, calc, fix_com: bool = False) -> Atoms:
    """A copy with ``calc`` attached; with ``fix_com`` an unconstrained copy gets ``FixCom``."""
    from ase.constraints import FixCom

    work = atoms.copy()
    work.info = dict(atoms.info)
    if fix_com and not work.constraints:
        work.set_constraint(FixCom())
    work.calc = calc
    return work


def _kinetic_temperature(atoms: Atoms) -> float:
    """Instantaneous temperature (K) over the degrees of freedom the constraints leave."""
    return float(atoms.get_temperature())


def _init_velocities(atoms: Atoms, temperature_K: float, rng) -> None:
    """Maxwell-Boltzmann momenta at exactly ``temperature_K`` (constraints applied, e.g. FixCom)."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng, force_temp=temperature_K > 0)


def nve_run(
    calc,
    atoms: Atoms,
    temperature_K: float,
    *,
    timestep_fs: float = 0.5,
    duration_ps: float = 1.0,
    seed: int = 0,
    sample_every: int = 10,
    bond_factor: float = BOND_FACTOR,
    break_factor: float = BREAK_FACTOR,
) -> dict:
    """Velocity-Verlet (NVE) MD of ``atoms`` with ``calc`` from Maxwell-Boltzmann velocities.

    Velocities are drawn at ``temperature_K`` with ``numpy.random.default_rng(seed)`` and scaled
    to that temperature exactly (constraints such as ``FixAtoms`` are kept; a frame without
    constraints gets ``FixCom``, so its centre of mass stays at rest). ``round(duration_ps * 1000 / timestep_fs)`` steps; the energies
    are recorded at step 0 and every ``sample_every`` steps. The run stops early when an energy
    is not finite (``stopped_early`` and ``stop_reason``).

    Returns ``times_ps``, ``epot``, ``ekin``, ``etot`` (eV) and ``temperature`` (K) arrays,
    ``n_atoms``, ``n_steps`` (asked), ``steps_done``, ``timestep_fs``, ``temperature_K``, ``seed``,
    ``min_distance`` (Å, smallest seen at the samples), ``bonds`` (:func:`.bonds.bond_changes`
    from the first to the last frame), ``final_positions`` (Å) and :func:`energy_drift`'s keys.
    """
    from ase.md.verlet import VelocityVerlet

    if timestep_fs <= 0 or duration_ps <= 0 or sample_every < 1:
        raise ValueError("timestep_fs and duration_ps must be positive and sample_every >= 1")
    n_steps = int(round(duration_ps * 1000.0 / timestep_fs))
    work = _prepare(atoms, calc, fix_com=True)
    _init_velocities(work, temperature_K, np.random.default_rng(seed))
    start = work.copy()
    dyn = VelocityVerlet(work, timestep=timestep_fs * units.fs)
    times, epot, ekin, temps = [], [], [], []
    smallest = [min_distance(work)]
    stop_reason = None

    def record(step: int) -> bool:
        e_pot = float(work.get_potential_energy())
        e_kin = float(work.get_kinetic_energy())
        times.append(step * timestep_fs / 1000.0)
        epot.append(e_pot)
        ekin.append(e_kin)
        temps.append(_kinetic_temperature(work))
        smallest.append(min_distance(work))
        return bool(np.isfinite(e_pot) and np.isfinite(e_kin))

    steps_done = 0
    if not record(0):
        stop_reason = "non-finite energy"
    while stop_reason is None and steps_done < n_steps:
        chunk = min(sample_every, n_steps - steps_done)
        dyn.run(chunk)
        steps_done += chunk
        if not record(steps_done):
            stop_reason = "non-finite energy"
    etot = np.asarray(epot) + np.asarray(ekin)
    result = {
        "times_ps": np.asarray(times),
        "epot": np.asarray(epot),
        "ekin": np.asarray(ekin),
        "etot": etot,
        "temperature": np.asarray(temps),
        "n_atoms": len(work),
        "n_steps": n_steps,
        "steps_done": steps_done,
        "timestep_fs": float(timestep_fs),
        "temperature_K": float(temperature_K),
        "seed": seed,
        "stopped_early": stop_reason is not None,
        "stop_reason": stop_reason,
        "min_distance": float(min(smallest)),
        "bonds": bond_changes(start, work, bond_factor, break_factor),
        "final_positions": work.get_positions(),
    }
    result.update(energy_drift(result["times_ps"], etot, len(work)))
    return result


def energy_drift(times_ps: Iterable[float], etot: Iterable[float], n_atoms: int) -> dict:
    """Drift and spread of a total-energy trace (eV) sampled at ``times_ps`` (ps), per atom.

    - ``drift_meV_per_atom_per_ps``: slope of a least-squares line through ``etot / n_atoms``
      (meV/atom/ps; 0 for perfect conservation).
    - ``spread_meV_per_atom``: standard deviation of the residuals about that line (meV/atom): the
      fluctuation a finite time step causes even without drift.
    - ``max_deviation_meV_per_atom``: largest ``|E(t) - E(0)|`` per atom (meV/atom).
    """
    t = np.asarray(list(times_ps), dtype=float)
    e = np.asarray(list(etot), dtype=float)
    if t.shape != e.shape or t.size < 2:
        raise ValueError("energy_drift needs at least two samples of times and energies of the same length")
    if n_atoms < 1:
        raise ValueError("n_atoms must be positive")
    per_atom = e / n_atoms * 1000.0  # meV/atom
    if not np.all(np.isfinite(per_atom)):
        return {
            "drift_meV_per_atom_per_ps": None,
            "spread_meV_per_atom": None,
            "max_deviation_meV_per_atom": None,
        }
    slope, intercept = np.polyfit(t, per_atom, 1)
    residual = per_atom - (slope * t + intercept)
    return {
        "drift_meV_per_atom_per_ps": float(slope),
        "spread_meV_per_atom": float(residual.std()),
        "max_deviation_meV_per_atom": float(np.abs(per_atom - per_atom[0]).max()),
    }


def _broken_not_allowed(bonds: dict, allowed: set[str]) -> list[str]:
    return sorted(pair for pair in bonds["broken_by_pair"] if pair not in allowed)


def temperature_ramp(
    calc,
    atoms: Atoms,
    *,
    t_start: float = 300.0,
    t_end: float = 3000.0,
    duration_ps: float = 1.0,
    timestep_fs: float = 1.0,
    friction_per_fs: float = 0.02,
    seed: int = 0,
    check_every: int = 10,
    overlap_distance: float = OVERLAP_DISTANCE,
    allowed_breaks: Iterable[str] | None = None,
    bond_factor: float = BOND_FACTOR,
    break_factor: float = BREAK_FACTOR,
) -> dict:
    """Langevin MD with the target temperature rising linearly from ``t_start`` to ``t_end`` (K).

    ``round(duration_ps * 1000 / timestep_fs)`` steps; velocities start from Maxwell-Boltzmann at
    ``t_start`` (``numpy.random.default_rng(seed)``; the thermostat's noise uses the same
    generator); a frame without constraints gets ``FixCom``. ``friction_per_fs``: Langevin
    friction (1/fs). Every ``check_every`` steps the structure is checked, and the run stops at the
    first failure (``reason``):

    - ``"overlap"``: two atoms closer than ``overlap_distance`` Å;
    - ``"fragmented"``: more fragments (:func:`.bonds.n_fragments`) than at the start: the
      structure fell apart or an atom flew away;
    - ``"bond_broken"``: only when ``allowed_breaks`` is given (pairs like ``"H-H"``): a bond of
      the start broke (:func:`.bonds.bond_changes`) whose pair is not allowed to break;
    - ``"non-finite"``: the model returned a non-finite energy.

    Returns ``stable`` (no failure up to ``t_end``), ``reason``, ``t_reached`` (K: the target
    temperature at the failing check, or ``t_end``), ``kinetic_temperature_at_stop`` (K),
    ``time_ps`` and ``steps_done`` at the stop, ``n_fragments_start``, ``bonds`` (changes from the
    start to the last frame), ``broken_not_allowed``, and traces at the checks: ``times_ps``,
    ``target_temperature``, ``temperature`` (K), ``epot`` (eV), ``min_distance`` (Å),
    ``n_fragments``.
    """
    from ase.md.langevin import Langevin

    if timestep_fs <= 0 or duration_ps <= 0 or check_every < 1:
        raise ValueError("timestep_fs and duration_ps must be positive and check_every >= 1")
    if t_end < t_start:
        raise ValueError(f"t_end ({t_end} K) must not be below t_start ({t_start} K)")
    allowed = None if allowed_breaks is None else {pair_label(*p.split("-")) for p in allowed_breaks}
    n_steps = int(round(duration_ps * 1000.0 / timestep_fs))
    work = _prepare(atoms, calc, fix_com=True)
    rng = np.random.default_rng(seed)
    _init_velocities(work, t_start, rng)
    start = work.copy()
    fragments_start = n_fragments(start, break_factor)
    dyn = Langevin(
        work,
        timestep=timestep_fs * units.fs,
        temperature_K=t_start,
        friction=friction_per_fs / units.fs,
        fixcm=False,  # the centre of mass is held by FixCom (or the slab's fixed atoms)
        rng=rng,
    )

    def target(step: int) -> float:
        return float(t_start + (t_end - t_start) * step / n_steps)

    trace: dict[str, list] = {
        k: []
        for k in ("times_ps", "target_temperature", "temperature", "epot", "min_distance", "n_fragments")
    }
    reason = None
    steps_done = 0
    bonds = bond_changes(start, work, bond_factor, break_factor)

    def check(step: int) -> str | None:
        nonlocal bonds
        e_pot = float(work.get_potential_energy())
        dmin = min_distance(work)
        fragments = n_fragments(work, break_factor)
        trace["times_ps"].append(step * timestep_fs / 1000.0)
        trace["target_temperature"].append(target(step))
        trace["temperature"].append(_kinetic_temperature(work))
        trace["epot"].append(e_pot)
        trace["min_distance"].append(dmin)
        trace["n_fragments"].append(fragments)
        if not np.isfinite(e_pot) or not np.all(np.isfinite(work.get_positions())):
            return "non-finite"
        if dmin < overlap_distance:
            return "overlap"
        if fragments > fragments_start:
            return "fragmented"
        if allowed is not None:
            bonds = bond_changes(start, work, bond_factor, break_factor)
            if _broken_not_allowed(bonds, allowed):
                return "bond_broken"
        return None

    reason = check(0)
    while reason is None and steps_done < n_steps:
        chunk = min(check_every, n_steps - steps_done)
        # the target rises in steps of check_every MD steps: the middle of the coming chunk
        dyn.set_temperature(temperature_K=target(steps_done + 0.5 * chunk))
        dyn.run(chunk)
        steps_done += chunk
        reason = check(steps_done)
    if np.all(np.isfinite(work.get_positions())):
        bonds = bond_changes(start, work, bond_factor, break_factor)
    return {
        "stable": reason is None,
        "reason": reason,
        "t_reached": target(steps_done),
        "kinetic_temperature_at_stop": trace["temperature"][-1],
        "time_ps": steps_done * timestep_fs / 1000.0,
        "steps_done": steps_done,
        "n_steps": n_steps,
        "t_start": float(t_start),
        "t_end": float(t_end),
        "timestep_fs": float(timestep_fs),
        "friction_per_fs": float(friction_per_fs),
        "seed": seed,
        "n_atoms": len(work),
        "n_fragments_start": fragments_start,
        "bonds": bonds,
        "broken_not_allowed": [] if allowed is None else _broken_not_allowed(bonds, allowed),
        **{key: np.asarray(values, dtype=float) for key, values in trace.items()},
    }


def relax(calc, atoms: Atoms, *, fmax: float = 0.05, steps: int = 200) -> tuple[Atoms, dict]:
    """A copy of ``atoms`` relaxed with ``calc`` (ASE ``FIRE``, at most ``steps`` steps, to ``fmax`` eV/Å).

    MD started far from a minimum turns the excess potential energy into heat; relaxing first
    makes the start temperature the one asked. Constraints are kept; the cell is not relaxed.
    Returns the relaxed copy (no calculator attached) and ``{"converged", "steps", "fmax",
    "energy_change"}`` (eV/Å, eV).
    """
    from ase.optimize import FIRE

    work = _prepare(atoms, calc)
    e0 = float(work.get_potential_energy())
    opt = FIRE(work, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    forces = work.get_forces()
    result = work.copy()
    result.info = dict(atoms.info)
    result.calc = None
    return result, {
        "converged": converged,
        "steps": int(opt.nsteps),
        "fmax": float(np.linalg.norm(forces, axis=1).max()) if len(work) else 0.0,
        "energy_change": float(work.get_potential_energy()) - e0,
    }
