"""Benchmark ``evaluate_modes``: the runner's batched inference against its per-frame ASE loop, in one process.

For each model (CHGNet 0.3.0, SevenNet-0) the same F rattled frames of the ``evaluate`` benchmark's
37-atom Cu(111)+O slab are evaluated by the runner's own functions
(``aiida_reactmlip.runner``): ``evaluate_ase`` (``atoms.calc = calc`` frame by frame) and
the family's batched path (``evaluate_chgnet_batched``: ``CHGNet.predict_structure``;
``evaluate_sevenn_batched``: SevenNet graphs merged by ``torch_geometric``) at several batch sizes.

One model object, loaded once; a warm-up frame for each path; then ``--repeat`` rounds, each running
every path once over all frames, the order of the paths reversed every other round. On a shared machine
the load changes from minute to minute: interleaving the paths spreads it over all of them, and the
median over rounds is compared. No AiiDA, no process start: this isolates the inference itself, which
is what ``mode: auto`` of ``reactmlip.evaluate`` chooses between (``runner.choose_mode``).

Reported per model and path: ms/frame (median and best round, wall), CPU ms/frame (the process's CPU
time, all threads: the work done, whatever share of the cores it got), ``loop/batched`` (> 1: batching faster)
and the largest difference from the loop's predictions: energy per atom (eV/atom), force
component (eV/Å), stress (eV/Å³). The run fails if batched and loop differ by more than 1e-5 eV/atom or
1e-4 eV/Å. For CHGNet also the graph building alone (``CHGNet.graph_converter`` on the pymatgen structures,
serial Python on the CPU whatever the device), timed in the same rounds: the part of its batched path that a
GPU cannot take over.

    .venv/bin/python -m benchmarks evaluate_modes                  # benchmarks/results/evaluate_modes.json
    .venv/bin/python -m benchmarks.evaluate_modes --write-docs     # also docs/results/evaluate-modes.json + table
    .venv/bin/python -m benchmarks.evaluate_modes --docs-only      # the docs table from the committed JSON
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from typing import Any

import numpy as np

from ._common import DEFAULT_WAIT_IDLE, fmt_ms, machine_info, wait_for_idle

NAME = "evaluate_modes"
DESCRIPTION = "runner inference: batched (CHGNet predict_structure, SevenNet graph batches) vs per-frame ASE loop"
DEFAULT_FRAMES = 32
MODELS = ("chgnet-0.3.0", "sevennet-0")
BATCH_SIZES = (4, 8)  # CHGNet with stress needs ~0.5 GB per 37-atom frame of a batch
DEFAULT_REPEAT = 3

#: agreement batched vs loop that the run requires
TOLERANCE = {"energy_eV_per_atom": 1e-5, "forces_eV_per_A": 1e-4}


def _evaluate(path: str, calc, family: str, images: list, batch_size: int, device: str = "cpu"):
    from aiida_reactmlip.runner.inference import evaluate_images

    return evaluate_images(calc, family, path, images, batch_size, True, device)


def build_chgnet_graphs(model, images) -> list:
    """CHGNet's crystal graphs of ``images`` (what ``predict_structure`` builds before the network runs)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from aiida_reactmlip.models import ensure_cell

    return [model.graph_converter(AseAtomsAdaptor.get_structure(ensure_cell(atoms))) for atoms in images]


def max_differences(reference, other, n_atoms: np.ndarray) -> dict[str, float]:
    """Largest |difference| of ``other`` from ``reference`` (energies, forces list, stress) per quantity."""
    e0, f0, s0 = reference
    e1, f1, s1 = other
    both = ~(np.isnan(s0) | np.isnan(s1))
    return {
        "energy_eV_per_atom": float(np.max(np.abs((np.asarray(e1) - np.asarray(e0)) / n_atoms))),
        "forces_eV_per_A": float(np.max(np.abs(np.concatenate(f1) - np.concatenate(f0)))),
        "stress_eV_per_A3": float(np.max(np.abs(s1[both] - s0[both]), initial=0.0)),
    }


def run(frames: int | None = None, models: list[str] | None = None, console=None, repeat: int | None = None,
        wait_idle: float = DEFAULT_WAIT_IDLE, batch_sizes: tuple[int, ...] = BATCH_SIZES, device: str | None = None,
        **_: Any) -> dict[str, Any]:
    import torch

    from aiida_reactmlip.models import get_model_spec, load_calculator, locate_model_file

    from .evaluate import build_frames

    device = device or "cpu"

    n_frames = int(frames or DEFAULT_FRAMES)
    rounds = int(repeat or DEFAULT_REPEAT)
    models = list(models or MODELS)
    log = console.log if console is not None else print
    info = machine_info()
    images = build_frames(n_frames)
    n_atoms = np.array([len(a) for a in images], dtype=float)
    results = {}
    for name in models:
        family = get_model_spec(name).family
        with contextlib.redirect_stdout(io.StringIO()):
            calc = load_calculator(family, locate_model_file(name), device=device)
        paths = ["ase"] + [f"batched:{b}" for b in batch_sizes]
        for path in paths:  # warm-up: first calls allocate and build kernels
            _evaluate(path.split(":")[0], calc, family, images[:2], int(path.split(":")[1]) if ":" in path else 1,
                      device)
        busy = wait_for_idle(wait_idle, log=log)
        seconds: dict[str, list[float]] = {path: [] for path in paths}
        cpu: dict[str, list[float]] = {path: [] for path in paths}
        predictions: dict[str, Any] = {}
        graph_seconds: list[float] = []
        for k in range(rounds):
            for path in (paths if k % 2 == 0 else paths[::-1]):
                kind, _, size = path.partition(":")
                start, cpu_start = time.perf_counter(), time.process_time()
                predictions[path] = _evaluate(kind, calc, family, images, int(size or 1), device)
                seconds[path].append(time.perf_counter() - start)
                cpu[path].append(time.process_time() - cpu_start)
            if family == "chgnet":
                start = time.perf_counter()
                build_chgnet_graphs(calc.model, images)
                graph_seconds.append(time.perf_counter() - start)
            log(f"evaluate_modes: {name}: round {k + 1}/{rounds}: "
                + ", ".join(f"{p} {1000 * seconds[p][-1] / n_frames:.0f} ms/frame" for p in paths))
        median = {p: statistics.median(v) / n_frames for p, v in seconds.items()}
        cpu_median = {p: statistics.median(v) / n_frames for p, v in cpu.items()}
        best = {p: min(v) / n_frames for p, v in seconds.items()}
        diffs = {p: max_differences(predictions["ase"], predictions[p], n_atoms) for p in paths[1:]}
        results[name] = {
            "family": family,
            "seconds_per_frame_median": median,
            "seconds_per_frame_best": best,
            "seconds_per_round": seconds,
            # CPU time of this process (all its threads) per frame: the work done, whatever share of the
            # cores the process got on a shared machine (spin-waiting torch threads count too)
            "cpu_seconds_per_frame_median": cpu_median,
            "cpu_seconds_per_round": cpu,
            "ratio_loop_over_batched_cpu": {p: cpu_median["ase"] / cpu_median[p] for p in paths[1:]},
            "ratio_loop_over_batched_median": {p: median["ase"] / median[p] for p in paths[1:]},
            "ratio_loop_over_batched_best": {p: best["ase"] / best[p] for p in paths[1:]},
            "max_abs_diff_vs_loop": diffs,
            "agree": all(d[key] <= tol for d in diffs.values() for key, tol in TOLERANCE.items()),
            "cpu_busy_fraction_before": busy,
            "torch_threads": torch.get_num_threads(),
            "graph_seconds_per_frame_median": statistics.median(graph_seconds) / n_frames if graph_seconds else None,
            "graph_seconds_per_round": graph_seconds or None,
        }
    return {
        "benchmark": NAME,
        "description": DESCRIPTION,
        "machine": info,
        "parameters": {"device": device, "n_frames": n_frames, "n_atoms_per_frame": int(n_atoms[0]), "rounds": rounds,
                       "batch_sizes": list(batch_sizes), "models": models, "tolerance": TOLERANCE,
                       "system": "the evaluate benchmark's frames: Cu(111) 3x3x4 + O fcc, rattled 0.05 A, pbc=True"},
        "results": results,
        "ok": all(r["agree"] for r in results.values()),
    }


def render(result: dict[str, Any], console) -> None:
    from rich.table import Table

    params = result["parameters"]
    table = Table(title=f"evaluate_modes: {params['n_frames']} frames x {params['n_atoms_per_frame']} atoms, "
                  f"{params['rounds']} interleaved rounds, {result['machine']['cpu_count']} CPU cores",
                  title_justify="left")
    for column in ("model", "path", "median ms/frame", "best ms/frame", "CPU ms/frame", "loop/batched (median)",
                   "loop/batched (best)", "loop/batched (CPU)", "max|dE| eV/atom", "max|dF| eV/A", "max|dS| eV/A3"):
        table.add_column(column, justify="left" if column in ("model", "path") else "right")
    for name, r in result["results"].items():
        for path, median in r["seconds_per_frame_median"].items():
            d = r["max_abs_diff_vs_loop"].get(path)
            table.add_row(
                name, path, fmt_ms(median), fmt_ms(r["seconds_per_frame_best"][path]),
                fmt_ms(r["cpu_seconds_per_frame_median"][path]),
                f"{r['ratio_loop_over_batched_median'][path]:.2f}" if path != "ase" else "",
                f"{r['ratio_loop_over_batched_best'][path]:.2f}" if path != "ase" else "",
                f"{r['ratio_loop_over_batched_cpu'][path]:.2f}" if path != "ase" else "",
                f"{d['energy_eV_per_atom']:.1e}" if d else "", f"{d['forces_eV_per_A']:.1e}" if d else "",
                f"{d['stress_eV_per_A3']:.1e}" if d else "",
                end_section=path == list(r["seconds_per_frame_median"])[-1],
            )
    console.print(table)
    busy = [r["cpu_busy_fraction_before"].get("busy_fraction") for r in result["results"].values()]
    busy = [b for b in busy if b is not None]
    if busy and max(busy) > 0.2:
        console.print(f"[yellow]note: the CPUs were up to {100 * max(busy):.0f}% busy with other work before a "
                      "measurement: compare only the interleaved paths of the same run[/]")


# ------------------------------------------------------------------------------------------ docs/benchmark.md

COMMAND = "python -m benchmarks.evaluate_modes --write-docs"
BLOCK = "evaluate-modes"
DOCS_HEADER = ["model", "path", "ms/frame (median)", "ms/frame (best)", "CPU ms/frame", "loop / path (median)",
               "max abs dE (eV/atom)", "max abs dF (eV/Å)"]


def render_markdown(record: dict[str, Any]) -> str:
    """The ``evaluate-modes`` block of docs/benchmark.md from its JSON."""
    from aiida_reactmlip.report.docs_blocks import markdown_table

    rows = []
    for name, r in record["results"].items():
        for path, median in r["seconds_per_frame_median"].items():
            d = r["max_abs_diff_vs_loop"].get(path)
            rows.append([name, "ASE loop" if path == "ase" else f"batches of {path.split(':')[1]}",
                         f"{1000 * median:.1f}", f"{1000 * r['seconds_per_frame_best'][path]:.1f}",
                         f"{1000 * r['cpu_seconds_per_frame_median'][path]:.1f}",
                         f"{r['ratio_loop_over_batched_median'][path]:.2f}" if d else "-",
                         f"{d['energy_eV_per_atom']:.0e}" if d else "-", f"{d['forces_eV_per_A']:.0e}" if d else "-"])
        if r.get("graph_seconds_per_frame_median"):
            graph = r["graph_seconds_per_frame_median"]
            rows.append([name, "graph building alone", f"{1000 * graph:.1f}", "-", "-", "-", "-", "-"])
    params, prov = record["parameters"], record["provenance"]
    lines = [markdown_table(DOCS_HEADER, rows), ""]
    for name, r in record["results"].items():
        graph = r.get("graph_seconds_per_frame_median")
        if graph:
            loop = r["seconds_per_frame_median"]["ase"]
            best = min(v for p, v in r["seconds_per_frame_median"].items() if p != "ase")
            lines.append(f"- {name}: building the graphs alone takes {1000 * graph:.1f} ms/frame, "
                         f"{100 * graph / loop:.0f} % of the ASE loop's time and {100 * graph / best:.0f} % of the "
                         "best batched path's: serial Python on the CPU, so a GPU can at most make CHGNet's batched "
                         f"path {best / graph:.1f}x faster than it is here unless the graphs are built elsewhere "
                         "(issue 17, item 2).")
    busy = [r["cpu_busy_fraction_before"].get("busy_fraction") for r in record["results"].values()]
    busy = [b for b in busy if b is not None]
    lines += ["", (f"`{prov['command']}` ({prov['generated']}, commit {(prov['git_commit'] or '?')[:7]}): "
                   f"{params['n_frames']} frames x {params['n_atoms_per_frame']} atoms, {params['rounds']} "
                   f"interleaved rounds in one process, {prov['machine']['logical_cores']} cores, CPUs at most "
                   f"{100 * max(busy or [0]):.0f} % busy before a model's rounds, load "
                   f"{' / '.join(map(str, prov['load_average']))} at the end; docs/results/evaluate-modes.json.")]
    return "\n".join(lines)


def main() -> None:
    import sys

    from aiida_reactmlip.report.docs_blocks import REPO_ROOT

    from ._docs_run import benchmark_docs_main

    benchmark_docs_main(__doc__, sys.modules[__name__], REPO_ROOT / "docs" / "results" / "evaluate-modes.json",
                        REPO_ROOT / "docs" / "benchmark.md",
                        {"frames": (int, DEFAULT_FRAMES, f"frames (default {DEFAULT_FRAMES})"),
                         "repeat": (int, DEFAULT_REPEAT, "interleaved rounds (default 3)"),
                         "device": (str, "cpu", "torch device of the models (default cpu; cuda on a GPU)")})


if __name__ == "__main__":
    main()
