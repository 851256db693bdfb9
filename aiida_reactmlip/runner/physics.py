"""``reactmlip-runner physics``: physics-aware checks of one model (diatomic curves, NVE, heating ramp, reaction sign).

Never imports aiida. The checks are :func:`aiida_reactmlip.physics.suite.run_checks`; this module reads the
input, loads the model, runs them and writes the outputs.

``input.json`` (relative paths are relative to the directory of ``input.json``; every setting and its default
is in :data:`aiida_reactmlip.runner.contract.PHYSICS_SETTINGS`)::

    {
      "family": "chgnet", "model_name": "chgnet-0.3.0", "model_file": "model.pth",
      "frames_file": "frames.extxyz",      # the structures the nve/ramp/reactions entries name (may be empty)
      "elements": ["H", "Cu"],             # diatomic curves of every pair of these
      "nve": [{"frame": "molecule-H2", "temperatures_K": [300, 1000], "timestep_fs": 0.5, "duration_ps": 1.0}],
      "ramp": [{"frame": "h-cu111-fcc", "t_start": 300, "t_end": 3000, "duration_ps": 0.5, "timestep_fs": 1.0}],
      "reactions": [{"name": "h2-on-cu111", "initial": "h2-on-cu111-initial", "final": "h2-on-cu111-final",
                     "dft_reaction_energy": null}],
      "results_file": "physics.json", "arrays_file": "physics.npz"
    }

Frames are found by ``info["name"]``; a frame's info ``fixed_atoms`` (JSON list) keeps those atoms fixed in MD.

Outputs:

- ``physics.json``: ``diatomic`` {pair: metrics}, ``nve`` [per frame and temperature], ``ramp`` [per frame],
  ``reactions``, ``summary`` (one leaderboard row), ``seconds`` per check, ``settings``, model and timing
  record (``n_evaluations``, ``wall_seconds``, versions).
- ``physics.npz``: the curves and traces (``diatomic_<A>_<B>_<distances|energies|forces|fd_forces>``,
  ``nve_<k>_<times_ps|etot|epot|ekin|temperature>``, ``ramp_<k>_<...>``; see :mod:`aiida_reactmlip.physics.suite`).
"""

from __future__ import annotations

import time
from typing import Any

from aiida_reactmlip.runner import files
from aiida_reactmlip.runner.contract import (
    EXIT_ELEMENTS,
    EXIT_INPUT,
    EXIT_MODEL_LOAD,
    PHYSICS_SETTINGS,
    RunnerError,
    physics_frame_names,
)


def _frames_by_name(params: dict[str, Any]) -> dict:
    """The frames of the frames file by ``info["name"]``, ``FixAtoms`` from ``info["fixed_atoms"]``."""
    from ase.constraints import FixAtoms

    from aiida_reactmlip.frames import read_frames

    path = params["frames_file"]
    if not path.is_file():
        raise RunnerError(EXIT_INPUT, f"frames file {str(path)!r} does not exist")
    try:
        images = read_frames(path).to_atoms() if path.stat().st_size else []
    except (OSError, ValueError) as exc:
        raise RunnerError(EXIT_INPUT, f"frames file {str(path)!r} is unreadable: {exc}") from exc
    by_name = {}
    for k, atoms in enumerate(images):
        name = atoms.info.get("name")
        if not isinstance(name, str) or not name:
            raise RunnerError(EXIT_INPUT, f"frame {k} of {path.name} has no info 'name'")
        if name in by_name:
            raise RunnerError(EXIT_INPUT, f"two frames of {path.name} are named {name!r}")
        atoms.calc = None
        fixed = files.frame_fixed_atoms(atoms.info, None, len(atoms), k)
        if fixed:
            atoms.set_constraint(FixAtoms(indices=fixed))
        by_name[name] = atoms
    missing = [n for n in physics_frame_names(params) if n not in by_name]
    if missing:
        raise RunnerError(
            EXIT_INPUT, f"no frame named {', '.join(missing)} in {path.name}; it has {sorted(by_name)}"
        )
    return by_name


def _load_calculator(params: dict[str, Any], symbols: list[str]):
    """(calculator, model description, load seconds); RunnerError when it fails or misses an element."""
    import torch

    from aiida_reactmlip.models import check_elements, describe_model_file, load_calculator
    from aiida_reactmlip.models.errors import ElementNotCoveredError, ModelError

    model_file = params["model_file"]
    if not model_file.is_file():
        raise RunnerError(EXIT_INPUT, f"model file {str(model_file)!r} does not exist")
    if params["num_threads"]:
        torch.set_num_threads(params["num_threads"])
    files.log(
        f"reactmlip-runner physics: family={params['family']} model={params['model_name']} "
        f"file={model_file.name} device={params['device']} torch_threads={torch.get_num_threads()}"
    )
    start = time.perf_counter()
    try:
        info = describe_model_file(params["family"], model_file)
        check_elements(params["model_name"], info["elements"], symbols)
        calc = load_calculator(params["family"], model_file, device=params["device"], dtype=params["dtype"])
    except ElementNotCoveredError as exc:
        raise RunnerError(EXIT_ELEMENTS, str(exc)) from exc
    except ModelError as exc:
        raise RunnerError(EXIT_MODEL_LOAD, f"model {params['model_name']} failed to load: {exc}") from exc
    except ValueError as exc:
        raise RunnerError(EXIT_INPUT, f"invalid input for model {params['model_name']}: {exc}") from exc
    seconds = time.perf_counter() - start
    files.log(f"model loaded in {seconds:.2f} s")
    return calc, info, seconds


def run_physics(params: dict[str, Any]) -> dict[str, Any]:
    """Run the checks ``params`` ask for (as ``files.read_task_input(..., "physics")`` returns them) and write
    the outputs (see the module docstring). Returns the results; RunnerError on bad input or a failing model."""
    from aiida_reactmlip.physics import DEFAULT_DISTANCES
    from aiida_reactmlip.physics.suite import run_checks
    from aiida_reactmlip.runner.md import energy_forces_calculator

    wall_start = time.perf_counter()
    frames = _frames_by_name(params)
    symbols = sorted(
        set(params["elements"]) | {s for atoms in frames.values() for s in atoms.get_chemical_symbols()}
    )
    calc, info, load_seconds = _load_calculator(params, symbols)
    calc = energy_forces_calculator(calc)
    settings = {k: params[k] for k in PHYSICS_SETTINGS if k not in ("device", "num_threads")}
    if settings["distances"] is None:
        settings["distances"] = list(DEFAULT_DISTANCES)
    files.log(
        f"physics: {len(settings['elements'])} element(s), {len(settings['nve'])} NVE frame(s), "
        f"{len(settings['ramp'])} ramp(s), {len(settings['reactions'])} reaction(s)"
    )
    with files.failure_reported("physics checks"):
        results, arrays = run_checks(calc, frames, settings, log=files.log)
    results["task"] = "physics"
    results["settings"] = settings
    results.update(files.run_record(params, info, load_seconds, wall_start, calc.n_evaluations))
    files.write_npz(params["arrays_file"], **arrays)
    files.write_json(params["results_file"], results)
    files.log(f"done: {calc.n_evaluations} model evaluations in {results['wall_seconds']:.1f} s")
    return results
