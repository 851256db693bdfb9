"""What every runner task shares: reading ``input.json``, loading the frames and the model, writing outputs.

Never imports aiida. Input problems raise :class:`~aiida_reactmlip.runner.contract.RunnerError` with the
exit status of :mod:`aiida_reactmlip.runner.contract`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from aiida_reactmlip.models import (
    ElementNotCoveredError,
    ModelError,
    ModelNotAvailableError,
    UnknownModelError,
    check_elements,
    describe_model_file,
    get_model_spec,
    is_periodic_3d,
    load_calculator,
    locate_model_file,
    normalize_family,
)
from aiida_reactmlip.runner.contract import (
    EXIT_CODES,
    EXIT_ELEMENTS,
    EXIT_EVALUATION,
    EXIT_INPUT,
    EXIT_MODEL_LOAD,
    OUTPUT_FILES,
    REQUIRED_KEYS,
    SETTINGS,
    STATUS_FILE,
    RunnerError,
    check_in_range,
    check_settings,
    fixed_atoms_from_info,
    input_defaults,
)

#: Keys of the model description (:func:`aiida_reactmlip.models.describe_model_file`) every report carries.
MODEL_SUMMARY_KEYS = ("n_elements", "cutoff", "dtype", "n_parameters", "sha256")


def log(message: str) -> None:
    """A line on stdout (``runner.log`` under a CalcJob), flushed at once."""
    print(message, flush=True)


# ------------------------------------------------------------------------------------ input


def read_json_object(path: pathlib.Path) -> dict[str, Any]:
    """The JSON object of ``path``; :data:`EXIT_INPUT` when missing, unreadable or not an object."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunnerError(EXIT_INPUT, f"input file {str(path)!r} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunnerError(EXIT_INPUT, f"input file {str(path)!r} is unreadable: {exc}") from exc
    if not isinstance(raw, dict):
        raise RunnerError(EXIT_INPUT, f"input file {str(path)!r} must hold a JSON object")
    return raw


def resolve_path(base: pathlib.Path, value: Any) -> pathlib.Path:
    """``value`` (``~`` expanded) as an absolute path, relative ones taken relative to ``base``."""
    path = pathlib.Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else base / path


def input_error(path: pathlib.Path) -> Callable[[str], RunnerError]:
    """A maker of :data:`EXIT_INPUT` errors that name the input file ``path``."""
    return lambda message: RunnerError(EXIT_INPUT, f"input file {str(path)!r}: {message}")


def check_keys(raw: dict[str, Any], known: list[str], invalid: Callable[[str], RunnerError]) -> None:
    """Refuse a key of ``raw`` outside ``known``."""
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise invalid(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")


def require(params: dict[str, Any], keys, invalid: Callable[[str], RunnerError]) -> None:
    """Refuse ``params`` without a value for each of ``keys``; normalise its ``family``."""
    for key in keys:
        if not params.get(key):
            raise invalid(f"{key!r} is required")
    try:
        params["family"] = normalize_family(params["family"])
    except ValueError as exc:
        raise invalid(str(exc)) from exc


def read_task_input(input_file: str | os.PathLike, task: str) -> dict[str, Any]:
    """The validated parameters of an evaluate/relax/neb/md ``input.json``: settings checked by
    :func:`~aiida_reactmlip.runner.contract.check_settings`, defaults filled, family and model file
    resolved, paths made absolute (relative to the directory of ``input_file``)."""
    path = pathlib.Path(input_file)
    raw = read_json_object(path)
    invalid = input_error(path)
    defaults = input_defaults(task)
    check_keys(raw, [*REQUIRED_KEYS, *defaults], invalid)
    try:
        params = check_settings(task, {k: v for k, v in raw.items() if k in SETTINGS[task]})
    except ValueError as exc:
        raise invalid(str(exc)) from exc
    params.update({k: raw.get(k, default) for k, default in defaults.items() if k not in SETTINGS[task]})
    params.update({k: raw.get(k) for k in REQUIRED_KEYS})
    if not params.get("family") and params.get("model_name"):
        try:
            params["family"] = get_model_spec(params["model_name"]).family
        except UnknownModelError:
            pass
    require(params, REQUIRED_KEYS, invalid)
    if params["model_file"] is None:
        if not params.get("model_name"):
            raise invalid("'model_file' (or a registered 'model_name') is required")
        try:
            params["model_file"] = str(locate_model_file(params["model_name"]))
        except (UnknownModelError, ModelNotAvailableError) as exc:
            raise RunnerError(EXIT_INPUT, str(exc)) from exc
    base = path.resolve().parent
    for key in ("model_file", "frames_file", *OUTPUT_FILES[task]):
        params[key] = resolve_path(base, params[key])
    if params["model_name"] is None:
        params["model_name"] = params["model_file"].name
    return params


@contextlib.contextmanager
def failure_reported(what: str):
    """Turn an exception of the ``with`` block (a RunnerError passes as it is) into
    :data:`EXIT_EVALUATION` ``"<what> failed: ..."``, its traceback on stderr."""
    try:
        yield
    except RunnerError:
        raise
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        raise RunnerError(EXIT_EVALUATION, f"{what} failed: {type(exc).__name__}: {exc}") from exc


def load_frames_and_calculator(params: dict[str, Any], task: str):
    """(frames, images, calculator, model info, load seconds) for ``params``; RunnerError on failure."""
    frames, images = read_images(params["frames_file"])
    calc, info, load_seconds = load_checked_calculator(params, task, images)
    return frames, images, calc, info, load_seconds


def read_images(frames_file: pathlib.Path):
    """(frames, ASE images without calculators) of ``frames_file``; RunnerError when it is missing, unreadable
    or empty."""
    from aiida_reactmlip.frames import read_frames

    if not frames_file.is_file():
        raise RunnerError(EXIT_INPUT, f"frames file {str(frames_file)!r} does not exist")
    try:
        frames = read_frames(frames_file)
        images = frames.to_atoms()
    except (OSError, ValueError) as exc:
        raise RunnerError(EXIT_INPUT, f"frames file {str(frames_file)!r} is unreadable: {exc}") from exc
    if not images:
        raise RunnerError(EXIT_INPUT, f"frames file {str(frames_file)!r} holds no frame")
    for atoms in images:
        atoms.calc = None  # input labels are not used
    return frames, images


def load_checked_calculator(params: dict[str, Any], task: str, images: list):
    """(calculator, model info, load seconds) of the model of ``params`` (``family``, ``model_file``,
    ``model_name``, ``device``, ``dtype``, ``num_threads``), after checking that it covers every element of
    ``images``; RunnerError (EXIT_INPUT, EXIT_MODEL_LOAD or EXIT_ELEMENTS) on failure."""
    model_file: pathlib.Path = params["model_file"]
    if not model_file.is_file():
        raise RunnerError(EXIT_INPUT, f"model file {str(model_file)!r} does not exist")

    import torch

    if params["num_threads"]:
        torch.set_num_threads(params["num_threads"])
    log(
        f"reactmlip-runner {task}: family={params['family']} model={params['model_name']} file={model_file.name} "
        f"frames={len(images)} device={params['device']} torch_threads={torch.get_num_threads()}"
    )
    load_start = time.perf_counter()
    try:
        info = describe_model_file(params["family"], model_file)
    except ModelError as exc:
        raise RunnerError(EXIT_MODEL_LOAD, f"model {params['model_name']} failed to load: {exc}") from exc
    symbols = sorted({str(s) for atoms in images for s in atoms.get_chemical_symbols()})
    try:
        check_elements(params["model_name"], info["elements"], symbols)
    except ElementNotCoveredError as exc:
        raise RunnerError(EXIT_ELEMENTS, str(exc)) from exc
    try:
        calc = load_calculator(params["family"], model_file, device=params["device"], dtype=params["dtype"])
    except ModelError as exc:
        raise RunnerError(EXIT_MODEL_LOAD, f"model {params['model_name']} failed to load: {exc}") from exc
    except ValueError as exc:
        raise RunnerError(EXIT_INPUT, f"invalid input for model {params['model_name']}: {exc}") from exc
    load_seconds = time.perf_counter() - load_start
    log(f"model loaded in {load_seconds:.2f} s")
    return calc, info, load_seconds


def frame_fixed_atoms(info: dict[str, Any], extra: list[int] | None, n_atoms: int, frame: int) -> list[int]:
    """Atom indices to keep fixed in frame ``frame`` of ``n_atoms`` atoms: ``extra`` (from the settings) plus
    the frame info's ``fixed_atoms`` (:func:`~aiida_reactmlip.runner.contract.fixed_atoms_from_info`);
    RunnerError when one is not an index or out of range."""
    try:
        fixed = sorted(set(extra or []) | set(fixed_atoms_from_info(info, f"frame {frame}")))
        check_in_range(fixed, n_atoms, frame)
    except ValueError as exc:
        raise RunnerError(EXIT_INPUT, str(exc)) from exc
    return fixed


def fixed_atoms_per_frame(infos: list[dict[str, Any]], images: list, fixed) -> list[list[int]]:
    """Atoms kept fixed in each frame: ``fixed`` (one list for every frame, or {frame index: list}) plus
    each frame info's ``fixed_atoms``; RunnerError when a frame or atom index is out of range."""
    if isinstance(fixed, dict):
        bad = sorted(i for i in fixed if i >= len(images))
        if bad:
            raise RunnerError(EXIT_INPUT, f"fixed_atoms names frame(s) {bad} but there are {len(images)} frames")
    return [
        frame_fixed_atoms(infos[i], fixed.get(i) if isinstance(fixed, dict) else fixed, len(atoms), i)
        for i, atoms in enumerate(images)
    ]


# ------------------------------------------------------------------------------------ frames made here


def mlip_info(info: dict[str, Any], role: str, model_name: str) -> dict[str, Any]:
    """Frame info of an MLIP-made frame: a DFT ``source_uuid`` is kept as ``initial_source_uuid``."""
    out = {k: v for k, v in info.items() if k != "source_uuid"}
    if "source_uuid" in info:
        out["initial_source_uuid"] = info["source_uuid"]
    out["role"] = role
    out["model_name"] = model_name
    return out


def labelled_frame(atoms, calc, info: dict[str, Any]):
    """A copy of ``atoms`` carrying the model's energy, raw forces (eV/A) and stress (3D periodic) and ``info``."""
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms.calc = calc
    results = {"energy": float(atoms.get_potential_energy()), "forces": atoms.get_forces(apply_constraint=False)}
    if is_periodic_3d(atoms):
        results["stress"] = atoms.get_stress(voigt=True)
    out = atoms.copy()
    out.constraints = []
    out.info = dict(info)
    out.calc = SinglePointCalculator(out, **results)
    return out


# ------------------------------------------------------------------------------------ output


def write_npz(path: pathlib.Path, **arrays) -> None:
    """``arrays`` into ``path`` (written beside it, then moved: never half-written)."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def write_json(path: pathlib.Path, data: dict) -> None:
    """``data`` as indented JSON into ``path`` (written beside it, then moved)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_frames(path: pathlib.Path, images: list) -> None:
    """ASE Atoms with their labels into the extxyz file ``path`` (an empty file for no frame)."""
    from aiida_reactmlip.frames import Frames, write_extxyz

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if images:
        write_extxyz(Frames.from_atoms(images), tmp)
    else:
        tmp.write_text("", encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(params: dict[str, Any], images: list, report: dict[str, Any], arrays_key: str | None = None,
                  arrays: dict | None = None) -> None:
    """A relax/neb/md run's outputs: ``images`` into ``output_file``, ``arrays`` into the npz file of key
    ``arrays_key``, ``report`` into ``results_file``."""
    write_frames(params["output_file"], images)
    if arrays_key is not None:
        write_npz(params[arrays_key], **(arrays or {}))
    write_json(params["results_file"], report)


def write_status(input_file: str | os.PathLike, exit_code: int, message: str) -> None:
    """Write ``status.json`` beside ``input_file``: how the run ended, for the AiiDA parser to read."""
    path = pathlib.Path(input_file).resolve().parent / STATUS_FILE
    try:
        write_json(path, {"exit_code": int(exit_code), "meaning": EXIT_CODES.get(exit_code, "?"), "message": message})
    except OSError:
        pass


def model_summary(info: dict[str, Any]) -> dict[str, Any]:
    """The part of a model description every report carries (:data:`MODEL_SUMMARY_KEYS`)."""
    return {key: info[key] for key in MODEL_SUMMARY_KEYS}


def package_versions(family: str) -> dict[str, str]:
    """Versions of torch, ASE, numpy, the family's packages and aiida-reactmlip, for the reports."""
    from importlib.metadata import PackageNotFoundError, version

    names = {
        "chgnet": ["chgnet", "pymatgen"],
        "sevenn": ["sevenn", "e3nn"],
        "mace": ["mace-torch", "e3nn"],
    }[family]
    versions = {}
    for name in ["torch", "ase", "numpy", *names]:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    try:
        versions["aiida-reactmlip"] = version("aiida-reactmlip")
    except PackageNotFoundError:
        pass
    return versions


def peak_memory_mb() -> float | None:
    """Peak resident memory of this process (MB), where the platform reports it."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB
    except (ImportError, OSError):  # pragma: no cover - not on Linux
        return None


def run_record(params: dict[str, Any], info: dict[str, Any], load_seconds: float, wall_start: float,
               n_evaluations: int) -> dict[str, Any]:
    """What every relax/neb/md report ends with: family, model name and summary, model load seconds, model
    evaluations, wall seconds since ``wall_start`` (``time.perf_counter``) and package versions."""
    return {
        "family": params["family"],
        "model_name": params["model_name"],
        "model": model_summary(info),
        "model_load_seconds": load_seconds,
        "n_evaluations": n_evaluations,
        "wall_seconds": time.perf_counter() - wall_start,
        "versions": package_versions(params["family"]),
    }
