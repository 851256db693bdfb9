"""Many small evaluations: one ``reactmlip.evaluate`` job per (model, dataset) pair against one ``reactmlip.evaluate_many``.

The active-learning loop evaluates, every round, its committee on the pool (``committee_size`` models, one dataset)
and its model on the validation and test sets (one model, two datasets). Both were one ``reactmlip.evaluate`` job per
pair, submitted at once; now each is one ``reactmlip.evaluate_many`` job that starts the runner once, reads each frame
file once and loads each model once. Here both ways run in one process on the same nodes, as the loop submits them
(in-process runner, jobs at once), in interleaved rounds:

- **committee**: 4 CHGNet 0.3.0 model nodes (the same weights stored four times: the runner loads each file, as it
  loads four fine-tunes) on the H + H2 reaction pool (``h-h2-exchange-pool``, ``--frames`` of its frames);
- **validation + test**: one model on the two halves of that pool.

Wall time from the first submission to the last stored output, and CPU seconds of the runner processes (from their
``timing`` outputs: model loads and evaluations). Predictions of both ways must agree (max |dE|, |dF|).

    .venv/bin/python -m benchmarks evaluate_many                    # benchmarks/results/evaluate_many.json
    .venv/bin/python -m benchmarks.evaluate_many --write-docs       # also docs/results/evaluate-many.json + table
    .venv/bin/python -m benchmarks.evaluate_many --docs-only        # the docs table from the committed JSON
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from ._common import DEFAULT_WAIT_IDLE, machine_info, temporary_profile, wait_for_idle

NAME = "evaluate_many"
DESCRIPTION = "a loop's small evaluations: one reactmlip.evaluate job per pair vs one reactmlip.evaluate_many job"
DEFAULT_FRAMES = 210
DEFAULT_REPEAT = 2
COMMITTEE_SIZE = 4
POOL = "h-h2-exchange-pool"
COMMAND = "python -m benchmarks.evaluate_many --write-docs"
BLOCK = "evaluate-many"


def _run_at_once(jobs: list[tuple[type, dict]]) -> tuple[list, float]:
    """Submit every (process class, inputs) of ``jobs`` at once to this interpreter's runner (as a WorkChain's
    ``submit`` does without a daemon) and wait for all: (nodes, wall seconds)."""
    import asyncio

    from aiida.manage import get_manager

    runner = get_manager().get_runner()
    start = time.perf_counter()
    nodes = [runner.submit(process, **inputs) for process, inputs in jobs]

    async def finished():
        while not all(node.is_terminated for node in nodes):
            await asyncio.sleep(0.05)

    runner.loop.run_until_complete(finished())
    wall = time.perf_counter() - start
    failed = [f"{n.process_label}<{n.pk}> [{n.exit_status}] {n.exit_message}" for n in nodes if not n.is_finished_ok]
    if failed:
        raise RuntimeError("evaluation failed: " + "; ".join(failed))
    return nodes, wall


def _runner_seconds(nodes: list) -> dict[str, float]:
    """Model-load and evaluation seconds summed over the runner processes of ``nodes`` (their ``timing``)."""
    totals = {"model_load_seconds": 0.0, "evaluation_seconds": 0.0, "runner_wall_seconds": 0.0}
    for node in nodes:
        timing = node.outputs.timing.get_dict()
        totals["model_load_seconds"] += timing["model_load_seconds"]
        totals["evaluation_seconds"] += timing["evaluation_seconds"]
        totals["runner_wall_seconds"] += timing["wall_seconds"]
    return totals


def _scenario(code, models: dict, datasets: dict, repeat: int, wait_idle: float, log) -> dict[str, Any]:
    """Both ways on ``models`` x ``datasets``, ``repeat`` interleaved rounds."""
    from aiida_reactmlip.calculations.evaluate import EvaluateCalculation, EvaluateManyCalculation

    single_jobs = [(EvaluateCalculation, {"code": code, "model": m, "dataset": d, "metadata": {"label": f"{mk}.{dk}"}})
                   for mk, m in models.items() for dk, d in datasets.items()]
    rounds: dict[str, list] = {"single": [], "many": []}
    last: dict[str, list] = {}
    for index in range(repeat):
        for way in (("single", "many") if index % 2 == 0 else ("many", "single")):
            wait_for_idle(wait_idle, log=log)
            if way == "single":
                nodes, wall = _run_at_once(single_jobs)
            else:
                nodes, wall = _run_at_once([(EvaluateManyCalculation, {"code": code, "models": models,
                                                                       "datasets": datasets})])
            rounds[way].append({"wall_seconds": wall, "jobs": len(nodes), "uuids": [n.uuid for n in nodes],
                                **_runner_seconds(nodes)})
            last[way] = nodes
            log(f"  round {index}: {way}: {len(nodes)} job(s), {wall:.1f} s")
    many = last["many"][0].outputs.predictions
    max_de = max_df = 0.0
    for node in last["single"]:
        model_key, dataset_key = node.label.split(".")
        got, want = many[model_key][dataset_key], node.outputs.predictions
        max_de = max(max_de, float(np.abs(got.get_array("energies") - want.get_array("energies")).max()))
        max_df = max(max_df, float(np.abs(got.get_array("forces") - want.get_array("forces")).max()))
    medians = {way: statistics.median(r["wall_seconds"] for r in rows) for way, rows in rounds.items()}
    return {"n_models": len(models), "n_datasets": len(datasets),
            "frames": {key: int(d.n_frames) for key, d in datasets.items()},
            "rounds": rounds, "median_wall_seconds": medians,
            "speedup": medians["single"] / medians["many"],
            "max_abs_energy_difference_eV": max_de, "max_abs_force_difference_eV_per_A": max_df}


def run(frames: int | None = None, console=None, wait_idle: float = DEFAULT_WAIT_IDLE, repeat: int | None = None,
        **_: Any) -> dict[str, Any]:
    n_frames = int(frames or DEFAULT_FRAMES)
    repeat = int(repeat or DEFAULT_REPEAT)
    log = console.log if console is not None else print
    info = machine_info()
    temporary_profile()

    from aiida_reactmlip import provision
    from aiida_reactmlip.data.dataset import LabelledDatasetData
    from aiida_reactmlip.data.model import MlipModelData
    from aiida_reactmlip.fixture_data import load_fixture_dataset
    from aiida_reactmlip.models import locate_model_file

    code = provision.ensure_codes(provision.ensure_localhost())["runner"]
    base = provision.ensure_registry_models(["chgnet-0.3.0"])["chgnet-0.3.0"]
    images = load_fixture_dataset(POOL)[:n_frames]
    pool = LabelledDatasetData.from_atoms(images).store()
    half = len(images) // 2
    halves = {"validation": LabelledDatasetData.from_atoms(images[:half]).store(),
              "test": LabelledDatasetData.from_atoms(images[half:]).store()}
    committee = {f"member_{i:02d}": MlipModelData(file=str(locate_model_file("chgnet-0.3.0")), family="chgnet",
                                                  model_name=f"chgnet-0.3.0-member-{i}",
                                                  elements=base.elements).store()
                 for i in range(COMMITTEE_SIZE)}
    log(f"committee: {COMMITTEE_SIZE} CHGNet models on {len(images)} pool frames")
    results = {"committee": _scenario(code, committee, {"pool": pool}, repeat, wait_idle, log)}
    log(f"validation + test: 1 model on {half} + {len(images) - half} frames")
    results["validation_and_test"] = _scenario(code, {"model": base}, halves, repeat, wait_idle, log)
    return {"benchmark": NAME, "description": DESCRIPTION, "machine": info,
            "parameters": {"pool": POOL, "frames": len(images), "atoms_per_frame": len(images[0]), "repeat": repeat,
                           "model": "chgnet-0.3.0", "runner_settings": "defaults (CPU, mode auto)",
                           "submission": "in-process runner, every job of a way submitted at once (as the loop)"},
            "results": results}


HEADER = ["evaluations (models x datasets)", "way", "jobs", "wall s (median of rounds)", "rounds (s)",
          "runner: model loads s / evaluation s (last round)", "one job faster by"]
SCENARIO_NAMES = {"committee": "committee on the pool", "validation_and_test": "model on validation + test"}


def render_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key, r in result["results"].items():
        what = f"{SCENARIO_NAMES[key]} ({r['n_models']} x {r['n_datasets']}, {sum(r['frames'].values())} frames)"
        for way, label in (("single", "reactmlip.evaluate, one job per pair, at once"),
                           ("many", "reactmlip.evaluate_many, one job")):
            rounds = r["rounds"][way]
            rows.append([what if way == "single" else "", label, str(rounds[-1]["jobs"]),
                         f"{r['median_wall_seconds'][way]:.1f}",
                         " / ".join(f"{x['wall_seconds']:.1f}" for x in rounds),
                         f"{rounds[-1]['model_load_seconds']:.1f} / {rounds[-1]['evaluation_seconds']:.1f}",
                         f"{r['speedup']:.2f}x" if way == "many" else "-"])
    return rows


def render(result: dict[str, Any], console) -> None:
    from ._docs_run import print_table

    print_table("A loop's small evaluations: one job per pair vs one job", HEADER, render_rows(result), console)
    for key, r in result["results"].items():
        console.print(f"{key}: predictions agree to {r['max_abs_energy_difference_eV']:.1e} eV, "
                      f"{r['max_abs_force_difference_eV_per_A']:.1e} eV/Å")


def render_markdown(record: dict[str, Any]) -> str:
    """The ``evaluate-many`` block of docs/benchmark.md from its JSON."""
    from aiida_reactmlip.report.docs_blocks import markdown_table

    lines = [markdown_table(HEADER, render_rows(record)), ""]
    for key, r in record["results"].items():
        lines.append(f"- {SCENARIO_NAMES[key]}: one job {r['speedup']:.2f}x faster (median wall "
                     f"{r['median_wall_seconds']['single']:.1f} s -> {r['median_wall_seconds']['many']:.1f} s); "
                     f"predictions agree to {r['max_abs_energy_difference_eV']:.0e} eV and "
                     f"{r['max_abs_force_difference_eV_per_A']:.0e} eV/Å.")
    prov = record["provenance"]
    params = record["parameters"]
    lines += ["", (f"Written by `{prov['command']}` ({prov['generated']}, commit {(prov['git_commit'] or '?')[:7]}, "
                   f"{prov['machine']['logical_cores']} cores, load {' / '.join(map(str, prov['load_average']))} at "
                   f"the end): {params['frames']} frames of {params['atoms_per_frame']} atoms, {params['repeat']} "
                   "interleaved rounds; docs/results/evaluate-many.json holds every number and the job UUIDs.")]
    return "\n".join(lines)


def _docs_paths():
    from aiida_reactmlip.report.docs_blocks import REPO_ROOT

    return REPO_ROOT / "docs" / "results" / "evaluate-many.json", REPO_ROOT / "docs" / "benchmark.md"


def main() -> None:
    import sys

    from ._docs_run import benchmark_docs_main

    result_json, page = _docs_paths()
    benchmark_docs_main(__doc__, sys.modules[__name__], result_json, page,
                        {"frames": (int, DEFAULT_FRAMES, f"pool frames (default {DEFAULT_FRAMES})"),
                         "repeat": (int, DEFAULT_REPEAT, "interleaved rounds (default 2)")})


if __name__ == "__main__":
    main()
