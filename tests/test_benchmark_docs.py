"""docs/benchmark.md's ``evaluate-cpu`` block is the rendering of docs/results/evaluate-cpu.json, never typed;
the record compares the CalcJob path with plain loops at the runner's own parallelism."""

import json

import pytest

from aiida_reactmlip.report.docs_blocks import read_block
from benchmarks._evaluate_docs import BLOCK, DOCS, RESULT_JSON, render_markdown
from benchmarks.evaluate import FIXED_COST_GROUPS, fixed_costs, frame_slices


@pytest.fixture(scope="module")
def record():
    return json.loads(RESULT_JSON.read_text())


def test_evaluate_cpu_block_is_the_committed_json(record):
    assert read_block(DOCS.read_text(), BLOCK) == render_markdown(record).strip("\n"), (
        "docs/benchmark.md differs from docs/results/evaluate-cpu.json: run `.venv/bin/python -m "
        "benchmarks.evaluate --docs-only`"
    )


def test_evaluate_cpu_record_holds_both_fair_baselines(record):
    assert record["command"].startswith("python -m benchmarks.evaluate")
    assert "--write-docs" in record["command"]
    assert record["git_commit"] and len(record["load_average"]) == 3 and record["machine"]["logical_cores"]
    assert record["ok"] is True and record["results"]
    n_frames = record["parameters"]["n_frames"]
    for name, r in record["results"].items():
        calcjob, parallel = r["calcjob"], r["loop_parallel"]
        # the second baseline runs at the runner's parallelism: its workers x its torch threads
        assert parallel["processes"] == calcjob["workers"], name
        assert parallel["torch_threads"] == calcjob["torch_threads"], name
        assert r["loop"]["processes"] == 1
        assert r["loop"]["torch_threads"] == calcjob["workers"] * calcjob["torch_threads"], name
        slices = [(p["start"], p["stop"]) for p in parallel["per_process"]]
        assert slices == frame_slices(n_frames, parallel["processes"]), name
        # ratio = best plain wall / CalcJob wall, reported against both baselines
        walls = {key: r[key]["total_seconds"] for key in ("loop", "loop_parallel")}
        assert r["ratio_total"] == pytest.approx(min(walls.values()) / calcjob["total_seconds"])
        assert r["ratio_total"] == min(r["ratio_total_by_baseline"].values())
        assert r["ratio_eval"] == min(r["ratio_eval_by_baseline"].values())
        assert r["best_baseline"]["total"] == min(walls, key=walls.get)
        assert r["max_abs_diff"]["agree"] and r["max_abs_diff_parallel"]["agree"], name
        # fixed costs + the runner's evaluation = the CalcJob path's wall
        costs = r["fixed_costs_seconds"]
        assert set(costs) == {*FIXED_COST_GROUPS, "total"}
        total = costs["total"] + calcjob["evaluation_seconds"]
        assert total == pytest.approx(calcjob["total_seconds"], abs=1e-6), name


def test_frame_slices_are_contiguous_and_cover_every_frame():
    assert frame_slices(500, 2) == [(0, 250), (250, 500)]
    assert frame_slices(16, 3) == [(0, 5), (5, 10), (10, 16)]
    assert frame_slices(2, 4) == [(0, 1), (1, 2)]  # never an empty process
    assert frame_slices(7, 1) == [(0, 7)]


def test_fixed_costs_group_every_step_but_the_evaluation():
    steps = {"dataset_create": 0.1, "dataset_store": 0.2, "process_setup": float("nan"), "presubmit": 0.3,
             "upload": 0.05, "submit": 0.05, "runner_startup_and_poll": 2.0, "runner_model_load": 1.5,
             "runner_evaluation": 40.0, "runner_io": 1.0, "retrieve": 0.2, "parse": 0.1, "store_outputs": 0.1,
             "other": 0.4}
    grouped = [key for keys in FIXED_COST_GROUPS.values() for key in keys]
    assert sorted(grouped) == sorted(set(steps) - {"runner_evaluation"})  # each step once
    costs = fixed_costs(steps)
    assert costs["runner_start_and_imports"] == 2.0 and costs["model_load"] == 1.5
    assert costs["frame_io"] == pytest.approx(0.1 + 0.2 + 0.3 + 1.0 + 0.1)
    assert costs["aiida_engine"] == pytest.approx(0.05 + 0.05 + 0.2 + 0.1 + 0.4)  # unmeasured set-up: 0
    measured = [v for k, v in steps.items() if k != "runner_evaluation" and v == v]  # NaN != NaN
    assert costs["total"] == pytest.approx(sum(measured))
