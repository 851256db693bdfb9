"""``reactmlip-runner``: the executable the evaluation CalcJob runs on any computer.

Never imports aiida (only numpy, ASE, torch and the MLIP family that is asked for), so it runs on a
compute node that has the MLIP stack but no AiiDA profile.

Usage::

    reactmlip-runner evaluate --input input.json
    reactmlip-runner relax --input input.json     # see run_relax and RELAX_DEFAULTS
    reactmlip-runner neb --input input.json       # see run_neb and NEB_DEFAULTS

``input.json`` (relative paths are taken relative to the directory of ``input.json``)::

    {
      "family": "chgnet" | "sevenn" | "mace",
      "model_file": "model.pth",          # or only "model_name" of a registered bundled model
      "model_name": "chgnet-0.3.0",       # optional: used in messages and recorded in timing.json
      "frames_file": "frames.extxyz",
      "device": "cpu",
      "batch_size": 16,                   # frames per batch in "batched" mode (CPU memory grows
                                          # ~0.5 GB per 37-atom frame with stress: keep it small)
      "compute_stress": true,
      "mode": "auto" | "batched" | "ase", # batched: CHGNet predict_structure, SevenNet graph batches;
                                          # ase: calculator loop; auto: see choose_mode and
                                          # batch_size_for (on CPU: frame by frame; GPU: batches)
      "workers": null,                    # processes sharing the frames (null: auto, see plan_workers:
                                          # on CPU one per core and 100 frames, else 1)
      "num_threads": 2,                   # optional: torch threads per process (null: cores / workers)
      "dtype": null,                      # optional: MACE "float64" (default) or "float32"
      "output_file": "predictions.npz",
      "timing_file": "timing.json"
    }

Outputs (next to each other, by default in the directory of ``input.json``):

- ``predictions.npz``: ``energies`` (F,) eV; ``forces`` (N_total, 3) eV/A, concatenated in frame
  order; ``stress`` (F, 6) eV/A^3 in ASE Voigt order (xx, yy, zz, yz, xz, xy) and sign, NaN for
  frames that are not periodic in 3D (or when ``compute_stress`` is false); ``n_atoms`` (F,).
- ``timing.json``: model load and evaluation seconds, seconds per frame, the mode used, threads,
  package versions and what the model file covers.

Exit codes (see ``EXIT_CODES``): 0 ok; 10 an input file missing, unreadable or invalid;
11 an element of the frames is not covered by the model (stderr names element and model);
12 the model failed to load; 13 the evaluation itself failed; 14 (relax, neb) an optimisation did not
converge within its steps (all outputs are still written).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import time
import traceback
from typing import Any

import numpy as np

from aiida_reactmlip.models import (
    ElementNotCoveredError,
    ModelError,
    ModelNotAvailableError,
    UnknownModelError,
    check_elements,
    describe_model_file,
    ensure_cell,
    get_model_spec,
    is_periodic_3d,
    load_calculator,
    locate_model_file,
    normalize_family,
)

EXIT_OK = 0
EXIT_INPUT = 10
EXIT_ELEMENTS = 11
EXIT_MODEL_LOAD = 12
EXIT_EVALUATION = 13
EXIT_NOT_CONVERGED = 14
EXIT_DIVERGED = 15

EXIT_CODES = {
    EXIT_OK: "ok",
    EXIT_INPUT: "an input file is missing, unreadable or invalid",
    EXIT_ELEMENTS: "the frames contain an element the model does not cover",
    EXIT_MODEL_LOAD: "the model failed to load",
    EXIT_EVALUATION: "the evaluation failed",
    EXIT_NOT_CONVERGED: "an optimisation did not converge (its outputs are written)",
    EXIT_DIVERGED: "the training diverged: the loss became NaN or infinite (history and report written, no model)",
}

MODES = ("auto", "batched", "ase")

#: families with a batched path in this runner
BATCHED_FAMILIES = ("chgnet", "sevenn")

#: ``mode: auto`` on CPU: families whose batched path beat the per-frame ASE loop when measured on CPU
#: (``python -m benchmarks evaluate_modes``; see :func:`choose_mode` and docs/benchmark.md). None did:
#: on CPU the frames are shared by worker processes instead (:func:`plan_workers`).
BATCHED_ON_CPU: tuple[str, ...] = ()
#: The largest batch ``mode: auto`` would use on CPU for a family of :data:`BATCHED_ON_CPU`: CHGNet's batches
#: of 8 took 1.35x the time per frame of its loop and ~0.5 GB of memory per 37-atom frame.
CPU_AUTO_BATCH_SIZE = 4

#: ``workers: null`` on CPU: at most this many worker processes ...
MAX_AUTO_WORKERS = 8
#: ... and only when each gets at least this many frames: a helper pays 4 s (CHGNet) to 8 s (SevenNet) of
#: imports and model load on a busy core before its first frame, which ~100 frames of 1.37x speed repay.
MIN_FRAMES_PER_WORKER = 100

INPUT_DEFAULTS: dict[str, Any] = {
    "model_file": None,
    "model_name": None,
    "device": "cpu",
    "batch_size": 16,
    "compute_stress": True,
    "mode": "auto",
    "workers": None,
    "num_threads": None,
    "dtype": None,
    "output_file": "predictions.npz",
    "timing_file": "timing.json",
}


class RunnerError(Exception):
    """An error with a dedicated exit code; its message goes to stderr."""

    def __init__(self, exit_code: int, message: str):
        super().__init__(message)
        self.exit_code = exit_code


def _log(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------------------------ input


def read_input(input_file: str | os.PathLike) -> dict[str, Any]:
    """The validated run parameters of ``input_file`` with defaults filled and paths resolved."""
    path = pathlib.Path(input_file)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunnerError(EXIT_INPUT, f"input file {str(path)!r} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunnerError(EXIT_INPUT, f"input file {str(path)!r} is unreadable: {exc}") from exc
    if not isinstance(raw, dict):
        raise RunnerError(EXIT_INPUT, f"input file {str(path)!r} must hold a JSON object")

    def invalid(message: str) -> RunnerError:
        return RunnerError(EXIT_INPUT, f"input file {str(path)!r}: {message}")

    params = {**INPUT_DEFAULTS, **raw}
    unknown = sorted(set(raw) - set(INPUT_DEFAULTS) - {"family", "frames_file"})
    if unknown:
        raise invalid(f"unknown key(s) {', '.join(unknown)}")

    base = path.resolve().parent
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
    if params["mode"] not in MODES:
        raise invalid(f"mode must be one of {MODES}, got {params['mode']!r}")
    try:
        params["batch_size"] = int(params["batch_size"])
        if params["batch_size"] < 1:
            raise ValueError("must be >= 1")
        for key in ("workers", "num_threads"):
            if params[key] is not None:
                if isinstance(params[key], bool) or int(params[key]) != params[key]:
                    raise ValueError(f"{key} must be an integer or null, got {params[key]!r}")
                params[key] = int(params[key])
                if params[key] < 1:
                    raise ValueError(f"{key} must be >= 1, got {params[key]}")
    except (TypeError, ValueError) as exc:
        raise invalid(f"invalid batch_size/workers/num_threads: {exc}") from exc
    params["compute_stress"] = bool(params["compute_stress"])

    if params["model_file"] is None:
        if not params.get("model_name"):
            raise invalid("'model_file' (or a registered 'model_name') is required")
        try:
            params["model_file"] = str(locate_model_file(params["model_name"]))
        except (UnknownModelError, ModelNotAvailableError) as exc:
            raise RunnerError(EXIT_INPUT, str(exc)) from exc

    for key in ("model_file", "frames_file", "output_file", "timing_file"):
        value = pathlib.Path(os.path.expanduser(str(params[key])))
        params[key] = value if value.is_absolute() else base / value
    if params["model_name"] is None:
        params["model_name"] = params["model_file"].name
    return params


# ------------------------------------------------------------------------------- evaluation


class _Progress:
    """Prints a line about every 10% of the frames."""

    def __init__(self, n_frames: int):
        self.n_frames = n_frames
        self.step = max(1, math.ceil(n_frames / 10))
        self.next = self.step
        self.start = time.perf_counter()

    def update(self, done: int) -> None:
        if done >= self.next or done == self.n_frames:
            elapsed = time.perf_counter() - self.start
            percent = 100.0 * done / max(self.n_frames, 1)
            _log(f"progress: {done}/{self.n_frames} frames ({percent:.0f}%), {elapsed:.1f} s elapsed")
            while self.next <= done:
                self.next += self.step


def evaluate_ase(calc, images, compute_stress: bool = True, progress: _Progress | None = None):
    """Energies (F,), forces (list of (n_i, 3)), stress (F, 6) through an ASE calculator, frame by frame."""
    n_frames = len(images)
    energies = np.full(n_frames, np.nan)
    forces = []
    stress = np.full((n_frames, 6), np.nan)
    for i, atoms in enumerate(images):
        atoms = atoms.copy()
        atoms.calc = calc
        energies[i] = atoms.get_potential_energy()
        forces.append(np.array(atoms.get_forces(), dtype=float))
        if compute_stress and is_periodic_3d(atoms):
            stress[i] = atoms.get_stress(voigt=True)
        if progress is not None:
            progress.update(i + 1)
    return energies, forces, stress


def evaluate_chgnet_batched(model, images, batch_size: int = 16, compute_stress: bool = True,
                            progress: _Progress | None = None):
    """Like :func:`evaluate_ase`, through ``CHGNet.predict_structure`` in batches.

    CHGNet predicts the energy per atom (eV/atom, for its intensive models) and the stress in GPa;
    both are converted here to the units of its ASE calculator: total energy in eV and stress in
    eV/A^3 with ASE's sign (``stress_weight = ase.units.GPa``, as ``CHGNetCalculator`` uses).
    Frames that are not periodic in 3D are boxed (:func:`aiida_reactmlip.models.ensure_cell`).
    """
    from ase import units
    from ase.stress import full_3x3_to_voigt_6_stress
    from pymatgen.io.ase import AseAtomsAdaptor

    n_frames = len(images)
    energies = np.full(n_frames, np.nan)
    forces: list[np.ndarray] = []
    stress = np.full((n_frames, 6), np.nan)
    periodic = [is_periodic_3d(atoms) for atoms in images]
    task = "efs" if compute_stress and any(periodic) else "ef"
    extensive = bool(getattr(model, "is_intensive", True))
    for start in range(0, n_frames, batch_size):
        chunk = images[start : start + batch_size]
        structures = [AseAtomsAdaptor.get_structure(ensure_cell(atoms)) for atoms in chunk]
        predictions = model.predict_structure(structures, task=task, batch_size=batch_size)
        if isinstance(predictions, dict):  # CHGNet returns a bare dict for a single structure
            predictions = [predictions]
        for offset, (atoms, pred) in enumerate(zip(chunk, predictions, strict=True)):
            i = start + offset
            n = len(atoms)
            energies[i] = float(np.asarray(pred["e"]).reshape(())) * (n if extensive else 1)
            forces.append(np.asarray(pred["f"], dtype=float).reshape(n, 3))
            if task == "efs" and periodic[i]:
                stress[i] = full_3x3_to_voigt_6_stress(np.asarray(pred["s"], dtype=float)) * units.GPa
        if progress is not None:
            progress.update(min(start + batch_size, n_frames))
    return energies, forces, stress


def evaluate_sevenn_batched(model, images, cutoff: float, batch_size: int = 16, compute_stress: bool = True,
                            progress: _Progress | None = None, device: str = "cpu"):
    """Like :func:`evaluate_ase`, through SevenNet's own graph batching (as ``sevenn inference`` does).

    Each frame becomes a graph with ``sevenn.train.dataload.unlabeled_atoms_to_graph`` (the same graph
    its ASE calculator builds), ``batch_size`` graphs are merged by ``torch_geometric``'s ``Batch`` and
    the model runs once per batch in its batch mode (``set_is_batch_data(True)``, restored afterwards).
    Energies are totals in eV, forces eV/A, stress converted like ``SevenNetCalculator``: the model's
    (xx, yy, zz, xy, yz, zx) with the opposite sign becomes ASE's Voigt (xx, yy, zz, yz, xz, xy) in
    eV/A^3; NaN for frames that are not periodic in 3D (or without ``compute_stress``).
    """
    import sevenn._keys as KEY
    import torch
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.train.dataload import unlabeled_atoms_to_graph
    from torch_geometric.data import Batch

    n_frames = len(images)
    energies = np.full(n_frames, np.nan)
    forces: list[np.ndarray] = []
    stress = np.full((n_frames, 6), np.nan)
    model.set_is_batch_data(True)
    try:
        for start in range(0, n_frames, batch_size):
            chunk = images[start : start + batch_size]
            graphs = [AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, cutoff)) for atoms in chunk]
            batch = Batch.from_data_list(graphs).to(torch.device(device))
            output = model(batch)
            chunk_energies = output[KEY.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
            chunk_forces = output[KEY.PRED_FORCE].detach().cpu().numpy().astype(float)
            chunk_stress = None
            if compute_stress and KEY.PRED_STRESS in output:
                chunk_stress = (-output[KEY.PRED_STRESS]).detach().cpu().numpy().reshape(-1, 6)[:, [0, 1, 2, 4, 5, 3]]
            bounds = np.cumsum([0] + [len(atoms) for atoms in chunk])
            if chunk_energies.shape != (len(chunk),) or chunk_forces.shape != (bounds[-1], 3):
                raise RuntimeError(
                    f"SevenNet returned energies {chunk_energies.shape} and forces {chunk_forces.shape} for "
                    f"{len(chunk)} frames of {bounds[-1]} atoms"
                )
            for offset, atoms in enumerate(chunk):
                i = start + offset
                energies[i] = float(chunk_energies[offset])
                forces.append(chunk_forces[bounds[offset] : bounds[offset + 1]])
                if chunk_stress is not None and is_periodic_3d(atoms):
                    stress[i] = chunk_stress[offset]
            if progress is not None:
                progress.update(min(start + batch_size, n_frames))
    finally:
        model.set_is_batch_data(False)  # the ASE calculator that owns the model runs it frame by frame
    return energies, forces, stress


def evaluate_images(calc, family: str, mode: str, images, batch_size: int, compute_stress: bool,
                    device: str = "cpu", progress: _Progress | None = None):
    """Energies, forces and stress of ``images`` in ``mode`` (``batched`` or ``ase``, as :func:`choose_mode` says)."""
    if mode == "batched" and family == "chgnet":
        return evaluate_chgnet_batched(calc.model, images, batch_size, compute_stress, progress)
    if mode == "batched" and family == "sevenn":
        return evaluate_sevenn_batched(
            calc.model, images, float(calc.cutoff), batch_size, compute_stress, progress, device=device
        )
    return evaluate_ase(calc, images, compute_stress, progress)


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, which a batch scheduler sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def plan_workers(workers: int | None, num_threads: int | None, n_frames: int, device: str,
                 cpus: int) -> tuple[int, int | None]:
    """``(worker processes, torch threads per process)`` for an evaluation of ``n_frames`` frames.

    An explicit ``workers`` is honoured (at most one per frame). ``workers: null`` on CPU: one process
    per core, at most :data:`MAX_AUTO_WORKERS`, and only as many as get :data:`MIN_FRAMES_PER_WORKER`
    frames each; on an accelerator one. Threads: ``num_threads`` when given, else ``cpus // workers``
    for several workers and torch's own default (``None``) for one. Why: a 37-atom graph keeps two
    threads of one process busy only part of the time (graph building is serial Python), so on two
    cores two single-threaded processes evaluated 1.37x (CHGNet) and 1.40x (SevenNet) the frames per
    second of one two-threaded process (docs/benchmark.md, "Speed").
    """
    if workers is not None:
        planned = max(1, min(int(workers), n_frames))
    elif str(device).startswith("cpu"):
        planned = max(1, min(cpus, MAX_AUTO_WORKERS, n_frames // MIN_FRAMES_PER_WORKER))
    else:
        planned = 1
    if num_threads:
        threads: int | None = int(num_threads)
    else:
        threads = max(1, cpus // planned) if planned > 1 else None
    return planned, threads


def worker_chunks(n_frames: int, workers: int, batch_size: int) -> list[range]:
    """Consecutive frame ranges shared out among the workers: about 32 per worker, so that the last ones
    leave little idle time, each a whole number of batches of at least 4 frames."""
    per_chunk = max(4, math.ceil(n_frames / (32 * workers)))
    per_chunk = max(batch_size, math.ceil(per_chunk / batch_size) * batch_size)
    return [range(start, min(start + per_chunk, n_frames)) for start in range(0, n_frames, per_chunk)]


#: State of a worker process of :func:`evaluate_in_workers` (set by :func:`_worker_init`).
_WORKER: dict[str, Any] = {}


def _worker_init(family: str, model_file: str, device: str, dtype: str | None, threads: int, mode: str,
                 batch_size: int, compute_stress: bool) -> None:
    import contextlib
    import io

    import torch

    start = time.perf_counter()
    torch.set_num_threads(threads)
    with contextlib.redirect_stdout(io.StringIO()):  # "CHGNet v0.3.0 initialized with ..."
        calc = load_calculator(family, model_file, device=device, dtype=dtype)
    _WORKER.update(calc=calc, family=family, device=device, mode=mode, batch_size=batch_size,
                   compute_stress=compute_stress, load_seconds=time.perf_counter() - start)


def _worker_evaluate(images) -> tuple:
    energies, forces, stress = evaluate_images(
        _WORKER["calc"], _WORKER["family"], _WORKER["mode"], images, _WORKER["batch_size"],
        _WORKER["compute_stress"], _WORKER["device"],
    )
    return energies, forces, stress, _WORKER["load_seconds"], _peak_memory_mb()


def evaluate_in_workers(calc, params: dict[str, Any], mode: str, images, batch_size: int, workers: int,
                        threads: int, progress: _Progress | None = None):
    """Like :func:`evaluate_images`, with the frames shared by this process and ``workers - 1`` helpers.

    The helpers are fresh processes (``spawn``: no torch state crosses a fork) that load the model once
    with ``threads`` torch threads each; while they import and load, this process, whose ``calc`` is
    already loaded, evaluates chunks from the end of the frames, so their start-up costs little. The
    helpers take chunks (:func:`worker_chunks`) from the front. Returns energies, forces, stress (frame
    order) and ``{"worker_load_seconds", "frames_by_helpers", "peak_memory_mb_helper"}``.
    """
    import multiprocessing
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    import torch

    torch.set_num_threads(threads)
    chunks = worker_chunks(len(images), workers, batch_size)
    results: dict[int, tuple] = {}
    pending = deque(range(len(chunks)))
    load_seconds, done, by_helpers, helper_memory = 0.0, 0, 0, 0.0
    initargs = (params["family"], str(params["model_file"]), params["device"], params["dtype"], threads, mode,
                batch_size, params["compute_stress"])
    pool = ProcessPoolExecutor(max_workers=workers - 1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=initargs)
    in_flight: dict = {}
    try:
        while pending or in_flight:
            while pending and len(in_flight) < 2 * (workers - 1):  # one chunk queued behind each running one
                index = pending.popleft()
                chunk = chunks[index]
                in_flight[pool.submit(_worker_evaluate, images[chunk.start : chunk.stop])] = index
            finished = [future for future in in_flight if future.done()]
            if not finished and not pending:
                finished = list(wait(in_flight, return_when=FIRST_COMPLETED).done)
            for future in finished:
                index = in_flight.pop(future)
                energies, forces, stress, worker_load, memory = future.result()
                helper_memory = max(helper_memory, memory or 0.0)
                results[index] = (energies, forces, stress)
                load_seconds = max(load_seconds, worker_load)
                done += len(chunks[index])
                by_helpers += len(chunks[index])
            if pending and not finished:  # this process takes the last chunk not yet handed out
                index = pending.pop()
                chunk = chunks[index]
                results[index] = evaluate_images(calc, params["family"], mode, images[chunk.start : chunk.stop],
                                                 batch_size, params["compute_stress"], params["device"])
                done += len(chunk)
            if progress is not None:
                progress.update(done)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    ordered = [results[index] for index in range(len(chunks))]
    energies = np.concatenate([r[0] for r in ordered])
    forces = [f for r in ordered for f in r[1]]
    stress = np.concatenate([r[2] for r in ordered])
    extra = {"worker_load_seconds": load_seconds, "frames_by_helpers": by_helpers,
             "peak_memory_mb_helper": helper_memory or None}
    return energies, forces, stress, extra


def choose_mode(requested: str, family: str, device: str) -> str:
    """The mode actually used.

    ``ase`` is always honoured; ``batched`` for a family without a batched path (MACE here) falls back
    to ``ase``. ``auto``: batched on an accelerator for CHGNet and SevenNet (one kernel launch per
    batch instead of per frame); on CPU batched only for the families in :data:`BATCHED_ON_CPU`
    (none), in batches of at most :data:`CPU_AUTO_BATCH_SIZE` (:func:`batch_size_for`). Measured on 2
    idle CPU cores on 200 frames (docs/benchmark.md, "Batched or not"): batches of 4 took 1.13x
    (CHGNet) and 1.31x (SevenNet) the time of the frame-by-frame loop in one process, 1.27x and 1.29x
    with two worker processes. On CPU the speed comes from worker processes (:func:`plan_workers`),
    not from batches.
    """
    if requested == "ase" or family not in BATCHED_FAMILIES:
        return "ase"
    if requested == "batched":
        return "batched"
    on_cpu = str(device).startswith("cpu")
    return "batched" if not on_cpu or family in BATCHED_ON_CPU else "ase"


def batch_size_for(requested_mode: str, mode: str, device: str, batch_size: int) -> int:
    """Frames per batch: ``batch_size``, capped at :data:`CPU_AUTO_BATCH_SIZE` when ``auto`` chose batches on CPU
    (an explicit ``mode: batched`` keeps the batch size it was given); 1 for the ASE loop."""
    if mode != "batched":
        return 1
    if requested_mode == "auto" and str(device).startswith("cpu"):
        return min(int(batch_size), CPU_AUTO_BATCH_SIZE)
    return int(batch_size)


def _package_versions(family: str) -> dict[str, str]:
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


def _peak_memory_mb() -> float | None:
    """Peak resident memory of this process (MB), where the platform reports it."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB
    except (ImportError, OSError):  # pragma: no cover - not on Linux
        return None


def _write_npz(path: pathlib.Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _write_json(path: pathlib.Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run_evaluate(params: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the model on the frames of ``params`` (as :func:`read_input` returns); write the outputs.

    Returns the timing record; raises :class:`RunnerError` with the exit code on failure.
    """
    wall_start = time.perf_counter()
    family = params["family"]
    model_file: pathlib.Path = params["model_file"]
    frames, images, calc, info, load_seconds = _load_frames_and_calculator(params, "evaluate")
    cpus = available_cpus()
    workers, worker_threads = plan_workers(params["workers"], params["num_threads"], len(images),
                                           params["device"], cpus)
    n_frames = len(images)
    n_atoms = np.asarray(frames.n_atoms, dtype=np.int64)
    n_atoms_total = int(n_atoms.sum())

    import torch

    threads = worker_threads if workers > 1 else torch.get_num_threads()
    mode = choose_mode(params["mode"], family, params["device"])
    batch_size = batch_size_for(params["mode"], mode, params["device"], params["batch_size"])
    _log(
        f"evaluate: frames={n_frames} atoms={n_atoms_total} mode={mode} (requested {params['mode']}) "
        f"batch_size={batch_size} workers={workers} (requested {params['workers'] or 'auto'}, {cpus} cores) "
        f"threads/worker={threads}; model: {info['n_elements']} elements, cutoff {info['cutoff']} A, "
        f"{info['n_parameters']} parameters, {info['dtype']}"
    )
    if params["mode"] == "batched" and mode != "batched":
        _log(f"note: no batched path for family {family}; using the ASE calculator loop")

    # -- evaluation
    progress = _Progress(n_frames)
    eval_start = time.perf_counter()
    workers_info: dict[str, Any] = {}
    try:
        if workers > 1:
            energies, forces, stress, workers_info = evaluate_in_workers(
                calc, params, mode, images, batch_size, workers, worker_threads, progress
            )
        else:
            energies, forces, stress = evaluate_images(
                calc, family, mode, images, batch_size, params["compute_stress"], params["device"], progress
            )
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        raise RunnerError(EXIT_EVALUATION, f"evaluation failed: {type(exc).__name__}: {exc}") from exc
    eval_seconds = time.perf_counter() - eval_start

    forces_all = np.concatenate(forces).reshape(-1, 3) if forces else np.zeros((0, 3))
    if forces_all.shape != (n_atoms_total, 3):  # pragma: no cover - a model returning a wrong shape
        raise RunnerError(
            EXIT_EVALUATION, f"forces have shape {forces_all.shape}, expected ({n_atoms_total}, 3)"
        )
    nonfinite = int((~np.isfinite(energies)).sum())
    if nonfinite:
        _log(f"warning: {nonfinite} frame(s) got a non-finite energy")

    params["output_file"].parent.mkdir(parents=True, exist_ok=True)
    _write_npz(
        params["output_file"],
        energies=energies.astype(np.float64),
        forces=forces_all.astype(np.float64),
        stress=stress.astype(np.float64),
        n_atoms=n_atoms,
    )
    timing = {
        "family": family,
        "model_name": params["model_name"],
        "model_file": model_file.name,
        "model": {key: info[key] for key in ("n_elements", "cutoff", "dtype", "n_parameters", "sha256")},
        "device": params["device"],
        "mode": mode,
        "mode_requested": params["mode"],
        "batch_size": batch_size,
        "compute_stress": params["compute_stress"],
        "n_frames": n_frames,
        "n_atoms_total": n_atoms_total,
        "n_nonfinite_energies": nonfinite,
        "model_load_seconds": load_seconds,
        "evaluation_seconds": eval_seconds,
        "seconds_per_frame": eval_seconds / n_frames if n_frames else None,
        "seconds_per_atom": eval_seconds / n_atoms_total if n_atoms_total else None,
        "wall_seconds": time.perf_counter() - wall_start,
        "torch_threads": threads,
        "workers": workers,
        "workers_requested": params["workers"],
        "cpus": cpus,
        "worker_load_seconds": workers_info.get("worker_load_seconds"),
        "frames_by_helpers": workers_info.get("frames_by_helpers"),
        "peak_memory_mb": _peak_memory_mb(),
        "peak_memory_mb_helper": workers_info.get("peak_memory_mb_helper"),
        "versions": _package_versions(family),
    }
    _write_json(params["timing_file"], timing)
    per_frame = f"{timing['seconds_per_frame']:.4f}" if n_frames else "n/a"
    _log(
        f"done: {n_frames} frames in {eval_seconds:.2f} s ({per_frame} s/frame); "
        f"wrote {params['output_file'].name} and {params['timing_file'].name}"
    )
    return timing


# ------------------------------------------------------------------------- relax and NEB

OPTIMIZERS = ("BFGS", "FIRE", "LBFGS")
INTERPOLATIONS = ("idpp", "linear")

#: Keys of a ``relax`` input file, with defaults (``family`` and ``frames_file`` are required).
RELAX_DEFAULTS: dict[str, Any] = {
    "model_file": None,
    "model_name": None,
    "device": "cpu",
    "num_threads": None,
    "dtype": None,
    "optimizer": "BFGS",
    "fmax": 0.05,
    "max_steps": 200,
    "relax_cell": False,
    "fixed_atoms": {},
    "output_file": "relaxed.extxyz",
    "results_file": "results.json",
    "trajectory_file": "trajectory.npz",
}

#: Keys of a ``neb`` input file, with defaults (``family`` and ``frames_file`` are required).
NEB_DEFAULTS: dict[str, Any] = {
    "model_file": None,
    "model_name": None,
    "device": "cpu",
    "num_threads": None,
    "dtype": None,
    "n_images": 5,
    "climb": True,
    "fmax": 0.05,
    "max_steps": 300,
    "optimizer": "FIRE",
    "relax_endpoints": False,
    "endpoint_fmax": None,
    "endpoint_max_steps": 200,
    "interpolation": "idpp",
    "fixed_atoms": [],
    "output_file": "band.extxyz",
    "results_file": "profile.json",
}


def _read_json_object(path: pathlib.Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunnerError(EXIT_INPUT, f"input file {str(path)!r} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunnerError(EXIT_INPUT, f"input file {str(path)!r} is unreadable: {exc}") from exc
    if not isinstance(raw, dict):
        raise RunnerError(EXIT_INPUT, f"input file {str(path)!r} must hold a JSON object")
    return raw


def _as_index_list(value: Any, what: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in value
    ):
        raise ValueError(f"{what} must be a list of atom indices (integers >= 0), got {value!r}")
    return sorted({int(i) for i in value})


def read_task_input(input_file: str | os.PathLike, task: str) -> dict[str, Any]:
    """The validated parameters of a ``relax`` or ``neb`` input file, defaults filled, paths resolved."""
    defaults = {"relax": RELAX_DEFAULTS, "neb": NEB_DEFAULTS}[task]
    path = pathlib.Path(input_file)
    raw = _read_json_object(path)

    def invalid(message: str) -> RunnerError:
        return RunnerError(EXIT_INPUT, f"input file {str(path)!r}: {message}")

    unknown = sorted(set(raw) - set(defaults) - {"family", "frames_file"})
    if unknown:
        raise invalid(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(['family', 'frames_file', *defaults])}")
    params = {**defaults, **raw}
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
    optimizer = str(params["optimizer"]).upper()
    if optimizer not in OPTIMIZERS:
        raise invalid(f"optimizer must be one of {OPTIMIZERS}, got {params['optimizer']!r}")
    params["optimizer"] = optimizer
    try:
        params["fmax"] = float(params["fmax"])
        if not params["fmax"] > 0:
            raise ValueError(f"fmax must be > 0 eV/A, got {params['fmax']}")
        params["max_steps"] = int(params["max_steps"])
        if params["max_steps"] < 0:
            raise ValueError(f"max_steps must be >= 0, got {params['max_steps']}")
        if params["num_threads"] is not None:
            params["num_threads"] = int(params["num_threads"])
            if params["num_threads"] < 1:
                raise ValueError("num_threads must be >= 1")
        if task == "relax":
            params["relax_cell"] = bool(params["relax_cell"])
            fixed = params["fixed_atoms"] or {}
            if not isinstance(fixed, dict):
                raise ValueError(f"fixed_atoms must map a frame index to a list of atom indices, got {fixed!r}")
            params["fixed_atoms"] = {int(k): _as_index_list(v, f"fixed_atoms[{k}]") for k, v in fixed.items()}
        else:
            params["n_images"] = int(params["n_images"])
            if params["n_images"] < 1:
                raise ValueError(f"n_images (images between the end states) must be >= 1, got {params['n_images']}")
            params["climb"] = bool(params["climb"])
            params["relax_endpoints"] = bool(params["relax_endpoints"])
            params["endpoint_fmax"] = float(params["endpoint_fmax"] or params["fmax"])
            params["endpoint_max_steps"] = int(params["endpoint_max_steps"])
            if params["interpolation"] not in INTERPOLATIONS:
                raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {params['interpolation']!r}")
            params["fixed_atoms"] = _as_index_list(params["fixed_atoms"] or [], "fixed_atoms")
    except (TypeError, ValueError) as exc:
        raise invalid(str(exc)) from exc

    if params["model_file"] is None:
        if not params.get("model_name"):
            raise invalid("'model_file' (or a registered 'model_name') is required")
        try:
            params["model_file"] = str(locate_model_file(params["model_name"]))
        except (UnknownModelError, ModelNotAvailableError) as exc:
            raise RunnerError(EXIT_INPUT, str(exc)) from exc
    base = path.resolve().parent
    file_keys = ["model_file", "frames_file", "output_file", "results_file"]
    if task == "relax":
        file_keys.append("trajectory_file")
    for key in file_keys:
        value = pathlib.Path(os.path.expanduser(str(params[key])))
        params[key] = value if value.is_absolute() else base / value
    if params["model_name"] is None:
        params["model_name"] = params["model_file"].name
    return params


def _load_frames_and_calculator(params: dict[str, Any], task: str):
    """(frames, images, calculator, model info, load seconds) for ``params``; RunnerError on failure."""
    from aiida_reactmlip.frames import read_extxyz

    frames_file: pathlib.Path = params["frames_file"]
    model_file: pathlib.Path = params["model_file"]
    if not frames_file.is_file():
        raise RunnerError(EXIT_INPUT, f"frames file {str(frames_file)!r} does not exist")
    try:
        frames = read_extxyz(frames_file)
        images = frames.to_atoms()
    except (OSError, ValueError) as exc:
        raise RunnerError(EXIT_INPUT, f"frames file {str(frames_file)!r} is unreadable: {exc}") from exc
    if not images:
        raise RunnerError(EXIT_INPUT, f"frames file {str(frames_file)!r} holds no frame")
    if not model_file.is_file():
        raise RunnerError(EXIT_INPUT, f"model file {str(model_file)!r} does not exist")

    import torch

    if params["num_threads"]:
        torch.set_num_threads(params["num_threads"])
    _log(
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
    _log(f"model loaded in {load_seconds:.2f} s")
    for atoms in images:
        atoms.calc = None  # input labels are not used
    return frames, images, calc, info, load_seconds


def frame_fixed_atoms(info: dict[str, Any], extra: list[int] | None, n_atoms: int, what: str) -> list[int]:
    """Atom indices to keep fixed: ``extra`` plus a ``fixed_atoms`` frame-info entry (a JSON list string)."""
    fixed = set(extra or [])
    carried = info.get("fixed_atoms")
    if carried is not None:
        try:
            value = json.loads(carried) if isinstance(carried, str) else carried
            fixed.update(_as_index_list(value, f"{what}: info fixed_atoms"))
        except (json.JSONDecodeError, ValueError) as exc:
            raise RunnerError(EXIT_INPUT, f"{what}: info 'fixed_atoms' is not a JSON list of atom indices: {exc}") from exc
    bad = sorted(i for i in fixed if i >= n_atoms)
    if bad:
        raise RunnerError(EXIT_INPUT, f"{what}: fixed atom index(es) {bad} out of range for {n_atoms} atoms")
    return sorted(fixed)


def _optimizer_class(name: str):
    from ase.optimize import BFGS, FIRE, LBFGS

    return {"BFGS": BFGS, "FIRE": FIRE, "LBFGS": LBFGS}[name]


def _max_force(atoms) -> float:
    """Largest force norm (eV/A) on the atoms that are free to move (constraints applied)."""
    forces = atoms.get_forces()  # FixAtoms zeroes the fixed atoms
    return float(np.sqrt((forces**2).sum(axis=1)).max()) if len(atoms) else 0.0


def _labelled_frame(atoms, calc, info: dict[str, Any]):
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


def _mlip_info(info: dict[str, Any], role: str, model_name: str) -> dict[str, Any]:
    """Frame info of an MLIP-made frame: a DFT ``source_uuid`` is kept as ``initial_source_uuid``."""
    out = {k: v for k, v in info.items() if k != "source_uuid"}
    if "source_uuid" in info:
        out["initial_source_uuid"] = info["source_uuid"]
    out["role"] = role
    out["model_name"] = model_name
    return out


def _memoizing_calculator(calc, size: int = 16):
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

    from aiida_reactmlip.frames import Frames, write_extxyz

    wall_start = time.perf_counter()
    frames, images, calc, info, load_seconds = _load_frames_and_calculator(params, "relax")
    n_frames = len(images)
    bad = sorted(i for i in params["fixed_atoms"] if i >= n_frames)
    if bad:
        raise RunnerError(EXIT_INPUT, f"fixed_atoms names frame(s) {bad} but there are {n_frames} frames")
    fixed_per_frame = [
        frame_fixed_atoms(frames.info[i], params["fixed_atoms"].get(i), len(images[i]), f"frame {i}")
        for i in range(n_frames)
    ]
    if params["relax_cell"]:
        flat = [i for i, atoms in enumerate(images) if not is_periodic_3d(atoms)]
        if flat:
            raise RunnerError(EXIT_INPUT, f"relax_cell needs 3D-periodic frames; frame(s) {flat} are not")
    optimizer_class = _optimizer_class(params["optimizer"])
    calc = _memoizing_calculator(calc)

    relaxed, results, trajectory = [], [], {}
    run_start = time.perf_counter()
    try:
        for i, atoms in enumerate(images):
            start = time.perf_counter()
            atoms.calc = calc
            if fixed_per_frame[i]:
                atoms.set_constraint(FixAtoms(indices=fixed_per_frame[i]))
            target = FrechetCellFilter(atoms) if params["relax_cell"] else atoms
            energies, fmaxes = [], []

            def record(atoms=atoms, energies=energies, fmaxes=fmaxes):
                energies.append(float(atoms.get_potential_energy()))
                fmaxes.append(_max_force(atoms))

            optimizer = optimizer_class(target, logfile=None)
            optimizer.attach(record, interval=1)
            optimizer.run(fmax=params["fmax"], steps=params["max_steps"])
            final_fmax = _max_force(atoms)
            # ASE's criterion, on what the optimiser moves (with relax_cell: atoms and the cell)
            target_forces = target.get_forces()
            converged = bool((target_forces**2).sum(axis=1).max() < params["fmax"] ** 2)
            steps = int(optimizer.nsteps)
            frame_info = _mlip_info(frames.info[i], "mlip_relaxed", params["model_name"])
            frame_info.update(converged=converged, steps=steps)
            if fixed_per_frame[i]:
                frame_info["fixed_atoms"] = json.dumps(fixed_per_frame[i])
            relaxed.append(_labelled_frame(atoms, calc, frame_info))
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
            _log(f"frame {i}: {'converged' if converged else 'NOT converged'} in {steps} steps, "
                 f"fmax {final_fmax:.4f} eV/A, energy {results[-1]['energy']:.6f} eV, {seconds:.2f} s")
    except RunnerError:
        raise
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        raise RunnerError(EXIT_EVALUATION, f"relaxation failed: {type(exc).__name__}: {exc}") from exc
    run_seconds = time.perf_counter() - run_start

    params["output_file"].parent.mkdir(parents=True, exist_ok=True)
    tmp = params["output_file"].with_name(params["output_file"].name + ".tmp")
    write_extxyz(Frames.from_atoms(relaxed), tmp)
    os.replace(tmp, params["output_file"])
    _write_npz(params["trajectory_file"], **trajectory)
    not_converged = [i for i, r in enumerate(results) if not r["converged"]]
    summary = {
        "task": "relax",
        "frames": results,
        "n_frames": n_frames,
        "n_converged": n_frames - len(not_converged),
        "not_converged": not_converged,
        "settings": {k: params[k] for k in ("optimizer", "fmax", "max_steps", "relax_cell")},
        "family": params["family"],
        "model_name": params["model_name"],
        "model": {key: info[key] for key in ("n_elements", "cutoff", "dtype", "n_parameters", "sha256")},
        "model_load_seconds": load_seconds,
        "relax_seconds": run_seconds,
        "n_evaluations": calc.n_evaluations,
        "wall_seconds": time.perf_counter() - wall_start,
        "versions": _package_versions(params["family"]),
    }
    _write_json(params["results_file"], summary)
    _log(f"done: {n_frames - len(not_converged)}/{n_frames} frames converged in {run_seconds:.2f} s")
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

    from aiida_reactmlip.frames import Frames, write_extxyz

    wall_start = time.perf_counter()
    frames, images, calc, info, load_seconds = _load_frames_and_calculator(params, "neb")
    if len(images) < 2:
        raise RunnerError(EXIT_INPUT, f"NEB needs at least the two end states, got {len(images)} frame(s)")
    first = images[0]
    for k, atoms in enumerate(images[1:], start=1):
        if len(atoms) != len(first) or not np.array_equal(atoms.numbers, first.numbers):
            raise RunnerError(EXIT_INPUT, f"frame {k} has other atoms than frame 0 (same atoms in the same order needed)")
        if not np.allclose(atoms.cell[:], first.cell[:]) or not np.array_equal(atoms.pbc, first.pbc):
            raise RunnerError(EXIT_INPUT, f"frame {k} has another cell or pbc than frame 0")
    fixed = frame_fixed_atoms(frames.info[0], params["fixed_atoms"], len(first), "frame 0")
    for k in range(1, len(images)):
        fixed = sorted(set(fixed) | set(frame_fixed_atoms(frames.info[k], [], len(first), f"frame {k}")))
    optimizer_class = _optimizer_class(params["optimizer"])
    calc = _memoizing_calculator(calc, size=max(16, len(images) + params["n_images"] + 4))  # whole band

    def constrain(atoms):
        if fixed:
            atoms.set_constraint(FixAtoms(indices=fixed))
        return atoms

    start = time.perf_counter()
    endpoint_results = []
    try:
        endpoints = [constrain(images[0].copy()), constrain(images[-1].copy())]
        for label, atoms in zip(("initial", "final"), endpoints):
            atoms.calc = calc
            steps, converged = 0, None
            if params["relax_endpoints"]:
                optimizer = optimizer_class(atoms, logfile=None)
                optimizer.run(fmax=params["endpoint_fmax"], steps=params["endpoint_max_steps"])
                steps = int(optimizer.nsteps)
                converged = bool(_max_force(atoms) < params["endpoint_fmax"])
            endpoint_results.append({
                "end_state": label, "relaxed": params["relax_endpoints"], "steps": steps, "converged": converged,
                "fmax": _max_force(atoms), "energy": float(atoms.get_potential_energy()),
            })
            _log(f"{label} state: energy {endpoint_results[-1]['energy']:.6f} eV, fmax "
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
            frame_info = _mlip_info(frames.info[0] if k == 0 else frames.info[-1] if k == len(band) - 1 else {},
                                    "mlip_neb_image", params["model_name"])
            frame_info["image"] = k
            if fixed:
                frame_info["fixed_atoms"] = json.dumps(fixed)
            labelled.append(_labelled_frame(atoms, calc, frame_info))
    except RunnerError:
        raise
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        raise RunnerError(EXIT_EVALUATION, f"NEB failed: {type(exc).__name__}: {exc}") from exc
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
        "family": params["family"],
        "model_name": params["model_name"],
        "model": {key: info[key] for key in ("n_elements", "cutoff", "dtype", "n_parameters", "sha256")},
        "model_load_seconds": load_seconds,
        "neb_seconds": neb_seconds,
        "n_evaluations": calc.n_evaluations,
        "wall_seconds": time.perf_counter() - wall_start,
        "versions": _package_versions(params["family"]),
    }
    params["output_file"].parent.mkdir(parents=True, exist_ok=True)
    tmp = params["output_file"].with_name(params["output_file"].name + ".tmp")
    write_extxyz(Frames.from_atoms(labelled), tmp)
    os.replace(tmp, params["output_file"])
    _write_json(params["results_file"], profile)
    _log(f"done: NEB {'converged' if converged else 'NOT converged'} in {steps} steps (fmax {neb_fmax:.4f} eV/A), "
         f"barrier {profile['barrier']:.4f} eV at image {highest}, reaction energy {profile['reaction_energy']:.4f} eV, "
         f"{neb_seconds:.2f} s")
    if not converged:
        raise RunnerError(
            EXIT_NOT_CONVERGED, f"the band did not reach fmax {params['fmax']} eV/A within {params['max_steps']} steps"
        )
    return profile


# ---------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reactmlip-runner",
        description="Evaluate a machine-learning interatomic potential on a set of frames (no AiiDA needed).",
        epilog="exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    evaluate = sub.add_parser("evaluate", help="energies, forces and stress of every frame of an extxyz file")
    evaluate.add_argument("--input", "-i", required=True, help="JSON file with the run parameters")
    relax = sub.add_parser(
        "relax",
        help="relax every frame with the MLIP (ASE optimiser, fixed atoms kept fixed)",
        description="Relax every frame of an extxyz file with the MLIP. Example input.json: "
        '{"family": "chgnet", "model_name": "chgnet-0.3.0", "frames_file": "frames.extxyz", '
        '"optimizer": "BFGS", "fmax": 0.05, "max_steps": 200, "fixed_atoms": {"0": [0, 1]}}',
    )
    relax.add_argument("--input", "-i", required=True, help="JSON file with the run parameters")
    neb = sub.add_parser(
        "neb",
        help="climbing-image NEB between two end states (or along a given band) with the MLIP",
        description="Climbing-image NEB with the MLIP (ase.mep.NEB). Example input.json: "
        '{"family": "chgnet", "model_name": "chgnet-0.3.0", "frames_file": "ends.extxyz", "n_images": 5, '
        '"climb": true, "fmax": 0.05, "max_steps": 300, "relax_endpoints": true, "interpolation": "idpp"}',
    )
    neb.add_argument("--input", "-i", required=True, help="JSON file with the run parameters")
    finetune = sub.add_parser(
        "finetune",
        help="fine-tune a model (CHGNet, SevenNet, MACE) on training frames, validated on validation frames",
        description="Fine-tune an MLIP on labelled frames (see aiida_reactmlip.calculations.runner_finetune).",
    )
    finetune.add_argument("--input", "-i", required=True, help="JSON file with the run parameters")
    md = sub.add_parser(
        "md",
        help="molecular dynamics with the MLIP (ASE Langevin or NVT Berendsen, seeded); frames kept as a pool",
        description="MLIP molecular dynamics from each start frame (see aiida_reactmlip.calculations.runner_md).",
    )
    md.add_argument("--input", "-i", required=True, help="JSON file with the run parameters")
    return parser


STATUS_FILE = "status.json"


def write_status(input_file: str | os.PathLike, exit_code: int, message: str) -> None:
    """Write ``status.json`` beside ``input_file``: how the run ended, for the AiiDA parser to read."""
    path = pathlib.Path(input_file).resolve().parent / STATUS_FILE
    try:
        _write_json(path, {"exit_code": int(exit_code), "meaning": EXIT_CODES.get(exit_code, "?"), "message": message})
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``reactmlip-runner``; returns the exit code (see :data:`EXIT_CODES`).

    Whatever happens, ``status.json`` beside the input file records the exit code and message.
    """
    args = build_parser().parse_args(argv)
    try:
        if args.command == "evaluate":
            run_evaluate(read_input(args.input))
        elif args.command == "relax":
            run_relax(read_task_input(args.input, "relax"))
        elif args.command == "neb":
            run_neb(read_task_input(args.input, "neb"))
        elif args.command == "finetune":
            from aiida_reactmlip.calculations.runner_finetune import run_finetune

            run_finetune(args.input)
        elif args.command == "md":
            from aiida_reactmlip.calculations.runner_md import run_md

            run_md(args.input)
    except RunnerError as exc:
        print(f"reactmlip-runner: error: {exc}", file=sys.stderr, flush=True)
        write_status(args.input, exc.exit_code, str(exc))
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - any other failure is an evaluation failure, reported
        traceback.print_exc()
        write_status(args.input, EXIT_EVALUATION, f"{type(exc).__name__}: {exc}")
        return EXIT_EVALUATION
    write_status(args.input, EXIT_OK, "ok")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
