"""``reactmlip-runner evaluate``: energies, forces and stress of every frame with one model.

Never imports aiida. ``input.json`` (relative paths are taken relative to its directory)::

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
                                          # ase: calculator loop; auto: see inference.choose_mode and
                                          # batch_size_for (on CPU: frame by frame; GPU: batches)
      "workers": null,                    # processes sharing the frames (null: auto, see
                                          # workers.plan_workers: on CPU one per core and 100 frames, else 1)
      "num_threads": 2,                   # optional: torch threads per process (null: cores / workers)
      "dtype": null,                      # optional: MACE "float64" (default) or "float32"
      "output_file": "predictions.npz",
      "timing_file": "timing.json"
    }

Defaults and allowed values: :data:`aiida_reactmlip.runner.contract.EVALUATE_SETTINGS`. Outputs:

- ``predictions.npz``: ``energies`` (F,) eV; ``forces`` (N_total, 3) eV/A, concatenated in frame
  order; ``stress`` (F, 6) eV/A^3 in ASE Voigt order (xx, yy, zz, yz, xz, xy) and sign, NaN for
  frames that are not periodic in 3D (or when ``compute_stress`` is false); ``n_atoms`` (F,).
- ``timing.json``: model load and evaluation seconds, seconds per frame, the mode used, threads,
  package versions and what the model file covers.

``reactmlip-runner evaluate_many`` (:func:`run_evaluate_many`): several models on several frame sets in one
process, each model loaded once and each frame file read once (a loop's committee, a model on its validation
and test sets), so the runner start, imports and frame I/O are paid once instead of once per pair::

    {
      "models": {"member_00": {"family": "chgnet", "model_file": "model_member_00.pth.tar",
                               "model_name": "chgnet-0.3.0"}, ...},
      "frames": {"pool": "frames_pool.npz", ...},
      "settings": {...},                  # the evaluate settings above, shared by every pair
      "timing_file": "timing.json"
    }

Keys: letters, digits and single underscores. Every model is evaluated on every frame set; model ``m`` on
frame set ``f`` writes ``predictions__m__f.npz`` (the arrays above); ``timing.json`` holds one evaluate timing
record per pair under ``evaluations``, the model loads under ``models`` and the job's wall time.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import numpy as np

from aiida_reactmlip.runner import files
from aiida_reactmlip.runner.contract import (
    EVALUATE_MANY,
    EVALUATE_MANY_KEYS,
    EXIT_EVALUATION,
    MODEL_KEYS,
    OUTPUT_FILES,
    RunnerError,
    check_many_key,
    check_settings,
    many_predictions_file,
)
from aiida_reactmlip.runner.inference import Progress, batch_size_for, choose_mode, evaluate_images
from aiida_reactmlip.runner.workers import available_cpus, evaluate_in_workers, plan_workers


def run_evaluate(params: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the model on the frames of ``params`` (as ``files.read_task_input(..., "evaluate")`` returns
    them); write the outputs.

    Returns the timing record; raises :class:`RunnerError` with the exit code on failure.
    """
    wall_start = time.perf_counter()
    frames, images, calc, info, load_seconds = files.load_frames_and_calculator(params, "evaluate")
    timing = evaluate_loaded(params, frames, images, calc, info, load_seconds)
    timing["wall_seconds"] = time.perf_counter() - wall_start
    files.write_json(params["timing_file"], timing)
    return timing


def evaluate_loaded(params: dict[str, Any], frames, images: list, calc, info: dict[str, Any],
                    load_seconds: float) -> dict[str, Any]:
    """Evaluate the loaded model ``calc`` on ``images`` and write ``params["output_file"]``; the timing record
    (without ``wall_seconds``)."""
    family = params["family"]
    model_file: pathlib.Path = params["model_file"]
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
    files.log(
        f"evaluate: frames={n_frames} atoms={n_atoms_total} mode={mode} (requested {params['mode']}) "
        f"batch_size={batch_size} workers={workers} (requested {params['workers'] or 'auto'}, {cpus} cores) "
        f"threads/worker={threads}; model: {info['n_elements']} elements, cutoff {info['cutoff']} A, "
        f"{info['n_parameters']} parameters, {info['dtype']}"
    )
    if params["mode"] == "batched" and mode != "batched":
        files.log(f"note: no batched path for family {family}; using the ASE calculator loop")

    # -- evaluation
    progress = Progress(n_frames)
    eval_start = time.perf_counter()
    workers_info: dict[str, Any] = {}
    with files.failure_reported("evaluation"):
        if workers > 1:
            energies, forces, stress, workers_info = evaluate_in_workers(
                calc, params, mode, images, batch_size, workers, worker_threads, progress
            )
        else:
            energies, forces, stress = evaluate_images(
                calc, family, mode, images, batch_size, params["compute_stress"], params["device"], progress
            )
    eval_seconds = time.perf_counter() - eval_start

    forces_all = np.concatenate(forces).reshape(-1, 3) if forces else np.zeros((0, 3))
    if forces_all.shape != (n_atoms_total, 3):  # pragma: no cover - a model returning a wrong shape
        raise RunnerError(
            EXIT_EVALUATION, f"forces have shape {forces_all.shape}, expected ({n_atoms_total}, 3)"
        )
    nonfinite = int((~np.isfinite(energies)).sum())
    if nonfinite:
        files.log(f"warning: {nonfinite} frame(s) got a non-finite energy")

    params["output_file"].parent.mkdir(parents=True, exist_ok=True)
    files.write_npz(
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
        "model": files.model_summary(info),
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
        "torch_threads": threads,
        "workers": workers,
        "workers_requested": params["workers"],
        "cpus": cpus,
        "worker_load_seconds": workers_info.get("worker_load_seconds"),
        "frames_by_helpers": workers_info.get("frames_by_helpers"),
        "peak_memory_mb": files.peak_memory_mb(),
        "peak_memory_mb_helper": workers_info.get("peak_memory_mb_helper"),
        "versions": files.package_versions(family),
    }
    per_frame = f"{timing['seconds_per_frame']:.4f}" if n_frames else "n/a"
    files.log(f"done: {n_frames} frames in {eval_seconds:.2f} s ({per_frame} s/frame); "
              f"wrote {params['output_file'].name}")
    return timing


def read_many_input(input_file) -> dict[str, Any]:
    """The checked manifest of an ``evaluate_many`` ``input.json``: ``models`` (key -> family, model_file,
    model_name, dtype), ``frames`` (key -> path), ``settings`` (checked evaluate settings), ``timing_file``;
    paths made absolute (relative to the directory of ``input_file``). RunnerError EXIT_INPUT otherwise."""
    path = pathlib.Path(input_file)
    raw = files.read_json_object(path)
    invalid = files.input_error(path)
    files.check_keys(raw, list(EVALUATE_MANY_KEYS), invalid)
    base = path.resolve().parent
    models, frame_sets = raw.get("models"), raw.get("frames")
    for name, value in (("models", models), ("frames", frame_sets)):
        if not isinstance(value, dict) or not value:
            raise invalid(f"'{name}' must be a non-empty object of key -> entry")
    try:
        for key in (*models, *frame_sets):
            check_many_key(key, "models" if key in models else "frames")
        settings = check_settings("evaluate", raw.get("settings") or {})
    except ValueError as exc:
        raise invalid(str(exc)) from exc
    checked_models = {}
    for key, entry in models.items():
        if not isinstance(entry, dict) or not entry.get("family") or not entry.get("model_file"):
            raise invalid(f"model {key!r} needs 'family' and 'model_file'")
        files.check_keys(entry, ["family", *MODEL_KEYS], invalid)
        model_file = files.resolve_path(base, entry["model_file"])
        checked_models[key] = {"family": entry["family"], "model_file": model_file, "dtype": entry.get("dtype"),
                               "model_name": entry.get("model_name") or model_file.name}
    for key, value in frame_sets.items():
        if not isinstance(value, str) or not value:
            raise invalid(f"frames {key!r} must be a file name")
    return {"models": checked_models, "settings": settings,
            "frames": {key: files.resolve_path(base, value) for key, value in frame_sets.items()},
            "timing_file": files.resolve_path(base, raw.get("timing_file") or OUTPUT_FILES["evaluate"]["timing_file"])}


def run_evaluate_many(input_file) -> dict[str, Any]:
    """Evaluate every model of an ``evaluate_many`` ``input.json`` on every frame set: each frame file read
    once, each model loaded once (and its elements checked against every frame set first). Writes one
    predictions file per pair and ``timing.json``; returns the timing record."""
    wall_start = time.perf_counter()
    manifest = read_many_input(input_file)
    directory = pathlib.Path(input_file).resolve().parent
    read_start = time.perf_counter()
    frame_sets = {key: files.read_images(path) for key, path in manifest["frames"].items()}
    read_seconds = time.perf_counter() - read_start
    all_images = [atoms for _, images in frame_sets.values() for atoms in images]
    evaluations, loads = {}, {}
    for model_key, model in manifest["models"].items():
        params = {**manifest["settings"], **model}
        calc, info, load_seconds = files.load_checked_calculator(params, EVALUATE_MANY, all_images)
        loads[model_key] = {"model_name": model["model_name"], "model_load_seconds": load_seconds}
        for frames_key, (frames, images) in frame_sets.items():
            files.log(f"evaluate_many: model {model_key} on frames {frames_key}")
            pair = {**params, "output_file": directory / many_predictions_file(model_key, frames_key)}
            record = evaluate_loaded(pair, frames, images, calc, info, load_seconds)
            evaluations[f"{model_key}.{frames_key}"] = {**record, "model_key": model_key, "frames_key": frames_key}
        del calc
    timing = {
        "task": EVALUATE_MANY,
        "n_models": len(manifest["models"]),
        "n_frame_sets": len(frame_sets),
        "frames_read_seconds": read_seconds,
        "models": loads,
        "evaluations": evaluations,
        "model_load_seconds": sum(entry["model_load_seconds"] for entry in loads.values()),
        "evaluation_seconds": sum(entry["evaluation_seconds"] for entry in evaluations.values()),
        "wall_seconds": time.perf_counter() - wall_start,
        "peak_memory_mb": files.peak_memory_mb(),
    }
    files.write_json(manifest["timing_file"], timing)
    files.log(f"done: {len(evaluations)} evaluation(s) of {len(loads)} model(s) in {timing['wall_seconds']:.2f} s; "
              f"wrote {manifest['timing_file'].name}")
    return timing


