"""Benchmark ``evaluate``: the ``reactmlip.evaluate`` CalcJob versus a plain ASE calculator loop.

For each model (CHGNet 0.3.0, SevenNet-0) on the same F rattled frames of a Cu(111)+O slab:

- **CalcJob path**: ``LabelledDatasetData.from_atoms(frames).store()`` then
  ``run_get_node(EvaluateCalculation, code=runner, model=..., dataset=...)`` on localhost
  (``core.local`` + ``core.direct``, a throw-away SQLite profile without broker). The runner is a
  separate process: it pays interpreter start, imports and model load on every job.
- **Loop path**: a fresh Python process (``benchmarks._loop``, no AiiDA) that imports,
  ``load_calculator(family, file)``, then for each frame
  ``atoms.calc = calc; atoms.get_potential_energy(); atoms.get_forces(); atoms.get_stress()``
  (the runner computes stress for 3D-periodic frames too; both models produce it in the same
  forward pass, so asking for it costs nothing extra). A fresh process because this one has already
  imported the model packages and built the models while provisioning their nodes. The loop gets as
  many torch threads as the runner used cores (its threads per process times its worker processes).

Reported: both wall times, model load times, ``ratio_eval`` (loop evaluation s / runner
``evaluation_seconds``) and ``ratio_total`` (loop process wall / CalcJob path incl. the dataset
node), the AiiDA overhead per frame ((CalcJob path - runner model load - runner evaluation) / F)
with a breakdown of where it goes, and the largest difference between the two paths' predictions.
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
DESCRIPTION = "reactmlip.evaluate CalcJob vs a plain ASE calculator loop (CHGNet 0.3.0, SevenNet-0)"
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
    """``(frames done, seconds since the evaluation started)`` from the runner's progress lines (~every 10%)."""
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
    return {"engine_process": own.ru_utime + own.ru_stime, "waited_children": children.ru_utime + children.ru_stime}


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


def run_loop(frames: list, family: str, model_name: str, threads: int | None) -> dict[str, Any]:
    """The plain ASE loop in a fresh process (``benchmarks._loop``); wall times and predictions."""
    import os
    import pathlib
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="reactmlip-bench-loop-") as tmp:
        frames_file, output = os.path.join(tmp, "frames.npz"), os.path.join(tmp, "out.npz")
        np.savez(
            frames_file,
            numbers=np.array([a.numbers for a in frames]),
            positions=np.array([a.positions for a in frames]),
            cells=np.array([np.asarray(a.cell[:]) for a in frames]),
            pbc=np.array([a.pbc for a in frames]),
        )
        command = [sys.executable, "-m", "benchmarks._loop", "--frames", frames_file, "--family", family,
                   "--model", model_name, "--output", output]
        if threads:
            command += ["--threads", str(int(threads))]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=pathlib.Path(__file__).resolve().parent.parent,
                              capture_output=True, text=True, check=False)
        process_seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"plain loop for {model_name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        with np.load(output) as out:
            result = {key: np.asarray(out[key]) for key in out.files}
    for key in ("imports_seconds", "model_load_seconds", "evaluation_seconds"):
        result[key] = float(result[key])
    result["torch_threads"] = int(result["torch_threads"])
    result["process_seconds"] = process_seconds
    return result


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


def run(frames: int | None = None, models: list[str] | None = None, console=None,
        wait_idle: float = DEFAULT_WAIT_IDLE, poll_interval: float | None = None, mode: str | None = None,
        batch_size: int | None = None, login_shell: bool = False, **_: Any) -> dict[str, Any]:
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
    settings = {key: value for key, value in (("mode", mode), ("batch_size", batch_size)) if value is not None}
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
        busy["before_loop"] = wait_for_idle(wait_idle, log=log)
        log(f"evaluate: {name}: plain loop ... (CPUs {_pct(busy['before_loop']['busy_fraction'])} busy)")
        # the loop gets every core the runner used: its threads times its worker processes
        runner_threads = calcjob["timing"].get("torch_threads")
        loop_threads = runner_threads * int(calcjob["timing"].get("workers") or 1) if runner_threads else None
        loop = run_loop(images, family, name, loop_threads)
        log(f"evaluate: {name}: plain loop {loop['process_seconds']:.1f} s "
            f"(evaluation {loop['evaluation_seconds']:.1f} s)")
        diff = compare(calcjob, loop)
        # the loop's per-frame clock, cut at the frame counts of the runner's progress lines
        marks = calcjob["progress"]
        loop_marks = [(done, float(loop["frame_end_seconds"][done - 1])) for done, _ in marks]
        best_loop = best_chunk_seconds_per_frame(loop_marks)
        # with worker processes the progress lines count chunks that finish in several processes at once:
        # their fastest tenth would exaggerate, so it is left out
        single_process = int(calcjob["timing"].get("workers") or 1) == 1
        best_runner = best_chunk_seconds_per_frame(marks) if single_process else None

        runner_load = float(calcjob["timing"]["model_load_seconds"])
        runner_eval = float(calcjob["timing"]["evaluation_seconds"])
        overhead = calcjob["total_seconds"] - runner_load - runner_eval
        loop_other = loop["process_seconds"] - loop["model_load_seconds"] - loop["evaluation_seconds"]
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
                "torch_threads": loop["torch_threads"],
            },
            # loop / CalcJob: > 1 means the CalcJob path is faster
            "ratio_total": loop["process_seconds"] / calcjob["total_seconds"],
            "ratio_eval": loop["evaluation_seconds"] / runner_eval,
            # fastest tenth of each evaluation: robust against other work on a shared machine
            "best_chunk_seconds_per_frame": {"calcjob": best_runner, "loop": best_loop},
            "ratio_eval_best_chunk": (best_loop / best_runner) if best_runner and best_loop else None,
            # CalcJob path minus the runner's model load and evaluation (what AiiDA and the job cost)
            "aiida_overhead_seconds": overhead,
            "aiida_overhead_per_frame_seconds": overhead / n_frames,
            # the same minus what a fresh plain-loop process spends outside load + evaluation
            "net_overhead_vs_loop_seconds": overhead - loop_other,
            "net_overhead_vs_loop_per_frame_seconds": (overhead - loop_other) / n_frames,
            "breakdown_seconds": calcjob["breakdown"],
            "cpu_busy_fraction_before": busy,
            "max_abs_diff": diff,
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
        "ok": all(r["max_abs_diff"]["agree"] for r in per_model.values()),
    }


BREAKDOWN_LABELS = {
    "dataset_create": "dataset node: from_atoms",
    "dataset_store": "dataset node: store",
    "process_setup": "process set-up, CalcJobNode store",
    "presubmit": "prepare_for_submission (extxyz)",
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
    for column in ("total s", "model load s", "evaluation s", "other s", "eval ms/frame", "best 10% ms/frame"):
        main.add_column(column, justify="right")
    for name, r in result["results"].items():
        c, lp = r["calcjob"], r["loop"]
        workers = c.get("workers") or 1
        calcjob_path = f"CalcJob ({c.get('mode')}, {workers} x {c.get('torch_threads')} thr.)"
        main.add_row(name, calcjob_path, fmt_s(c["total_seconds"]), fmt_s(c["model_load_seconds"]),
                     fmt_s(c["evaluation_seconds"]), fmt_s(c["other_seconds"]), fmt_ms(c["seconds_per_frame"]),
                     fmt_ms(r["best_chunk_seconds_per_frame"]["calcjob"]))
        main.add_row("", f"plain loop ({lp.get('torch_threads')} thr.)", fmt_s(lp["total_seconds"]), fmt_s(lp["model_load_seconds"]),
                     fmt_s(lp["evaluation_seconds"]), fmt_s(lp["other_seconds"]), fmt_ms(lp["seconds_per_frame"]),
                     fmt_ms(r["best_chunk_seconds_per_frame"]["loop"]), end_section=True)
    console.print(main)
    busy = [result["machine"].get("cpu_busy_fraction_at_start")]
    busy += [v.get("busy_fraction") for r in result["results"].values()
             for v in r.get("cpu_busy_fraction_before", {}).values()]
    busy = [b for b in busy if b is not None]
    if busy and max(busy) > 0.2:
        console.print(
            f"[yellow]note: other processes kept the CPUs up to {_pct(max(busy))} busy just before a measurement: "
            "these timings are slower and noisier than on an idle machine[/]"
        )
    console.print(
        "CalcJob total = dataset node + run_get_node; plain loop total = a fresh python process (imports, "
        "load, loop); other = total - model load - evaluation; best 10%: the fastest tenth of the evaluation "
        "(cut at the runner's progress lines), the least disturbed by other work on the machine."
    )

    summary = Table(title="loop / CalcJob (>1: CalcJob path faster), AiiDA overhead, agreement",
                    title_justify="left")
    summary.add_column("model")
    for column in ("ratio total", "ratio eval", "ratio best 10%", "overhead s", "overhead ms/frame", "net vs loop ms/frame",
                   "max|dE| eV", "max|dF| eV/A", "max|dS| eV/A3", "agree"):
        summary.add_column(column, justify="right")
    for name, r in result["results"].items():
        d = r["max_abs_diff"]
        summary.add_row(
            name, f"{r['ratio_total']:.2f}", f"{r['ratio_eval']:.2f}", fmt_s(r.get("ratio_eval_best_chunk")),
            fmt_s(r["aiida_overhead_seconds"]),
            fmt_ms(r["aiida_overhead_per_frame_seconds"]), fmt_ms(r["net_overhead_vs_loop_per_frame_seconds"]),
            f"{d['energy_eV']:.0e}", f"{d['forces_eV_per_A']:.0e}", f"{d['stress_eV_per_A3']:.0e}",
            "yes" if d["agree"] else "[bold red]NO[/]",
        )
    console.print(summary)

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
                f"{name}: while run_get_node ran ({fmt_s(r['calcjob']['run_get_node_seconds'], 1)} s) the AiiDA engine "
                f"used {fmt_s(cpu.get('engine_process'))} s CPU itself and {fmt_s(cpu.get('waited_children'))} s in "
                "the commands it ran (submit, a scheduler poll at most every "
                f"{params.get('minimum_job_poll_interval_s', '?')} s): CPU the runner's threads could not use."
            )
