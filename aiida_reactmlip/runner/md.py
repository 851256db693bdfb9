"""``reactmlip-runner md``: MLIP molecular dynamics from each start frame; the saved frames are a candidate pool.

Never imports aiida. One seeded NVT trajectory per start frame (ASE ``Langevin`` or ``NVTBerendsen``),
velocities drawn from Maxwell-Boltzmann at ``temperature_K``; every ``save_every`` steps the frame is
kept with the model's energy (eV) and forces (eV/Å) as labels. A trajectory that blows up (a force
above ``max_force`` eV/Å, two atoms closer than ``min_distance`` Å, a non-finite energy or force) is
stopped at that step: the frames saved before it are kept and the report says where and why.

``input.json`` (relative paths are relative to the directory of ``input.json``)::

    {
      "family": "chgnet", "model_name": "chgnet-0.3.0", "model_file": "model.pth",
      "frames_file": "frames.extxyz",
      "ensemble": "langevin",        # or "nvt_berendsen"
      "temperature_K": 300.0,         # thermostat target and initial Maxwell-Boltzmann temperature (K)
      "timestep_fs": 0.5,             # fs
      "n_steps": 100,                 # MD steps per start frame
      "save_every": 10,               # keep every N-th step (steps N, 2N, ... <= n_steps)
      "save_start": false,            # also keep step 0 (the start frame itself)
      "friction": 0.01,               # Langevin friction, 1/fs
      "taut_fs": 100.0,               # Berendsen coupling time, fs
      "seed": 0,                      # start frame i uses numpy.random.default_rng([seed, i])
      "fixed_atoms": [0, 1],          # atoms fixed in every start frame, or {"0": [0, 1]} per frame
      "max_force": 50.0,              # eV/Å: a larger force on a free atom is a blow-up
      "min_distance": 0.5,            # Å: atoms closer than this is a blow-up
      "device": "cpu", "num_threads": null, "dtype": null,
      "output_file": "trajectory.extxyz", "results_file": "report.json", "thermo_file": "thermo.npz"
    }

Outputs:

- ``trajectory.extxyz``: the saved frames, labelled with the model's energy (eV) and raw forces (eV/Å, fixed
  atoms included; no stress). Frame info: ``group`` = ``"md-<start>"`` (the start frame's ``name`` when the
  start frames have distinct names, else its index), ``md_start`` (index), ``md_step``, ``md_time_fs``,
  ``temperature_K`` (instantaneous), ``role="mlip_md"``, ``model_name``, ``name`` = ``"<group>-<step>"``,
  ``fixed_atoms`` (JSON list) when atoms were fixed, ``boxed`` when a molecule was put in a box; the start
  frame's other info (``system`` ...) is kept, a DFT ``source_uuid`` as ``initial_source_uuid``.
- ``report.json``: per start frame (steps done, frames saved, blew up and why, max/mean temperature K,
  seconds) and totals (``steps_done``, ``n_frames``, ``seconds``, ``steps_per_second``,
  ``max_temperature_K``, ``blew_up``).
- ``thermo.npz``: per start frame ``i``, at every step done: ``epot_<i>`` (eV), ``temperature_<i>`` (K),
  ``fmax_<i>`` (largest force norm on a free atom, eV/Å).

Molecules and clusters (no periodic direction, or a missing cell vector) are boxed first, as
:func:`aiida_reactmlip.models.ensure_cell` does (``vacuum`` Å on each side, pbc True), so every saved frame
can be labelled by plane-wave DFT as it is. Frames with a full cell keep their cell and pbc.
Without fixed atoms the centre of mass is held still (``ase.constraints.FixCom``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from aiida_reactmlip.models import ensure_cell, is_periodic_3d
from aiida_reactmlip.runner import files
from aiida_reactmlip.runner.contract import MD_SETTINGS, fixed_atoms_info


# ------------------------------------------------------------------------------- the dynamics


def energy_forces_calculator(calc):
    """An ASE calculator giving only energy (eV) and forces (eV/Å) of ``calc``: no stress during MD.

    CHGNet computes the stress by default (about a third of its cost); here it is asked for ``ef`` only.
    Forces are the model's raw forces (ASE applies constraints on top).
    """
    import inspect

    from ase.calculators.calculator import Calculator, all_changes

    takes_task = "task" in inspect.signature(calc.calculate).parameters

    class EnergyForces(Calculator):
        implemented_properties = ("energy", "free_energy", "forces")

        def __init__(self):
            super().__init__()
            self.inner = calc
            self.n_evaluations = 0

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            probe = self.atoms.copy()
            probe.constraints = []
            if takes_task:
                self.inner.calculate(probe, ["energy", "forces"], all_changes, task="ef")
            else:
                self.inner.calculate(probe, ["energy", "forces"], all_changes)
            energy = float(np.asarray(self.inner.results["energy"]).reshape(()))
            forces = np.array(self.inner.results["forces"], dtype=float).reshape(len(probe), 3)
            self.n_evaluations += 1
            self.results = {"energy": energy, "free_energy": energy, "forces": forces}

    return EnergyForces()


def box_if_needed(atoms, vacuum: float = 10.0):
    """(atoms, boxed): molecules and frames with a missing cell vector boxed like :func:`ensure_cell`."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    degenerate = abs(float(np.linalg.det(np.asarray(atoms.cell[:])))) < 1e-8
    if is_periodic_3d(atoms) or (pbc.any() and not degenerate):
        return atoms.copy(), False
    return ensure_cell(atoms, vacuum), True


def min_interatomic_distance(atoms, within: float) -> float:
    """Smallest distance (Å, periodic images included) between two atoms if below ``within``, else ``inf``."""
    from ase.neighborlist import neighbor_list

    if len(atoms) < 2 or within <= 0:
        return math.inf
    distances = neighbor_list("d", atoms, within, self_interaction=False)
    return float(distances.min()) if len(distances) else math.inf


def _thermalize(atoms, temperature_K: float, rng) -> None:
    """Maxwell-Boltzmann momenta at exactly ``temperature_K`` (constraints respected); zero at 0 K."""
    if temperature_K <= 0:
        atoms.set_momenta(np.zeros((len(atoms), 3)))
        return
    try:
        from ase.md.velocitydistribution import thermalize_momenta  # ASE >= 3.29
    except ImportError:  # pragma: no cover - older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, force_temp=True, rng=rng)
        return
    thermalize_momenta(atoms, temperature_K, exact_temperature=True, rng=rng)


def run_trajectory(atoms, calc, settings: dict[str, Any], *, fixed: list[int], rng, on_save=None) -> dict[str, Any]:
    """Run one NVT trajectory of ``atoms`` (modified in place) with ``calc``; pure ASE, no files.

    ``settings`` as :func:`~aiida_reactmlip.runner.contract.check_md_settings` returns them; ``fixed`` atom indices kept fixed (FixAtoms;
    without them FixCom). ``on_save(atoms, step, temperature_K)`` is called on every saved step, with the
    calculator results current. Returns a record: ``steps_done``, ``saved_steps``, ``blew_up``,
    ``blow_up_step``, ``blow_up_reason``, and per step done ``epot`` (eV), ``temperature`` (K), ``fmax`` (eV/Å).
    A blown-up step is neither saved nor counted as done.
    """
    from ase import units
    from ase.constraints import FixAtoms, FixCom

    atoms.set_constraint(FixAtoms(indices=fixed) if fixed else FixCom())
    atoms.calc = calc
    free = np.ones(len(atoms), dtype=bool)
    free[list(fixed)] = False
    _thermalize(atoms, settings["temperature_K"], rng)
    dt = settings["timestep_fs"] * units.fs
    if settings["ensemble"] == "langevin":
        from ase.md.langevin import Langevin

        dyn = Langevin(atoms, dt, temperature_K=settings["temperature_K"], friction=settings["friction"] / units.fs,
                       fixcm=False, rng=rng)
    else:
        from ase.md.nvtberendsen import NVTBerendsen

        dyn = NVTBerendsen(atoms, dt, temperature_K=settings["temperature_K"], taut=settings["taut_fs"] * units.fs,
                           fixcm=False)
    record: dict[str, Any] = {"steps_done": 0, "saved_steps": [], "blew_up": False, "blow_up_step": None,
                              "blow_up_reason": None, "epot": [], "temperature": [], "fmax": []}

    def check(step: int) -> bool:
        energy = float(atoms.get_potential_energy())
        raw = atoms.get_forces(apply_constraint=False)
        norms = np.sqrt((raw**2).sum(axis=1))[free]
        fmax = float(norms.max()) if len(norms) else 0.0
        reason = None
        dmin = min_interatomic_distance(atoms, settings["min_distance"])
        if dmin < settings["min_distance"]:
            reason = f"atoms {dmin:.3f} Å apart, closer than min_distance {settings['min_distance']:g} Å"
        elif not math.isfinite(energy) or not np.all(np.isfinite(raw)):
            reason = "non-finite energy or forces"
        elif fmax > settings["max_force"]:
            reason = f"force {fmax:.3g} eV/Å above max_force {settings['max_force']:g} eV/Å"
        if reason is not None:
            record.update(blew_up=True, blow_up_step=step, blow_up_reason=reason)
            return False
        temperature = float(atoms.get_temperature())
        record["epot"].append(energy)
        record["temperature"].append(temperature)
        record["fmax"].append(fmax)
        record["steps_done"] = step
        if (step == 0 and settings["save_start"]) or (step > 0 and step % settings["save_every"] == 0):
            record["saved_steps"].append(step)
            if on_save is not None:
                on_save(atoms, step, temperature)
        return True

    if not check(0):
        return record
    forces = atoms.get_forces(md=True)
    for step in range(1, settings["n_steps"] + 1):
        forces = dyn.step(forces)
        if not check(step):
            break
    return record


def start_labels(infos: list[dict[str, Any]]) -> list[str]:
    """``md-<name>`` per start frame when every start frame has a distinct ``name``, else ``md-<index>``."""
    names = [info.get("name") for info in infos]
    if all(isinstance(n, str) and n for n in names) and len(set(names)) == len(names):
        return [f"md-{n}" for n in names]
    return [f"md-{i}" for i in range(len(infos))]


def run_md(params: dict[str, Any]) -> dict[str, Any]:
    """MD from every start frame of ``params`` (as ``files.read_task_input(..., "md")`` returns them); write
    the outputs (see the module docstring).

    Returns the report; raises :class:`RunnerError` on bad input or a failing model. A blow-up is not an
    error: the frames before it are written and ``report["blew_up"]`` is true.
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    wall_start = time.perf_counter()
    frames, images, calc, info, load_seconds = files.load_frames_and_calculator(params, "md")
    n_starts = len(images)
    fixed_per_start = files.fixed_atoms_per_frame(frames.info, images, params["fixed_atoms"])
    md_calc = energy_forces_calculator(calc)
    groups = start_labels(frames.info)
    settings = {k: params[k] for k in MD_SETTINGS if k not in ("device", "num_threads", "dtype")}
    files.log(f"md: {n_starts} start frame(s), {settings['ensemble']} at {settings['temperature_K']:g} K, "
         f"{settings['n_steps']} steps of {settings['timestep_fs']:g} fs, saving every {settings['save_every']}, "
         f"seed {settings['seed']}")

    saved, per_start, thermo = [], [], {}
    md_start = time.perf_counter()
    with files.failure_reported("MD"):
        for i, start in enumerate(images):
            atoms, boxed = box_if_needed(start, params["vacuum"])
            fixed = fixed_per_start[i]
            base_info = files.mlip_info(frames.info[i], "mlip_md", params["model_name"])
            base_info.update(group=groups[i], md_start=i, ensemble=settings["ensemble"], seed=settings["seed"])
            if fixed:
                base_info["fixed_atoms"] = fixed_atoms_info(fixed)
            if boxed:
                base_info["boxed"] = True

            def on_save(atoms, step, temperature, base_info=base_info):
                frame = atoms.copy()
                frame.constraints = []
                frame.info = dict(base_info)
                frame.info.update(name=f"{base_info['group']}-{step}", md_step=step,
                                  md_time_fs=step * settings["timestep_fs"], temperature_K=temperature)
                frame.calc = SinglePointCalculator(frame, energy=float(atoms.get_potential_energy()),
                                                   forces=atoms.get_forces(apply_constraint=False).copy())
                saved.append(frame)

            start_time = time.perf_counter()
            rng = np.random.default_rng([settings["seed"], i])
            record = run_trajectory(atoms, md_calc, settings, fixed=fixed, rng=rng, on_save=on_save)
            seconds = time.perf_counter() - start_time
            temps = record["temperature"]
            entry = {
                "start": i,
                "group": groups[i],
                "n_atoms": len(atoms),
                "steps_done": record["steps_done"],
                "n_saved": len(record["saved_steps"]),
                "saved_steps": record["saved_steps"],
                "blew_up": record["blew_up"],
                "blow_up_step": record["blow_up_step"],
                "blow_up_reason": record["blow_up_reason"],
                "max_temperature_K": max(temps) if temps else None,
                "mean_temperature_K": float(np.mean(temps[1:])) if len(temps) > 1 else None,
                "fixed_atoms": fixed,
                "boxed": boxed,
                "seconds": seconds,
            }
            per_start.append(entry)
            thermo[f"epot_{i}"] = np.asarray(record["epot"], dtype=float)
            thermo[f"temperature_{i}"] = np.asarray(temps, dtype=float)
            thermo[f"fmax_{i}"] = np.asarray(record["fmax"], dtype=float)
            status = (f"BLEW UP at step {record['blow_up_step']} ({record['blow_up_reason']})" if record["blew_up"]
                      else f"{record['steps_done']} steps")
            files.log(f"start {i} ({groups[i]}, {len(atoms)} atoms): {status}, {entry['n_saved']} frame(s) saved, "
                 f"max T {entry['max_temperature_K'] or float('nan'):.0f} K, {seconds:.2f} s")
    md_seconds = time.perf_counter() - md_start

    steps_done = sum(entry["steps_done"] for entry in per_start)
    temps_all = [entry["max_temperature_K"] for entry in per_start if entry["max_temperature_K"] is not None]
    report = {
        "task": "md",
        "starts": per_start,
        "n_starts": n_starts,
        "n_frames": len(saved),
        "steps_done": steps_done,
        "seconds": md_seconds,
        "steps_per_second": steps_done / md_seconds if md_seconds > 0 and steps_done else None,
        "max_temperature_K": max(temps_all) if temps_all else None,
        "blew_up": any(entry["blew_up"] for entry in per_start),
        "blown_up_starts": [entry["start"] for entry in per_start if entry["blew_up"]],
        "settings": settings,
        **files.run_record(params, info, load_seconds, wall_start, md_calc.n_evaluations),
    }
    files.write_outputs(params, saved, report, "thermo_file", thermo)
    rate = f"{report['steps_per_second']:.2f} steps/s" if report["steps_per_second"] else "no step"
    files.log(f"done: {steps_done} steps in {md_seconds:.2f} s ({rate}), {len(saved)} frame(s) saved"
         + (f"; blew up in start frame(s) {report['blown_up_starts']}" if report["blew_up"] else ""))
    return report
