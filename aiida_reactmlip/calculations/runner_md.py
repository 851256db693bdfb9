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

import json
import math
import os
import pathlib
import sys
import time
import traceback
from typing import Any

import numpy as np

from aiida_reactmlip.calculations.runner import (
    EXIT_EVALUATION,
    EXIT_INPUT,
    RunnerError,
    _as_index_list,
    _load_frames_and_calculator,
    _log,
    _mlip_info,
    _package_versions,
    _read_json_object,
    _write_json,
    _write_npz,
    frame_fixed_atoms,
)
from aiida_reactmlip.models import (
    ModelNotAvailableError,
    UnknownModelError,
    ensure_cell,
    get_model_spec,
    is_periodic_3d,
    locate_model_file,
    normalize_family,
)

ENSEMBLES = ("langevin", "nvt_berendsen")

#: MD settings with defaults: what the ``reactmlip.md`` CalcJob accepts in ``parameters``.
MD_SETTINGS: dict[str, Any] = {
    "ensemble": "langevin",
    "temperature_K": 300.0,
    "timestep_fs": 0.5,
    "n_steps": 100,
    "save_every": 10,
    "save_start": False,
    "friction": 0.01,
    "taut_fs": 100.0,
    "seed": 0,
    "fixed_atoms": [],
    "max_force": 50.0,
    "min_distance": 0.5,
    "vacuum": 10.0,
    "device": "cpu",
    "num_threads": None,
    "dtype": None,
}

#: Keys of an ``md`` input file, with defaults (``family`` and ``frames_file`` are required).
MD_DEFAULTS: dict[str, Any] = {
    "model_file": None,
    "model_name": None,
    **MD_SETTINGS,
    "output_file": "trajectory.extxyz",
    "results_file": "report.json",
    "thermo_file": "thermo.npz",
}

_FILE_KEYS = ("model_file", "frames_file", "output_file", "results_file", "thermo_file")


def check_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` MD settings (any subset of :data:`MD_SETTINGS`) checked and normalised, defaults filled.

    Raises ``ValueError`` naming the first problem: an unknown key, an ensemble other than ``langevin`` /
    ``nvt_berendsen``, a negative temperature, a non-positive timestep / friction / coupling time,
    ``save_every`` < 1, settings under which no frame would be saved, fixed atoms that are not indices.
    ``fixed_atoms`` comes back as a list (every start frame) or a dict {frame index: sorted list}.
    """
    unknown = sorted(set(raw) - set(MD_SETTINGS))
    if unknown:
        raise ValueError(f"unknown md setting(s) {', '.join(unknown)}; known: {', '.join(MD_SETTINGS)}")
    params = {**MD_SETTINGS, **raw}
    ensemble = str(params["ensemble"]).lower().replace("-", "_")
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {', '.join(ENSEMBLES)}, got {params['ensemble']!r}")
    params["ensemble"] = ensemble
    try:
        for key in ("temperature_K", "timestep_fs", "friction", "taut_fs", "max_force", "min_distance", "vacuum"):
            params[key] = float(params[key])
            if not math.isfinite(params[key]):
                raise ValueError(f"{key} must be finite, got {params[key]}")
        for key in ("n_steps", "save_every", "seed"):
            value = params[key]
            if isinstance(value, bool) or int(value) != float(value):
                raise ValueError(f"{key} must be an integer, got {value!r}")
            params[key] = int(value)
        if params["num_threads"] is not None:
            params["num_threads"] = int(params["num_threads"])
            if params["num_threads"] < 1:
                raise ValueError(f"num_threads must be >= 1, got {params['num_threads']}")
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc) if "must" in str(exc) else f"invalid md setting: {exc}") from exc
    if params["temperature_K"] < 0:
        raise ValueError(f"temperature_K must be >= 0 K, got {params['temperature_K']}")
    for key, unit in (("timestep_fs", "fs"), ("friction", "1/fs"), ("taut_fs", "fs"), ("max_force", "eV/Å")):
        if not params[key] > 0:
            raise ValueError(f"{key} must be > 0 {unit}, got {params[key]}")
    if params["timestep_fs"] > 10:
        raise ValueError(f"timestep_fs {params['timestep_fs']} fs is far too large for atomistic MD (use 0.25-2 fs)")
    if params["min_distance"] < 0:
        raise ValueError(f"min_distance must be >= 0 Å, got {params['min_distance']}")
    if params["n_steps"] < 0:
        raise ValueError(f"n_steps must be >= 0, got {params['n_steps']}")
    if params["save_every"] < 1:
        raise ValueError(f"save_every must be >= 1, got {params['save_every']}")
    if params["seed"] < 0:
        raise ValueError(f"seed must be >= 0, got {params['seed']}")
    params["save_start"] = bool(params["save_start"])
    if params["n_steps"] < params["save_every"] and not params["save_start"]:
        raise ValueError(
            f"no frame would be saved: n_steps {params['n_steps']} < save_every {params['save_every']} "
            "and save_start is false"
        )
    fixed = params["fixed_atoms"] or []
    if isinstance(fixed, dict):
        out = {}
        for key, value in fixed.items():
            try:
                frame = int(key)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"fixed_atoms keys must be frame indices, got {key!r}") from exc
            if frame < 0:
                raise ValueError(f"fixed_atoms keys must be frame indices >= 0, got {key!r}")
            out[frame] = _as_index_list(value, f"fixed_atoms[{key}]")
        params["fixed_atoms"] = out
    else:
        params["fixed_atoms"] = _as_index_list(fixed, "fixed_atoms")
    return params


def read_md_input(input_file: str | os.PathLike) -> dict[str, Any]:
    """The validated parameters of an ``md`` input file, defaults filled, paths resolved."""
    path = pathlib.Path(input_file)
    raw = _read_json_object(path)

    def invalid(message: str) -> RunnerError:
        return RunnerError(EXIT_INPUT, f"input file {str(path)!r}: {message}")

    extra = {"family", "frames_file", *(set(MD_DEFAULTS) - set(MD_SETTINGS))}
    unknown = sorted(set(raw) - set(MD_SETTINGS) - extra)
    if unknown:
        raise invalid(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(['family', 'frames_file', *MD_DEFAULTS])}")
    try:
        params = check_settings({k: v for k, v in raw.items() if k in MD_SETTINGS})
    except ValueError as exc:
        raise invalid(str(exc)) from exc
    params.update({k: raw.get(k, MD_DEFAULTS.get(k)) for k in extra})
    if not params.get("family") and params.get("model_name"):
        try:
            params["family"] = get_model_spec(params["model_name"]).family
        except UnknownModelError:
            pass
    for key in ("family", "frames_file"):
        if not params.get(key):
            raise invalid(f"{key!r} is required")
    try:
        params["family"] = normalize_family(params["family"])
    except ValueError as exc:
        raise invalid(str(exc)) from exc
    if params["model_file"] is None:
        if not params.get("model_name"):
            raise invalid("'model_file' (or a registered 'model_name') is required")
        try:
            params["model_file"] = str(locate_model_file(params["model_name"]))
        except (UnknownModelError, ModelNotAvailableError) as exc:
            raise RunnerError(EXIT_INPUT, str(exc)) from exc
    base = path.resolve().parent
    for key in _FILE_KEYS:
        value = pathlib.Path(os.path.expanduser(str(params[key])))
        params[key] = value if value.is_absolute() else base / value
    if params["model_name"] is None:
        params["model_name"] = params["model_file"].name
    return params


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

    ``settings`` as :func:`check_settings` returns them; ``fixed`` atom indices kept fixed (FixAtoms;
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


def run_md(input_file) -> dict[str, Any]:
    """``reactmlip-runner md --input input.json``: MD from every start frame; write the outputs (see module doc).

    Returns the report; raises :class:`RunnerError` on bad input or a failing model. A blow-up is not an
    error: the frames before it are written and ``report["blew_up"]`` is true.
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    from aiida_reactmlip.frames import Frames, write_extxyz

    params = read_md_input(input_file)
    wall_start = time.perf_counter()
    frames, images, calc, info, load_seconds = _load_frames_and_calculator(params, "md")
    n_starts = len(images)
    fixed_spec = params["fixed_atoms"]
    if isinstance(fixed_spec, dict):
        bad = sorted(i for i in fixed_spec if i >= n_starts)
        if bad:
            raise RunnerError(EXIT_INPUT, f"fixed_atoms names frame(s) {bad} but there are {n_starts} frames")
    fixed_per_start = [
        frame_fixed_atoms(frames.info[i], fixed_spec.get(i, []) if isinstance(fixed_spec, dict) else fixed_spec,
                          len(images[i]), f"frame {i}")
        for i in range(n_starts)
    ]
    md_calc = energy_forces_calculator(calc)
    groups = start_labels(frames.info)
    settings = {k: params[k] for k in MD_SETTINGS if k not in ("device", "num_threads", "dtype")}
    _log(f"md: {n_starts} start frame(s), {settings['ensemble']} at {settings['temperature_K']:g} K, "
         f"{settings['n_steps']} steps of {settings['timestep_fs']:g} fs, saving every {settings['save_every']}, "
         f"seed {settings['seed']}")

    saved, per_start, thermo = [], [], {}
    md_start = time.perf_counter()
    try:
        for i, start in enumerate(images):
            atoms, boxed = box_if_needed(start, params["vacuum"])
            fixed = fixed_per_start[i]
            base_info = _mlip_info(frames.info[i], "mlip_md", params["model_name"])
            base_info.update(group=groups[i], md_start=i, ensemble=settings["ensemble"], seed=settings["seed"])
            if fixed:
                base_info["fixed_atoms"] = json.dumps(fixed)
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
            _log(f"start {i} ({groups[i]}, {len(atoms)} atoms): {status}, {entry['n_saved']} frame(s) saved, "
                 f"max T {entry['max_temperature_K'] or float('nan'):.0f} K, {seconds:.2f} s")
    except RunnerError:
        raise
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        raise RunnerError(EXIT_EVALUATION, f"MD failed: {type(exc).__name__}: {exc}") from exc
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
        "family": params["family"],
        "model_name": params["model_name"],
        "model": {key: info[key] for key in ("n_elements", "cutoff", "dtype", "n_parameters", "sha256")},
        "model_load_seconds": load_seconds,
        "n_evaluations": md_calc.n_evaluations,
        "wall_seconds": time.perf_counter() - wall_start,
        "versions": _package_versions(params["family"]),
    }
    params["output_file"].parent.mkdir(parents=True, exist_ok=True)
    tmp = params["output_file"].with_name(params["output_file"].name + ".tmp")
    if saved:
        write_extxyz(Frames.from_atoms(saved), tmp)
    else:
        tmp.write_text("", encoding="utf-8")
    os.replace(tmp, params["output_file"])
    _write_npz(params["thermo_file"], **thermo)
    _write_json(params["results_file"], report)
    rate = f"{report['steps_per_second']:.2f} steps/s" if report["steps_per_second"] else "no step"
    _log(f"done: {steps_done} steps in {md_seconds:.2f} s ({rate}), {len(saved)} frame(s) saved"
         + (f"; blew up in start frame(s) {report['blown_up_starts']}" if report["blew_up"] else ""))
    return report
