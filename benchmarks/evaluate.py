"""Benchmark ``evaluate``: the ``reactmlip.evaluate`` CalcJob versus a plain ASE calculator loop.

For each model (CHGNet 0.3.0, SevenNet-0) on the same F rattled frames of a Cu(111)+O slab:

- **CalcJob path**: ``LabelledDatasetData.from_atoms(frames).store()`` then
  ``run_get_node(EvaluateCalculation, code=runner, model=..., dataset=...)`` on localhost
  (``core.local`` + ``core.direct``, a throw-away SQLite profile without broker). The runner is a
  separate process: it pays interpreter start, imports and model load on every job.
- **Plain loop, 1 process**: a fresh Python process (``benchmarks._loop``, no AiiDA) that imports,
  ``load_calculator(family, file)``, then for each frame
  ``atoms.calc = calc; atoms.get_potential_energy(); atoms.get_forces(); atoms.get_stress()``
  (the runner computes stress for 3D-periodic frames too; both models produce it in the same
  forward pass, so asking for it costs nothing extra). A fresh process because this one has already
  imported the model packages and built the models while provisioning their nodes. It gets as
  many torch threads as the runner used cores (its threads per process times its worker processes).
- **Plain loop, N processes x T threads**: the runner's own parallelism, read from the CalcJob's
  ``timing`` output (``workers``, ``torch_threads``): N fresh ``benchmarks._loop`` processes started at
  once, each on a contiguous 1/N slice of the frames with T torch threads; its wall time runs from the
  first start to the last end.

Reported: the wall times of the three paths, model load and evaluation times, the ratios
``ratio_total`` (plain-loop wall / CalcJob path wall incl. the dataset node) and ``ratio_eval`` (plain
evaluation s / runner ``evaluation_seconds``) against each baseline and against the best of the two
(>= 1: the CalcJob path is at least as fast as the best plain loop), the CalcJob path's fixed costs
(runner start + imports, model load, frame I/O, AiiDA engine), the AiiDA overhead per frame
((CalcJob path - runner model load - runner evaluation) / F) with a breakdown of where it goes, and the
largest differences between the predictions of the CalcJob and of each plain loop.

``python -m benchmarks evaluate`` runs it like every benchmark; ``python -m benchmarks.evaluate
--frames 500 --write-docs`` also writes ``docs/results/evaluate-cpu.json`` and the table of
``docs/benchmark.md`` generated from it (``benchmarks/_evaluate_docs.py``).
"""

from __future__ import annotations

import contextlib
import io
import re
import time
import warnings
from typing import Any

import numpy as np

from ._common import DEFAULT_WAIT_IDLE, fmt_ms, fmt_s, machine_info, temporary_profile, timed, wait_for_idle

NAME = "evaluate"
DESCRIPTION = ("reactmlip.evaluate CalcJob vs plain ASE calculator loops, in 1 process and in the runner's "
               "processes x threads (CHGNet 0.3.0, SevenNet-0)")
DEFAULT_FRAMES = 500  # the size: 500 frames of a 30-50 atom slab
MODELS = ("chgnet-0.3.0", "sevennet-0")
SEED = 20261124
RATTLE_STDEV = 0.05  # Angstrom

#: Agreement the two paths must reach (float32 models; thread scheduling may reorder sums).
TOLERANCE = {"energy_eV": 1e-4, "forces_eV_per_A": 1e-4, "stress_eV_per_A3": 1e-5}


# ------------------------------------------------------------------------------------ frames


def build_frames(n_frames: int, seed: int = SEED, stdev: float = RATTLE_STDEV) -> list:
    """``n_frames`` copies of a 37-atom Cu(111) 3x3x4 slab with O on an fcc site, each rattled (Gaussian)."""
    from ase.build import add_adsorbate, fcc111

    slab = fcc111("Cu", size=(3, 3, 4), vacuum=7.0)
    add_adsorbate(slab, "O", height=1.2, position="fcc")
    slab.pbc = True  # a slab in a periodic box with vacuum, as plane-wave DFT labels it
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        atoms = slab.copy()
        atoms.positions = atoms.positions + rng.normal(0.0, stdev, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


# ------------------------------------------------------------------------------ the two paths


def _quiet():
    """Swallow what model packages print on load (``CHGNet v0.3.0 initialized ...``)."""
    return contextlib.redirect_stdout(io.StringIO())


def _pct(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.0f}%"


_PROGRESS = re.compile(r"progress: (\d+)/(\d+) frames \([^)]*\), ([0-9.]+) s elapsed")


def runner_progress(log_text: str) -> list[tuple[int, float]]:
    """``(frames done, s since the evaluation started)`` from the runner's progress lines (~every 10%)."""
    return [(int(m.group(1)), float(m.group(3))) for m in _PROGRESS.finditer(log_text)]


def best_chunk_seconds_per_frame(marks: list[tuple[int, float]]) -> float | None:
    """Fastest chunk between consecutive progress marks, in s/frame (the first chunk, with warm-up, too).

    On a shared machine the fastest tenth of a run is the best estimate of the undisturbed speed.
    """
    rates, previous = [], (0, 0.0)
    for done, elapsed in marks:
        if done > previous[0]:
            rates.append((elapsed - previous[1]) / (done - previous[0]))
        previous = (done, elapsed)
    return min(rates) if rates else None


def _cpu_seconds() -> dict[str, float]:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"engine_process": own.ru_utime + own.ru_stime,
            "waited_children": children.ru_utime + children.ru_stime}


def run_calcjob(frames: list, code, model_node, settings: dict | None = None) -> dict[str, Any]:
    """Dataset node + ``reactmlip.evaluate`` CalcJob; wall times of every step and the predictions."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.calculations.evaluate import EvaluateCalculation
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    from ._instrument import instrument_calcjob

    times: dict[str, float] = {}
    with timed(times, "dataset_create"):
        dataset = LabelledDatasetData.from_atoms(frames)
    with timed(times, "dataset_store"):
        dataset.store()

    with instrument_calcjob() as steps, warnings.catch_warnings():
        # aiida-core's SQLAlchemy session warns when it autoflushes while the engine holds an unstored
        # node ("Object of type <DbNode> not in session"): harmless, and it would bury the tables
        warnings.filterwarnings("ignore", message=r"Object of type <DbNode> not in session")
        usage_start = _cpu_seconds()
        start = time.perf_counter()
        extra = {"settings": orm.Dict(settings)} if settings else {}
        _, node = run_get_node(EvaluateCalculation, code=code, model=model_node, dataset=dataset, **extra)
        end = time.perf_counter()
        usage_end = _cpu_seconds()
    times["run_get_node"] = end - start
    # CPU this process (the AiiDA engine) and the short-lived commands it waited for (the scheduler's
    # `ps` polls, ...) used while the job ran: on a 2-core machine that competes with the runner's threads
    engine_cpu = {key: usage_end[key] - usage_start[key] for key in usage_start}

    if not node.is_finished_ok:
        log = ""
        with contextlib.suppress(Exception):
            log = node.outputs.retrieved.base.repository.get_object_content("runner.log")[-3000:]
        raise RuntimeError(
            f"EvaluateCalculation pk {node.pk} failed: exit {node.exit_status} {node.exit_message}\n{log}"
        )

    timing = node.outputs.timing.get_dict()
    runner_log = node.outputs.retrieved.base.repository.get_object_content("runner.log")
    predictions = node.outputs.predictions
    # the job: from the end of the submission to the start of the retrieval (runner process + poll latency)
    submit_end, retrieve_start = steps.last_end("submit"), steps.first_start("retrieve")
    job_seconds = retrieve_start - submit_end if submit_end and retrieve_start else float("nan")
    presubmit_start = steps.first_start("presubmit")
    runner_wall = float(timing["wall_seconds"])
    runner_load = float(timing["model_load_seconds"])
    runner_eval = float(timing["evaluation_seconds"])
    breakdown = {
        "dataset_create": times["dataset_create"],
        "dataset_store": times["dataset_store"],
        "process_setup": (presubmit_start - start) if presubmit_start else float("nan"),
        "presubmit": steps.total("presubmit"),
        "upload": steps.total("upload"),
        "submit": steps.total("submit"),
        "runner_startup_and_poll": job_seconds - runner_wall,
        "runner_model_load": runner_load,
        "runner_evaluation": runner_eval,
        "runner_io": runner_wall - runner_load - runner_eval,
        "retrieve": steps.total("retrieve"),
        "parse": steps.total("parse"),
        "store_outputs": steps.total("store_outputs"),
    }
    total = times["dataset_create"] + times["dataset_store"] + times["run_get_node"]
    breakdown["other"] = total - sum(v for v in breakdown.values() if np.isfinite(v))
    return {
        "pk": node.pk,
        "dataset_pk": dataset.pk,
        "total_seconds": total,
        "run_get_node_seconds": times["run_get_node"],
        "job_seconds": job_seconds,
        "timing": timing,
        "breakdown": breakdown,
        "engine_cpu_seconds": engine_cpu,
        "progress": runner_progress(runner_log),
        "energies": np.asarray(predictions.get_array("energies")),
        "forces": np.asarray(predictions.get_array("forces")),
        "stress": np.asarray(predictions.get_array("stress")),
    }


def _save_frames(frames: list, path: str) -> None:
    """The frames as ``benchmarks._loop`` reads them (float64 positions and cells, in Angstrom)."""
    np.savez(
        path,
        numbers=np.array([a.numbers for a in frames]),
        positions=np.array([a.positions for a in frames]),
        cells=np.array([np.asarray(a.cell[:]) for a in frames]),
        pbc=np.array([a.pbc for a in frames]),
    )


def _loop_command(frames_file: str, family: str, model_name: str, output: str, threads: int | None,
                  start: int | None = None, stop: int | None = None) -> list[str]:
    import sys

    command = [sys.executable, "-m", "benchmarks._loop", "--frames", frames_file, "--family", family,
               "--model", model_name, "--output", output]
    if threads:
        command += ["--threads", str(int(threads))]
    if start is not None:
        command += ["--start", str(int(start)), "--stop", str(int(stop))]
    return command


def _read_loop_output(path: str) -> dict[str, Any]:
    with np.load(path) as out:
        result = {key: np.asarray(out[key]) for key in out.files}
    for key in ("imports_seconds", "model_load_seconds", "evaluation_seconds", "process_start_epoch",
                "evaluation_start_epoch", "evaluation_end_epoch"):
        if key in result:
            result[key] = float(result[key])
    for key in ("torch_threads", "start", "stop"):
        if key in result:
            result[key] = int(result[key])
    return result


def _repo_root():
    import pathlib

    return pathlib.Path(__file__).resolve().parent.parent


def run_loop(frames: list, family: str, model_name: str, threads: int | None) -> dict[str, Any]:
    """The plain ASE loop in one fresh process (``benchmarks._loop``); wall times (s) and predictions."""
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="reactmlip-bench-loop-") as tmp:
        frames_file, output = os.path.join(tmp, "frames.npz"), os.path.join(tmp, "out.npz")
        _save_frames(frames, frames_file)
        command = _loop_command(frames_file, family, model_name, output, threads)
        start = time.perf_counter()
        done = subprocess.run(command, cwd=_repo_root(), capture_output=True, text=True, check=False)
        process_seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(
                f"plain loop for {model_name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        result = _read_loop_output(output)
    result["process_seconds"] = process_seconds
    return result


def frame_slices(n_frames: int, processes: int) -> list[tuple[int, int]]:
    """``processes`` contiguous ``(start, stop)`` slices of ``range(n_frames)`` (sizes differ by <= 1)."""
    processes = max(1, min(int(processes), n_frames))
    return [(i * n_frames // processes, (i + 1) * n_frames // processes) for i in range(processes)]


def run_loop_parallel(frames: list, family: str, model_name: str, processes: int,
                      threads: int | None) -> dict[str, Any]:
    """``processes`` fresh plain-loop processes started at once, each on a contiguous slice of the frames with
    ``threads`` torch threads: the runner's parallelism without AiiDA.

    ``process_seconds``: wall from the first start to the last end. ``imports_seconds`` and
    ``model_load_seconds``: the slowest process's. ``evaluation_seconds``: the slowest process's own
    evaluation (as if every slice started evaluating at the same moment; the baseline's best case);
    ``evaluation_span_seconds``: from the first process's evaluation start to the last one's end.
    Predictions in frame order.
    """
    import os
    import subprocess
    import tempfile

    slices = frame_slices(len(frames), processes)
    with tempfile.TemporaryDirectory(prefix="reactmlip-bench-loops-") as tmp:
        frames_file = os.path.join(tmp, "frames.npz")
        _save_frames(frames, frames_file)
        outputs = [os.path.join(tmp, f"out-{i}.npz") for i in range(len(slices))]
        logs = [open(os.path.join(tmp, f"log-{i}.txt"), "w+") for i in range(len(slices))]  # noqa: SIM115
        try:
            start = time.perf_counter()
            running = [
                subprocess.Popen(_loop_command(frames_file, family, model_name, output, threads, first, stop),
                                 cwd=_repo_root(), stdout=log, stderr=subprocess.STDOUT)
                for output, log, (first, stop) in zip(outputs, logs, slices)
            ]
            codes = [process.wait() for process in running]
            process_seconds = time.perf_counter() - start
            for code, log, (first, stop) in zip(codes, logs, slices):
                if code != 0:
                    log.seek(0)
                    raise RuntimeError(f"plain loop {first}:{stop} for {model_name} failed ({code}):\n"
                                       f"{log.read()[-3000:]}")
        finally:
            for log in logs:
                log.close()
        parts = [_read_loop_output(output) for output in outputs]
    per_process = [
        {"start": part["start"], "stop": part["stop"], "imports_seconds": part["imports_seconds"],
         "model_load_seconds": part["model_load_seconds"], "evaluation_seconds": part["evaluation_seconds"],
         "torch_threads": part["torch_threads"]}
        for part in parts
    ]
    return {
        "energies": np.concatenate([part["energies"] for part in parts]),
        "forces": np.concatenate([part["forces"] for part in parts]),
        "stress": np.concatenate([part["stress"] for part in parts]),
        "process_seconds": process_seconds,
        "imports_seconds": max(part["imports_seconds"] for part in parts),
        "model_load_seconds": max(part["model_load_seconds"] for part in parts),
        "evaluation_seconds": max(part["evaluation_seconds"] for part in parts),
        "evaluation_span_seconds": (max(part["evaluation_end_epoch"] for part in parts)
                                    - min(part["evaluation_start_epoch"] for part in parts)),
        "processes": len(parts),
        "torch_threads": parts[0]["torch_threads"],
        "per_process": per_process,
    }


def compare(calcjob: dict, loop: dict) -> dict[str, Any]:
    """Largest absolute differences between the two paths (NaN-aware for stress)."""

    def maxdiff(a, b) -> float:
        a, b = np.asarray(a, float), np.asarray(b, float)
        if a.shape != b.shape:
            return float("inf")
        both_nan = np.isnan(a) & np.isnan(b)
        if np.any(np.isnan(a) ^ np.isnan(b)):
            return float("inf")
        return float(np.max(np.abs(np.where(both_nan, 0.0, a - b)), initial=0.0))

    diff = {
        "energy_eV": maxdiff(calcjob["energies"], loop["energies"]),
        "forces_eV_per_A": maxdiff(calcjob["forces"], loop["forces"]),
        "stress_eV_per_A3": maxdiff(calcjob["stress"], loop["stress"]),
    }
    diff["agree"] = all(diff[key] <= tol for key, tol in TOLERANCE.items())
    return diff


# ---------------------------------------------------------------------------------- run + show


#: The CalcJob path's costs besides the runner's evaluation, grouped: keys of ``breakdown_seconds`` (s).
FIXED_COST_GROUPS = {
    # from the end of the submission until the first poll sees the runner finished, minus its own wall:
    # interpreter start, imports and the scheduler's poll latency
    "runner_start_and_imports": ("runner_startup_and_poll",),
    "model_load": ("runner_model_load",),
    # frames into the database and the frames archive, read by the runner; predictions written and parsed back
    "frame_io": ("dataset_create", "dataset_store", "presubmit", "runner_io", "parse"),
    "aiida_engine": ("process_setup", "upload", "submit", "retrieve", "store_outputs", "other"),
}


FIXED_COST_LABELS = {
    "runner_start_and_imports": "runner start + imports (+ poll wait)",
    "model_load": "model load",
    "frame_io": "frame I/O",
    "aiida_engine": "AiiDA engine",
}


def fixed_costs(breakdown: dict[str, float]) -> dict[str, float]:
    """``FIXED_COST_GROUPS`` summed from a CalcJob breakdown (s; unmeasured steps count 0), and ``total``."""

    def measured(key: str) -> float:
        value = breakdown.get(key, float("nan"))
        return float(value) if value is not None and np.isfinite(value) else 0.0

    costs = {group: sum(measured(key) for key in keys) for group, keys in FIXED_COST_GROUPS.items()}
    costs["total"] = sum(costs.values())
    return costs



def run(frames: int | None = None, models: list[str] | None = None, console=None,
        wait_idle: float = DEFAULT_WAIT_IDLE, poll_interval: float | None = None, mode: str | None = None,
        batch_size: int | None = None, login_shell: bool = False, workers: int | None = None,
        **_: Any) -> dict[str, Any]:
    """Measure the CalcJob path and both plain loops for each model (``workers``: the runner's setting,
    default auto); the result dict, seconds unless a key says otherwise."""
    n_frames = int(frames or DEFAULT_FRAMES)
    models = list(models or MODELS)
    log = console.log if console is not None else print
    info = machine_info()
    temporary_profile()

    from aiida_reactmlip import provision
    from aiida_reactmlip.models import get_model_spec

    computer = provision.ensure_localhost()
    if poll_interval is not None:  # an experiment: how much the engine's scheduler polling costs the runner
        computer.set_minimum_job_poll_interval(float(poll_interval))
    if login_shell:  # an experiment: aiida's default transport shell, which provision no longer uses
        from aiida import orm

        authinfo = computer.get_authinfo(orm.User.collection.get_default())
        authinfo.set_auth_params({**authinfo.get_auth_params(), "use_login_shell": True})
    settings = {key: value for key, value in (("mode", mode), ("batch_size", batch_size),
                                              ("workers", workers)) if value is not None}
    # only the runner is needed here (ensure_codes would also require pw.x and neb.x)
    code = provision.ensure_installed_code(
        provision.RUNNER_CODE_LABEL, provision.runner_executable(), "reactmlip.evaluate", computer,
        "aiida-reactmlip MLIP runner",
    )
    with _quiet():
        model_nodes = provision.ensure_registry_models(models)

    images = build_frames(n_frames)
    n_atoms = len(images[0])
    log(f"evaluate: {n_frames} frames x {n_atoms} atoms (Cu(111) 3x3x4 + O fcc, rattle {RATTLE_STDEV} A)")

    per_model = {}
    for name in models:
        family = get_model_spec(name).family
        busy = {"before_calcjob": wait_for_idle(wait_idle, log=log)}
        log(f"evaluate: {name}: CalcJob path ... (CPUs {_pct(busy['before_calcjob']['busy_fraction'])} busy)")
        calcjob = run_calcjob(images, code, model_nodes[name], settings)
        log(
            f"evaluate: {name}: CalcJob path {calcjob['total_seconds']:.1f} s "
            f"(runner evaluation {calcjob['timing']['evaluation_seconds']:.1f} s)"
        )
        # the one-process loop gets every core the runner used: its threads times its worker processes
        runner_workers = int(calcjob["timing"].get("workers") or 1)
        runner_threads = calcjob["timing"].get("torch_threads")
        busy["before_loop"] = wait_for_idle(wait_idle, log=log)
        log(f"evaluate: {name}: plain loop, 1 process ... "
            f"(CPUs {_pct(busy['before_loop']['busy_fraction'])} busy)")
        loop = run_loop(images, family, name, runner_threads * runner_workers if runner_threads else None)
        log(f"evaluate: {name}: plain loop, 1 process x {loop['torch_threads']} threads "
            f"{loop['process_seconds']:.1f} s (evaluation {loop['evaluation_seconds']:.1f} s)")
        # the runner's own parallelism: N processes x T threads, each on a contiguous slice of the frames
        busy["before_loop_parallel"] = wait_for_idle(wait_idle, log=log)
        log(f"evaluate: {name}: plain loop, {runner_workers} process(es) x {runner_threads} threads ... "
            f"(CPUs {_pct(busy['before_loop_parallel']['busy_fraction'])} busy)")
        parallel = run_loop_parallel(images, family, name, runner_workers, runner_threads)
        log(f"evaluate: {name}: plain loop, {parallel['processes']} process(es) x "
            f"{parallel['torch_threads']} threads {parallel['process_seconds']:.1f} s "
            f"(evaluation {parallel['evaluation_seconds']:.1f} s)")
        diff = compare(calcjob, loop)
        diff_parallel = compare(calcjob, parallel)
        # the loop's per-frame clock, cut at the frame counts of the runner's progress lines
        marks = calcjob["progress"]
        loop_marks = [(done, float(loop["frame_end_seconds"][done - 1])) for done, _ in marks]
        best_loop = best_chunk_seconds_per_frame(loop_marks)
        # with worker processes the progress lines count chunks that finish in several processes at once:
        # their fastest tenth would exaggerate, so it is left out
        best_runner = best_chunk_seconds_per_frame(marks) if runner_workers == 1 else None

        runner_load = float(calcjob["timing"]["model_load_seconds"])
        runner_eval = float(calcjob["timing"]["evaluation_seconds"])
        overhead = calcjob["total_seconds"] - runner_load - runner_eval
        loop_other = loop["process_seconds"] - loop["model_load_seconds"] - loop["evaluation_seconds"]
        baselines = {"loop": loop, "loop_parallel": parallel}
        ratio_total = {key: b["process_seconds"] / calcjob["total_seconds"] for key, b in baselines.items()}
        ratio_eval = {key: b["evaluation_seconds"] / runner_eval for key, b in baselines.items()}
        best_total, best_eval = min(ratio_total, key=ratio_total.get), min(ratio_eval, key=ratio_eval.get)
        per_model[name] = {
            "family": family,
            "calcjob": {
                "total_seconds": calcjob["total_seconds"],
                "run_get_node_seconds": calcjob["run_get_node_seconds"],
                "job_seconds": calcjob["job_seconds"],
                "model_load_seconds": runner_load,
                "evaluation_seconds": runner_eval,
                "other_seconds": overhead,
                "seconds_per_frame": runner_eval / n_frames,
                "mode": calcjob["timing"].get("mode"),
                "torch_threads": calcjob["timing"].get("torch_threads"),
                "workers": calcjob["timing"].get("workers"),
                "frames_by_helpers": calcjob["timing"].get("frames_by_helpers"),
                "worker_load_seconds": calcjob["timing"].get("worker_load_seconds"),
                "node_pk": calcjob["pk"],
                # CPU of this process + its waited-for children during run_get_node (not the runner)
                "engine_cpu_seconds": calcjob["engine_cpu_seconds"],
            },
            "loop": {
                "total_seconds": loop["process_seconds"],
                "imports_seconds": loop["imports_seconds"],
                "model_load_seconds": loop["model_load_seconds"],
                "evaluation_seconds": loop["evaluation_seconds"],
                "other_seconds": loop_other,
                "seconds_per_frame": loop["evaluation_seconds"] / n_frames,
                "processes": 1,
                "torch_threads": loop["torch_threads"],
            },
            "loop_parallel": {
                "total_seconds": parallel["process_seconds"],
                "imports_seconds": parallel["imports_seconds"],
                "model_load_seconds": parallel["model_load_seconds"],
                "evaluation_seconds": parallel["evaluation_seconds"],
                "evaluation_span_seconds": parallel["evaluation_span_seconds"],
                "other_seconds": (parallel["process_seconds"] - parallel["model_load_seconds"]
                                  - parallel["evaluation_seconds"]),
                "seconds_per_frame": parallel["evaluation_seconds"] / n_frames,
                "processes": parallel["processes"],
                "torch_threads": parallel["torch_threads"],
                "per_process": parallel["per_process"],
            },
            # best plain loop / CalcJob: >= 1: the CalcJob path is as fast as the best plain loop or faster
            "ratio_total": ratio_total[best_total],
            "ratio_eval": ratio_eval[best_eval],
            # the same against each baseline ("loop": 1 process, "loop_parallel": N processes x T threads)
            "ratio_total_by_baseline": ratio_total,
            "ratio_eval_by_baseline": ratio_eval,
            "best_baseline": {"total": best_total, "eval": best_eval},
            # fastest tenth of each evaluation (one-process runner and loop): robust against a shared machine
            "best_chunk_seconds_per_frame": {"calcjob": best_runner, "loop": best_loop},
            "ratio_eval_best_chunk": (best_loop / best_runner) if best_runner and best_loop else None,
            # what the CalcJob path pays besides evaluating, grouped (FIXED_COST_GROUPS)
            "fixed_costs_seconds": fixed_costs(calcjob["breakdown"]),
            # CalcJob path minus the runner's model load and evaluation (what AiiDA and the job cost)
            "aiida_overhead_seconds": overhead,
            "aiida_overhead_per_frame_seconds": overhead / n_frames,
            # the same minus what a fresh plain-loop process spends outside load + evaluation
            "net_overhead_vs_loop_seconds": overhead - loop_other,
            "net_overhead_vs_loop_per_frame_seconds": (overhead - loop_other) / n_frames,
            "breakdown_seconds": calcjob["breakdown"],
            "cpu_busy_fraction_before": busy,
            "max_abs_diff": diff,
            "max_abs_diff_parallel": diff_parallel,
        }
    return {
        "benchmark": NAME,
        "description": DESCRIPTION,
        "machine": info,
        "parameters": {
            "n_frames": n_frames,
            "n_atoms_per_frame": n_atoms,
            "system": "Cu(111) fcc111('Cu', (3,3,4), vacuum=7) + O (fcc site, 1.2 A), pbc=True",
            "rattle_stdev_A": RATTLE_STDEV,
            "seed": SEED,
            "models": models,
            "tolerance": TOLERANCE,
            "computer": "localhost (core.local, core.direct), profile core.sqlite_dos without broker",
            "minimum_job_poll_interval_s": computer.get_minimum_job_poll_interval(),
            "transport_login_shell": login_shell,
            "evaluate_settings": settings or "defaults (mode auto)",
        },
        "results": per_model,
        "ok": all(r["max_abs_diff"]["agree"] and r["max_abs_diff_parallel"]["agree"]
                  for r in per_model.values()),
    }


BREAKDOWN_LABELS = {
    "dataset_create": "dataset node: from_atoms",
    "dataset_store": "dataset node: store",
    "process_setup": "process set-up, CalcJobNode store",
    "presubmit": "prepare_for_submission (frames archive)",
    "upload": "upload (incl. model file copy)",
    "submit": "submit (core.direct)",
    "runner_startup_and_poll": "runner start + imports, poll wait",
    "runner_model_load": "runner: model load",
    "runner_evaluation": "runner: evaluation",
    "runner_io": "runner: read frames, import torch, write",
    "retrieve": "retrieve (+ store FolderData)",
    "parse": "parse (npz -> ArrayData)",
    "store_outputs": "store output nodes",
    "other": "other (engine, state changes)",
}


def render(result: dict[str, Any], console) -> None:
    from rich.table import Table

    params = result["parameters"]
    n = params["n_frames"]
    title = (
        f"evaluate: {n} frames x {params['n_atoms_per_frame']} atoms, "
        f"{result['machine']['cpu_count']} CPU cores, CPU only"
    )
    main = Table(title=title, title_justify="left")
    main.add_column("model")
    main.add_column("path")
    for column in ("total s", "model load s", "evaluation s", "other s", "eval ms/frame",
                   "best 10% ms/frame"):
        main.add_column(column, justify="right")
    for name, r in result["results"].items():
        c, lp, lpp = r["calcjob"], r["loop"], r.get("loop_parallel")
        workers = c.get("workers") or 1
        calcjob_path = f"CalcJob ({c.get('mode')}, {workers} x {c.get('torch_threads')} thr.)"
        main.add_row(name, calcjob_path, fmt_s(c["total_seconds"]), fmt_s(c["model_load_seconds"]),
                     fmt_s(c["evaluation_seconds"]), fmt_s(c["other_seconds"]),
                     fmt_ms(c["seconds_per_frame"]), fmt_ms(r["best_chunk_seconds_per_frame"]["calcjob"]))
        main.add_row("", f"plain loop (1 x {lp.get('torch_threads')} thr.)", fmt_s(lp["total_seconds"]),
                     fmt_s(lp["model_load_seconds"]), fmt_s(lp["evaluation_seconds"]),
                     fmt_s(lp["other_seconds"]), fmt_ms(lp["seconds_per_frame"]),
                     fmt_ms(r["best_chunk_seconds_per_frame"]["loop"]),
                     end_section=lpp is None)
        if lpp is not None:
            main.add_row("", f"plain loops ({lpp['processes']} x {lpp['torch_threads']} thr.)",
                         fmt_s(lpp["total_seconds"]), fmt_s(lpp["model_load_seconds"]),
                         fmt_s(lpp["evaluation_seconds"]), fmt_s(lpp["other_seconds"]),
                         fmt_ms(lpp["seconds_per_frame"]), "n/a", end_section=True)
    console.print(main)
    busy = [result["machine"].get("cpu_busy_fraction_at_start")]
    busy += [v.get("busy_fraction") for r in result["results"].values()
             for v in r.get("cpu_busy_fraction_before", {}).values()]
    busy = [b for b in busy if b is not None]
    if busy and max(busy) > 0.2:
        console.print(
            f"[yellow]note: other processes kept the CPUs up to {_pct(max(busy))} busy just before a "
            "measurement: "
            "these timings are slower and noisier than on an idle machine[/]"
        )
    console.print(
        "CalcJob total = dataset node + run_get_node; plain loop total = a fresh python process (imports, "
        "load, loop); plain loops (N x T): N such processes at once on 1/N of the frames each, T threads, "
        "total from the first start to the last end, load and evaluation of the slowest; other = total - "
        "model load - evaluation; best 10%: the fastest tenth of the evaluation (cut at the runner's "
        "progress lines), the least disturbed by other work on the machine."
    )

    summary = Table(title="plain loop / CalcJob (>= 1: CalcJob path at least as fast), AiiDA overhead, "
                    "agreement", title_justify="left")
    summary.add_column("model")
    for column in ("ratio total 1 proc.", "ratio total N proc.", "ratio eval 1 proc.", "ratio eval N proc.",
                   "ratio best 10%", "overhead s", "overhead ms/frame", "net vs loop ms/frame",
                   "max|dE| eV", "max|dF| eV/A", "max|dS| eV/A3", "agree"):
        summary.add_column(column, justify="right")

    def best(r, kind, key):  # bold: the best plain baseline (the figure)
        value = r[f"ratio_{kind}_by_baseline"].get(key)
        text = fmt_s(value)
        return f"[bold]{text}[/]" if r["best_baseline"][kind] == key else text

    for name, r in result["results"].items():
        diffs = [r["max_abs_diff"], r.get("max_abs_diff_parallel", r["max_abs_diff"])]
        worst = {key: max(d[key] for d in diffs) for key in TOLERANCE}
        summary.add_row(
            name, best(r, "total", "loop"), best(r, "total", "loop_parallel"), best(r, "eval", "loop"),
            best(r, "eval", "loop_parallel"), fmt_s(r.get("ratio_eval_best_chunk")),
            fmt_s(r["aiida_overhead_seconds"]),
            fmt_ms(r["aiida_overhead_per_frame_seconds"]),
            fmt_ms(r["net_overhead_vs_loop_per_frame_seconds"]),
            f"{worst['energy_eV']:.0e}", f"{worst['forces_eV_per_A']:.0e}",
            f"{worst['stress_eV_per_A3']:.0e}",
            "yes" if all(d["agree"] for d in diffs) else "[bold red]NO[/]",
        )
    console.print(summary)

    fixed = Table(title="CalcJob path: fixed costs per job (s)", title_justify="left")
    fixed.add_column("model")
    for column in (*FIXED_COST_LABELS.values(), "total", "ms/frame", "plain loop 1 proc.: imports + load"):
        fixed.add_column(column, justify="right")
    for name, r in result["results"].items():
        costs = r["fixed_costs_seconds"]
        fixed.add_row(name, *(fmt_s(costs[key]) for key in FIXED_COST_LABELS), fmt_s(costs["total"]),
                      fmt_ms(costs["total"] / n),
                      fmt_s(r["loop"]["imports_seconds"] + r["loop"]["model_load_seconds"]))
    console.print(fixed)

    breakdown = Table(title="CalcJob path: where the time goes", title_justify="left")
    breakdown.add_column("step")
    names = list(result["results"])
    for name in names:
        breakdown.add_column(f"{name} s", justify="right")
        breakdown.add_column("ms/frame", justify="right")
    for key, label in BREAKDOWN_LABELS.items():
        row = [label]
        for name in names:
            value = result["results"][name]["breakdown_seconds"].get(key, float("nan"))
            row += [fmt_s(value), fmt_ms(value / n)]
        breakdown.add_row(*row, end_section=key in ("dataset_store", "submit", "runner_io"))
    row = ["total (CalcJob path)"]
    for name in names:
        total = result["results"][name]["calcjob"]["total_seconds"]
        row += [fmt_s(total), fmt_ms(total / n)]
    breakdown.add_row(*row, style="bold")
    console.print(breakdown)
    for name, r in result["results"].items():
        cpu = r["calcjob"].get("engine_cpu_seconds") or {}
        if cpu:
            console.print(
                f"{name}: while run_get_node ran ({fmt_s(r['calcjob']['run_get_node_seconds'], 1)} s) the "
                f"AiiDA engine used {fmt_s(cpu.get('engine_process'))} s CPU itself and "
                f"{fmt_s(cpu.get('waited_children'))} s in "
                "the commands it ran (submit, a scheduler poll at most every "
                f"{params.get('minimum_job_poll_interval_s', '?')} s): CPU the runner's threads could not "
                "use."
            )


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.evaluate [--frames N] [--write-docs | --docs-only]``: run, print, write the JSON
    (``benchmarks/results/evaluate.json``; with ``--write-docs`` also ``docs/results/evaluate-cpu.json`` and
    the table of ``docs/benchmark.md``)."""
    import argparse
    import shlex
    import sys

    from ._evaluate_docs import COMMAND, write_docs, write_docs_block

    parser = argparse.ArgumentParser(prog=COMMAND, description=DESCRIPTION)
    parser.add_argument("--frames", "-n", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--models", default=None, help="comma-separated registry models (default: all two)")
    parser.add_argument("--workers", type=int, default=None, help="the runner's workers (default: auto)")
    parser.add_argument("--mode", choices=["auto", "batched", "ase"], default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--wait-idle", type=float, default=DEFAULT_WAIT_IDLE, metavar="SECONDS")
    parser.add_argument("--poll-interval", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--results-dir", default=None,
                        help="where to write evaluate.json (default benchmarks/results)")
    parser.add_argument("--write-docs", action="store_true",
                        help="also write docs/results/evaluate-cpu.json and the docs/benchmark.md table")
    parser.add_argument("--docs-only", action="store_true", help="regenerate the docs table from the JSON")
    args = parser.parse_args(argv)
    if args.docs_only:
        write_docs_block()
        return 0
    if args.frames < 1:
        parser.error("--frames must be >= 1")

    from rich.console import Console

    from ._common import write_result

    console = Console() if Console().is_terminal else Console(width=150)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    start = time.perf_counter()
    result = run(frames=args.frames, models=models, console=console, wait_idle=args.wait_idle,
                 poll_interval=args.poll_interval, mode=args.mode, batch_size=args.batch_size,
                 workers=args.workers)
    result["benchmark_wall_seconds"] = time.perf_counter() - start
    render(result, console)
    path = write_result(NAME, result, args.results_dir)
    console.print(f"{NAME}: {result['benchmark_wall_seconds']:.0f} s; results written to {path}")
    if not result.get("ok", True):
        console.print(f"[bold red]{NAME}: the CalcJob and a plain loop disagree: docs not written[/]")
        return 1
    if args.write_docs:
        command = " ".join([COMMAND, *(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))])
        console.print(f"{NAME}: wrote {write_docs(result, command)} and docs/benchmark.md")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
