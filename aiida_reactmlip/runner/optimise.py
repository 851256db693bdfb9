"""``reactmlip-runner relax`` and ``reactmlip-runner neb``: geometry optimisation and climbing-image NEB.

Never imports aiida. Both run ASE optimisers (:data:`~aiida_reactmlip.runner.contract.OPTIMIZERS`) on one
shared, memoising calculator; atoms named by ``fixed_atoms`` (settings, or a frame's info) stay where they
are. Settings, defaults and allowed values: :data:`~aiida_reactmlip.runner.contract.RELAX_SETTINGS` and
:data:`~aiida_reactmlip.runner.contract.NEB_SETTINGS`. Example ``input.json`` of ``relax``::

    {"family": "chgnet", "model_name": "chgnet-0.3.0", "frames_file": "frames.extxyz",
     "optimizer": "BFGS", "fmax": 0.05, "max_steps": 200, "fixed_atoms": {"0": [0, 1]}}

and of ``neb``::

    {"family": "chgnet", "model_name": "chgnet-0.3.0", "frames_file": "ends.extxyz", "n_images": 5,
     "climb": true, "fmax": 0.05, "max_steps": 300, "relax_endpoints": true, "interpolation": "idpp"}

An optimisation that does not converge within its steps exits with
:data:`~aiida_reactmlip.runner.contract.EXIT_NOT_CONVERGED` after writing all its outputs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from aiida_reactmlip.models import is_periodic_3d
from aiida_reactmlip.runner.contract import EXIT_INPUT, EXIT_NOT_CONVERGED, RunnerError, fixed_atoms_info
from aiida_reactmlip.runner.files import (
    failure_reported,
    fixed_atoms_per_frame,
    labelled_frame,
    load_frames_and_calculator,
    log,
    mlip_info,
    run_record,
    write_outputs,
)


def ase_optimizer(name: str):
    """The ASE optimiser class of one of :data:`~aiida_reactmlip.runner.contract.OPTIMIZERS`."""
    from ase.optimize import BFGS, FIRE, LBFGS

    return {"BFGS": BFGS, "FIRE": FIRE, "LBFGS": LBFGS}[name]


def max_force(atoms) -> float:
    """Largest force norm (eV/A) on the atoms that are free to move (constraints applied)."""
    forces = atoms.get_forces()  # FixAtoms zeroes the fixed atoms
    return float(np.sqrt((forces**2).sum(axis=1)).max()) if len(atoms) else 0.0


def memoizing_calculator(calc, size: int = 16):
    """An ASE calculator that answers from a cache of the last ``size`` states before asking ``calc``.

    With one calculator shared by all NEB images, ASE recomputes the end states on every step and an
    image more than once per step (every call looks like a new state to the shared calculator); keyed
    on numbers, positions, cell and pbc, each state is evaluated once. Forces are stored unconstrained
    (ASE applies constraints on top).
    """
    from collections import OrderedDict

    from ase.calculators.calculator import Calculator, all_changes

    class MemoCalculator(Calculator):
        implemented_properties = ("energy", "free_energy", "forces", "stress")

        def __init__(self):
            super().__init__()
            self.inner = calc
            self.cache: OrderedDict = OrderedDict()
            self.n_evaluations = 0

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            atoms = self.atoms
            key = (atoms.numbers.tobytes(), atoms.positions.tobytes(), np.asarray(atoms.cell[:]).tobytes(),
                   np.asarray(atoms.pbc).tobytes())
            want_stress = "stress" in properties and is_periodic_3d(atoms)
            cached = self.cache.get(key)
            if cached is None or (want_stress and "stress" not in cached):
                probe = atoms.copy()
                probe.constraints = []
                probe.calc = self.inner
                cached = {"energy": float(probe.get_potential_energy()), "forces": probe.get_forces().copy()}
                cached["free_energy"] = cached["energy"]
                if want_stress:
                    cached["stress"] = probe.get_stress(voigt=True).copy()
                self.n_evaluations += 1
                self.cache[key] = cached
                while len(self.cache) > size:
                    self.cache.popitem(last=False)
            self.cache.move_to_end(key)
            self.results = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in cached.items()}

    return MemoCalculator()


def run_relax(params: dict[str, Any]) -> dict[str, Any]:
    """Relax every frame with the model (ASE optimiser, fixed atoms kept fixed); write the outputs.

    Writes ``relaxed.extxyz`` (relaxed frames labelled with the model's energy in eV, forces in eV/A and,
    for 3D-periodic frames, stress in eV/A^3; info ``role="mlip_relaxed"``), ``results.json`` (per frame:
    converged, steps, fmax eV/A, energy eV, fixed atoms, seconds) and ``trajectory.npz`` (``energies_<i>``
    and ``fmax_<i>`` per optimiser step of frame i). Raises :class:`RunnerError` with exit code
    :data:`EXIT_NOT_CONVERGED` *after* writing them when a frame did not reach ``fmax``.
    """
    from ase.constraints import FixAtoms
    from ase.filters import FrechetCellFilter

    wall_start = time.perf_counter()
    frames, images, calc, info, load_seconds = load_frames_and_calculator(params, "relax")
    n_frames = len(images)
    fixed_per_frame = fixed_atoms_per_frame(frames.info, images, params["fixed_atoms"])
    if params["relax_cell"]:
        flat = [i for i, atoms in enumerate(images) if not is_periodic_3d(atoms)]
        if flat:
            raise RunnerError(EXIT_INPUT, f"relax_cell needs 3D-periodic frames; frame(s) {flat} are not")
    optimizer_class = ase_optimizer(params["optimizer"])
    calc = memoizing_calculator(calc)

    relaxed, results, trajectory = [], [], {}
    run_start = time.perf_counter()
    with failure_reported("relaxation"):
        for i, atoms in enumerate(images):
            start = time.perf_counter()
            atoms.calc = calc
            if fixed_per_frame[i]:
                atoms.set_constraint(FixAtoms(indices=fixed_per_frame[i]))
            target = FrechetCellFilter(atoms) if params["relax_cell"] else atoms
            energies, fmaxes = [], []

            def record(atoms=atoms, energies=energies, fmaxes=fmaxes):
                energies.append(float(atoms.get_potential_energy()))
                fmaxes.append(max_force(atoms))

            optimizer = optimizer_class(target, logfile=None)
            optimizer.attach(record, interval=1)
            optimizer.run(fmax=params["fmax"], steps=params["max_steps"])
            final_fmax = max_force(atoms)
            # ASE's criterion, on what the optimiser moves (with relax_cell: atoms and the cell)
            target_forces = target.get_forces()
            converged = bool((target_forces**2).sum(axis=1).max() < params["fmax"] ** 2)
            steps = int(optimizer.nsteps)
            frame_info = mlip_info(frames.info[i], "mlip_relaxed", params["model_name"])
            frame_info.update(converged=converged, steps=steps)
            if fixed_per_frame[i]:
                frame_info["fixed_atoms"] = fixed_atoms_info(fixed_per_frame[i])
            relaxed.append(labelled_frame(atoms, calc, frame_info))
            seconds = time.perf_counter() - start
            results.append({
                "converged": converged,
                "steps": steps,
                "fmax": final_fmax,
                "energy": float(relaxed[-1].get_potential_energy()),
                "n_atoms": len(atoms),
                "fixed_atoms": fixed_per_frame[i],
                "seconds": seconds,
            })
            trajectory[f"energies_{i}"] = np.asarray(energies, dtype=float)
            trajectory[f"fmax_{i}"] = np.asarray(fmaxes, dtype=float)
            log(f"frame {i}: {'converged' if converged else 'NOT converged'} in {steps} steps, "
                 f"fmax {final_fmax:.4f} eV/A, energy {results[-1]['energy']:.6f} eV, {seconds:.2f} s")
    run_seconds = time.perf_counter() - run_start

    not_converged = [i for i, r in enumerate(results) if not r["converged"]]
    summary = {
        "task": "relax",
        "frames": results,
        "n_frames": n_frames,
        "n_converged": n_frames - len(not_converged),
        "not_converged": not_converged,
        "settings": {k: params[k] for k in ("optimizer", "fmax", "max_steps", "relax_cell")},
        "relax_seconds": run_seconds,
        **run_record(params, info, load_seconds, wall_start, calc.n_evaluations),
    }
    write_outputs(params, relaxed, summary, "trajectory_file", trajectory)
    log(f"done: {n_frames - len(not_converged)}/{n_frames} frames converged in {run_seconds:.2f} s")
    if not_converged:
        raise RunnerError(
            EXIT_NOT_CONVERGED,
            f"frame(s) {not_converged} did not reach fmax {params['fmax']} eV/A within {params['max_steps']} steps",
        )
    return summary


def run_neb(params: dict[str, Any]) -> dict[str, Any]:
    """Climbing-image NEB with the model (ASE ``ase.mep.NEB``, one shared calculator); write the outputs.

    The frames are the end states (2 frames: ``n_images`` images are interpolated between them, idpp or
    linear) or a whole initial band (3 or more frames: used as given). Writes ``band.extxyz`` (the final
    images labelled with the model's energies in eV and forces in eV/A, info ``role="mlip_neb_image"``)
    and ``profile.json`` (energies, relative energies, forward and reverse barrier, reaction energy in
    eV, highest image, converged, steps). Raises :class:`RunnerError` with :data:`EXIT_NOT_CONVERGED`
    after writing them when the band did not reach ``fmax``.
    """
    from ase.constraints import FixAtoms
    from ase.mep import NEB

    wall_start = time.perf_counter()
    frames, images, calc, info, load_seconds = load_frames_and_calculator(params, "neb")
    if len(images) < 2:
        raise RunnerError(EXIT_INPUT, f"NEB needs at least the two end states, got {len(images)} frame(s)")
    first = images[0]
    for k, atoms in enumerate(images[1:], start=1):
        if len(atoms) != len(first) or not np.array_equal(atoms.numbers, first.numbers):
            raise RunnerError(EXIT_INPUT, f"frame {k} has other atoms than frame 0 (same atoms in the same order needed)")
        if not np.allclose(atoms.cell[:], first.cell[:]) or not np.array_equal(atoms.pbc, first.pbc):
            raise RunnerError(EXIT_INPUT, f"frame {k} has another cell or pbc than frame 0")
    fixed = sorted(set().union(*fixed_atoms_per_frame(frames.info, images, params["fixed_atoms"])))
    optimizer_class = ase_optimizer(params["optimizer"])
    calc = memoizing_calculator(calc, size=max(16, len(images) + params["n_images"] + 4))  # whole band

    def constrain(atoms):
        if fixed:
            atoms.set_constraint(FixAtoms(indices=fixed))
        return atoms

    start = time.perf_counter()
    endpoint_results = []
    with failure_reported("NEB"):
        endpoints = [constrain(images[0].copy()), constrain(images[-1].copy())]
        for label, atoms in zip(("initial", "final"), endpoints):
            atoms.calc = calc
            steps, converged = 0, None
            if params["relax_endpoints"]:
                optimizer = optimizer_class(atoms, logfile=None)
                optimizer.run(fmax=params["endpoint_fmax"], steps=params["endpoint_max_steps"])
                steps = int(optimizer.nsteps)
                converged = bool(max_force(atoms) < params["endpoint_fmax"])
            endpoint_results.append({
                "end_state": label, "relaxed": params["relax_endpoints"], "steps": steps, "converged": converged,
                "fmax": max_force(atoms), "energy": float(atoms.get_potential_energy()),
            })
            log(f"{label} state: energy {endpoint_results[-1]['energy']:.6f} eV, fmax "
                 f"{endpoint_results[-1]['fmax']:.4f} eV/A" + (f", relaxed in {steps} steps" if steps else ""))
        if len(images) == 2:
            band = [endpoints[0]] + [constrain(endpoints[0].copy()) for _ in range(params["n_images"])] + [endpoints[1]]
            interpolated = True
        else:
            band = [endpoints[0]] + [constrain(atoms.copy()) for atoms in images[1:-1]] + [endpoints[1]]
            interpolated = False
        for atoms in band:
            atoms.calc = calc
        neb = NEB(band, climb=params["climb"], allow_shared_calculator=True)
        if interpolated:
            neb.interpolate(params["interpolation"], apply_constraint=True)
        optimizer = optimizer_class(neb, logfile=None)
        optimizer.run(fmax=params["fmax"], steps=params["max_steps"])
        steps = int(optimizer.nsteps)
        neb_fmax = float(np.sqrt((neb.get_forces() ** 2).sum(axis=1)).max())
        converged = bool(neb_fmax < params["fmax"])
        labelled = []
        for k, atoms in enumerate(band):
            frame_info = mlip_info(frames.info[0] if k == 0 else frames.info[-1] if k == len(band) - 1 else {},
                                    "mlip_neb_image", params["model_name"])
            frame_info["image"] = k
            if fixed:
                frame_info["fixed_atoms"] = fixed_atoms_info(fixed)
            labelled.append(labelled_frame(atoms, calc, frame_info))
    neb_seconds = time.perf_counter() - start

    energies = np.array([a.get_potential_energy() for a in labelled], dtype=float)
    relative = energies - energies[0]
    highest = int(np.argmax(energies))
    profile = {
        "task": "neb",
        "energies": energies.tolist(),
        "relative_energies": relative.tolist(),
        "barrier": float(energies.max() - energies[0]),
        "reverse_barrier": float(energies.max() - energies[-1]),
        "reaction_energy": float(energies[-1] - energies[0]),
        "highest_image": highest,
        "n_images": len(band),
        "n_intermediate": len(band) - 2,
        "interpolated": interpolated,
        "converged": converged,
        "steps": steps,
        "fmax": neb_fmax,
        "fixed_atoms": fixed,
        "end_states": endpoint_results,
        "settings": {k: params[k] for k in ("n_images", "climb", "fmax", "max_steps", "optimizer",
                                             "relax_endpoints", "endpoint_fmax", "interpolation")},
        "neb_seconds": neb_seconds,
        **run_record(params, info, load_seconds, wall_start, calc.n_evaluations),
    }
    write_outputs(params, labelled, profile)
    log(f"done: NEB {'converged' if converged else 'NOT converged'} in {steps} steps (fmax {neb_fmax:.4f} eV/A), "
         f"barrier {profile['barrier']:.4f} eV at image {highest}, reaction energy {profile['reaction_energy']:.4f} eV, "
         f"{neb_seconds:.2f} s")
    if not converged:
        raise RunnerError(
            EXIT_NOT_CONVERGED, f"the band did not reach fmax {params['fmax']} eV/A within {params['max_steps']} steps"
        )
    return profile


