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
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import numpy as np

from aiida_reactmlip.runner import files
from aiida_reactmlip.runner.contract import EXIT_EVALUATION, RunnerError
from aiida_reactmlip.runner.inference import Progress, batch_size_for, choose_mode, evaluate_images
from aiida_reactmlip.runner.workers import available_cpus, evaluate_in_workers, plan_workers


def run_evaluate(params: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the model on the frames of ``params`` (as ``files.read_task_input(..., "evaluate")`` returns
    them); write the outputs.

    Returns the timing record; raises :class:`RunnerError` with the exit code on failure.
    """
    wall_start = time.perf_counter()
    family = params["family"]
    model_file: pathlib.Path = params["model_file"]
    frames, images, calc, info, load_seconds = files.load_frames_and_calculator(params, "evaluate")
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
        "wall_seconds": time.perf_counter() - wall_start,
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
    files.write_json(params["timing_file"], timing)
    per_frame = f"{timing['seconds_per_frame']:.4f}" if n_frames else "n/a"
    files.log(
        f"done: {n_frames} frames in {eval_seconds:.2f} s ({per_frame} s/frame); "
        f"wrote {params['output_file'].name} and {params['timing_file'].name}"
    )
    return timing


