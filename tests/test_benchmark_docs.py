"""docs/benchmark.md's ``evaluate-cpu`` block is the rendering of docs/results/evaluate-cpu.json, never typed;
the record compares the CalcJob path with plain loops at the runner's own parallelism."""

import json

import pytest

from aiida_reactmlip.report.docs_blocks import REPO_ROOT, read_block
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


# ------------------------------------------- generated measurement blocks of other pages: block == its JSON


def _generated_blocks():
    from benchmarks import (
        barrier_loop,
        evaluate_many,
        evaluate_modes,
        finetune_study_docs,
        label_throughput,
        loop_evidence,
        loop_protocol,
        md_speed,
    )

    throughput_json, throughput_page = label_throughput._docs_paths()
    many_json, many_page = evaluate_many._docs_paths()
    return [
        (loop_evidence.DOCS, loop_evidence.BLOCK, loop_evidence.RESULT_JSON, loop_evidence.render,
         "python -m benchmarks.loop_evidence table"),
        (finetune_study_docs.DOCS, finetune_study_docs.BLOCK, finetune_study_docs.RESULT_JSON,
         finetune_study_docs.render, "python -m benchmarks.finetune_study_docs table"),
        (throughput_page, label_throughput.BLOCK, throughput_json, label_throughput.render_markdown,
         "python -m benchmarks.label_throughput --docs-only"),
        (barrier_loop.DOCS, barrier_loop.BLOCK, barrier_loop.RESULT_JSON, barrier_loop.render,
         "python -m benchmarks.barrier_loop table"),
        (loop_protocol.DOCS, loop_protocol.BLOCK, loop_protocol.RESULT_JSON, loop_protocol.render,
         "python -m benchmarks.loop_protocol table"),
        (loop_protocol.SUMMARY_DOCS, loop_protocol.SUMMARY_BLOCK, loop_protocol.RESULT_JSON,
         loop_protocol.render_summary, "python -m benchmarks.loop_protocol table"),
        (many_page, evaluate_many.BLOCK, many_json, evaluate_many.render_markdown,
         "python -m benchmarks.evaluate_many --docs-only"),
        (REPO_ROOT / "docs" / "benchmark.md", evaluate_modes.BLOCK, REPO_ROOT / "docs" / "results" / "evaluate-modes.json",
         evaluate_modes.render_markdown, "python -m benchmarks.evaluate_modes --docs-only"),
        (REPO_ROOT / "docs" / "exploration.md", md_speed.BLOCK, REPO_ROOT / "docs" / "results" / "md-speed.json",
         md_speed.render_markdown, "python -m benchmarks.md_speed --docs-only"),
    ]


@pytest.mark.parametrize("index", range(9), ids=["loop-ch4-evidence", "finetune-ch4-study", "label-throughput",
                                                  "barrier-loops", "loop-protocol", "loop-protocol-summary",
                                                  "evaluate-many", "evaluate-modes", "md-speed"])
def test_generated_block_is_the_rendering_of_its_json(index):
    page, block, result_json, render, command = _generated_blocks()[index]
    record = json.loads(result_json.read_text())
    # one provenance per record, or one per reaction (barrier loops: each reaction is its own run)
    provenances = [record["provenance"]] if "provenance" in record else [e["provenance"] for e in record["reactions"].values()]
    assert all(p["git_commit"] and len(p["load_average"]) == 3 for p in provenances)
    assert read_block(page.read_text(), block) == render(record).strip("\n"), (
        f"{page.name} differs from {result_json.name}: run `.venv/bin/python -m {command.split(' -m ')[1]}`")


def test_loop_evidence_record_is_consistent():
    from benchmarks import loop_evidence

    from aiida_reactmlip.metrics.loop import labels_to_target

    record = json.loads(loop_evidence.RESULT_JSON.read_text())
    loops = record["loops"]
    assert {loop["strategy"] for loop in loops} == {"committee", "random"} and len(loops) == 4
    for loop in loops:
        assert loop["n_labels"] == [0, 4, 8, 12, 16, 20] and len(loop["force_mae"]) == 6
        assert loop["labels_to_target"] == labels_to_target(loop["n_labels"], loop["force_mae"],
                                                            record["target_force_mae"])
        # the validation set holds the distorted C-H scan: every round has its stretch-energy error
        assert loop["scan_energy_mae"] is not None and len(loop["scan_energy_mae"]) == 6
    # round 0 is the base model for every loop: the same errors
    assert len({loop["force_mae"][0] for loop in loops}) == 1


@pytest.mark.parametrize("reaction", ["h-h2-exchange", "nh3-inversion"])
def test_barrier_loop_record_is_consistent(reaction):
    from benchmarks import barrier_loop

    from aiida_reactmlip.metrics.statistics import paired_comparison

    entry = json.loads(barrier_loop.RESULT_JSON.read_text())["reactions"][reaction]
    loops = entry["loops"]
    seeds = entry["seeds"]
    assert seeds == barrier_loop.REACTIONS[reaction]["seeds"]
    by = {}
    for loop in loops:
        by.setdefault(loop["strategy"], {})[loop["seed"]] = loop
    # the three strategies of the first run; the check-first loops where `run --kind check-first` added them
    assert set(barrier_loop.STRATEGIES[:3]) <= set(by) <= set(barrier_loop.STRATEGIES)
    assert all(sorted(group) == seeds for group in by.values())
    target = entry["target_barrier_error"]
    for loop in loops:
        checks = loop["checks"]
        assert [c["round"] for c in checks] == list(range(1, len(checks) + 1))
        for check in checks:
            assert check["barrier_check_error"] == pytest.approx(abs(check["mlip_barrier"] - check["dft_saddle_barrier"]))
        # converged exactly when the last check passed, and the labels counted then
        assert loop["converged"] == (loop["stop_reason"] == "barrier") == (checks[-1]["barrier_check_error"] <= target)
        assert all(c["barrier_check_error"] > target for c in checks[:-1])
        assert loop["labels_to_converge"] == (checks[-1]["n_labels"] if loop["converged"] else None)
        per_round = 0 if loop["strategy"] == "saddle" else 1  # k picks beside the saddle
        expected = [2 + per_round + (1 + per_round) * i for i in range(len(checks))]
        if loop["strategy"].startswith("check-first") and loop["converged"]:
            expected[-1] -= per_round  # the check passed alone: its round labelled no pick
        assert [c["n_labels"] for c in checks] == expected
        assert loop["final_error_vs_dft"] == pytest.approx(loop["final_mlip_barrier"] - entry["dft"]["barrier"])
    # round 1 of every loop is base CHGNet's band: the same first check (to 10 µeV: loops run in another session
    # converge the same NEB to within a few µeV)
    first = [loop["checks"][0]["mlip_barrier"] for loop in loops]
    assert max(first) - min(first) < 1e-5
    for name, comparison in entry["comparisons"].items():
        a, b = name.split(" vs ")
        again = paired_comparison([by[a][s]["labels_to_converge"] for s in seeds],
                                  [by[b][s]["labels_to_converge"] for s in seeds],
                                  censor_at=entry["max_dft_labels"] + 1, names=(a, b))
        assert again["wilcoxon_p"] == pytest.approx(comparison["wilcoxon_p"])
        assert again["mean_difference"] == pytest.approx(comparison["mean_difference"])


@pytest.mark.parametrize("reaction", ["h-h2-exchange", "nh3-inversion"])
def test_loop_protocol_record_is_consistent(reaction):
    """Every run of the protocol entry holds the file's strategy and both baselines with the plan's seeds, paired;
    the verdicts are recomputed from the curves the JSON holds."""
    from benchmarks import loop_protocol

    from aiida_reactmlip.metrics.statistics import compare_strategies
    from aiida_reactmlip.specs.evidence import evidence_plan, partial_plan
    from aiida_reactmlip.specs.loop import load_loop_spec

    entry = json.loads(loop_protocol.RESULT_JSON.read_text())["reactions"][reaction]
    spec = load_loop_spec(REPO_ROOT / entry["loop_file"])
    assert entry["evidence"] == spec["evidence"] and entry["k"] == spec["k"]
    assert entry["pool_frames"] >= 200
    # the target's rule, fixed before the runs: 0.7 x the base model's zero-shot force MAE on the pool
    assert spec["evidence"]["target"]["threshold"] == round(0.7 * entry["zero_shot_pool_force_mae"], 2)
    partial = entry["partial"] or {"splits": [None], "runs": [None]}
    plan = partial_plan(evidence_plan(spec["evidence"], spec["strategy"]), partial["splits"][0], partial["runs"][0])
    assert plan["partial"] == entry["partial"]
    strategies = plan["runs"][0]["strategies"]
    by_run = {}
    for loop in entry["loops"]:
        by_run.setdefault((loop["split"], loop["run"]), {})[loop["strategy"]] = loop
    assert sorted(by_run) == sorted((run["split"], run["run"]) for run in plan["runs"])
    budget = list(range(0, spec["max_dft_labels"] + 1, spec["k"]))
    for run in plan["runs"]:
        loops = by_run[(run["split"], run["run"])]
        assert sorted(loops) == sorted(strategies)
        for loop in loops.values():
            assert loop["selection_seed"] == run["selection_seed"] and loop["finetune_seed"] == run["finetune_seed"]
            assert loop["n_labels"] == budget and len(loop["test_force_mae"]) == len(budget)
            assert [len(roles) for roles in loop["picked_roles"]] == [spec["k"]] * (len(budget) - 1)
        # round 0 is base CHGNet on the same test set in every strategy of a run
        assert len({round(loop["test_force_mae"][0], 9) for loop in loops.values()}) == 1
    curves = {name: [(by_run[key][name]["n_labels"], by_run[key][name]["test_force_mae"]) for key in sorted(by_run)]
              for name in strategies}
    picks = loop_protocol.picks_by_role(entry)  # from round 2 on: (rounds - 1) x k picks per run
    assert {name: sum(roles.values()) for name, roles in picks.items()} == \
        {name: len(plan["runs"]) * (len(budget) - 2) * spec["k"] for name in strategies}
    assert entry["verdicts"]["censor_at"] == spec["max_dft_labels"] + spec["k"]  # one round past the budget
    again = compare_strategies(curves, spec["strategy"], spec["evidence"]["target"]["threshold"],
                               censor_at=entry["verdicts"]["censor_at"])
    for other, comparison in entry["verdicts"]["comparisons"].items():
        for kind in ("labels", "mean_error"):
            assert again[other][kind]["wilcoxon_p"] == pytest.approx(comparison[kind]["wilcoxon_p"])
            assert again[other][kind]["mean_difference"] == pytest.approx(comparison[kind]["mean_difference"])
        assert any(again[other]["labels_sentence"] in line for line in entry["verdicts"]["lines"])


def test_record_uuids_finds_every_node_once():
    from benchmarks._docs_run import record_uuids

    record = {"uuid": "a", "loops": [{"uuid": "b", "checks": [{"uuid": "c"}]}, {"uuid": "a"}],
              "dft": {"uuid": "d", "pk": 3}, "note": "uuid"}
    assert record_uuids(record) == ["a", "b", "c", "d"]


def test_label_throughput_record_is_consistent():
    from benchmarks import label_throughput

    record = json.loads(label_throughput._docs_paths()[0].read_text())
    assert record["ok"] is True
    for name, r in record["results"].items():
        assert r["pw_calculations"] >= r["n_frames"], name
        plain = r["plain"]
        assert all(p["energies_equal_aiida"] for p in plain.values()), name
        best = min(p["wall_seconds"] for p in plain.values())
        assert r["ratio_vs_best_plain"] == pytest.approx(best / r["aiida"]["wall_seconds"])
        assert r["aiida"]["labels_per_hour"] == pytest.approx(r["n_frames"] / r["aiida"]["wall_seconds"] * 3600)


def test_total_energy_of_a_pw_output_is_its_last_converged_line(tmp_path):
    from benchmarks.label_throughput import run_plain, total_energy_ry

    text = ("     total energy              =     -31.00000000 Ry\n"
            "!    total energy              =     -31.50132861 Ry\n"
            "!    total energy              =     -31.50132999 Ry\n")
    assert total_energy_ry(text) == -31.50132999
    assert total_energy_ry("convergence NOT achieved after 2 iterations") is None
    # the plain loop runs the command in every directory, at most N at a time, and fails loudly
    dirs = [tmp_path / f"{i}" for i in range(3)]
    for d in dirs:
        d.mkdir()
    assert run_plain(dirs, "echo ran > out.txt", 2, {}) >= 0
    assert all((d / "out.txt").read_text() == "ran\n" for d in dirs)
    with pytest.raises(RuntimeError, match="exit codes"):
        run_plain(dirs, "exit 3", 2, {})


def test_evaluate_many_record_is_consistent():
    """One evaluate_many job against one evaluate job per pair: same predictions, the job counts of each way,
    and the speed-up is the ratio of the median walls of the rounds."""
    import statistics

    from benchmarks import evaluate_many

    record = json.loads(evaluate_many._docs_paths()[0].read_text())
    expected_jobs = {"committee": evaluate_many.COMMITTEE_SIZE, "validation_and_test": 2}
    for name, r in record["results"].items():
        assert r["max_abs_energy_difference_eV"] < 1e-6 and r["max_abs_force_difference_eV_per_A"] < 1e-6, name
        assert {x["jobs"] for x in r["rounds"]["single"]} == {expected_jobs[name]}
        assert {x["jobs"] for x in r["rounds"]["many"]} == {1}
        assert len(r["rounds"]["single"]) == len(r["rounds"]["many"]) == record["parameters"]["repeat"]
        medians = {way: statistics.median(x["wall_seconds"] for x in rounds) for way, rounds in r["rounds"].items()}
        assert r["speedup"] == pytest.approx(medians["single"] / medians["many"])
        assert all(len(x["uuids"]) == x["jobs"] for rounds in r["rounds"].values() for x in rounds)


def test_evaluate_modes_record_is_consistent():
    """Batched and loop agree within the benchmark's tolerance; the ratios are those of the medians; CHGNet's
    graph building is a part of its loop's time."""
    from benchmarks import evaluate_modes

    record = json.loads((REPO_ROOT / "docs" / "results" / "evaluate-modes.json").read_text())
    assert record["ok"] is True
    for name, r in record["results"].items():
        median = r["seconds_per_frame_median"]
        for path, ratio in r["ratio_loop_over_batched_median"].items():
            assert ratio == pytest.approx(median["ase"] / median[path]), (name, path)
            for key, tolerance in evaluate_modes.TOLERANCE.items():
                assert r["max_abs_diff_vs_loop"][path][key] <= tolerance
        if r["family"] == "chgnet":
            assert 0 < r["graph_seconds_per_frame_median"] < median["ase"]


def test_md_speed_record_is_consistent():
    """Every run did its steps; the medians are those of the rounds; each strategy picked 4 distinct frames of
    the example's pool, and the mean std quoted is that of the picked frames."""
    import statistics

    import numpy as np

    record = json.loads((REPO_ROOT / "docs" / "results" / "md-speed.json").read_text())
    steps = record["parameters"]["n_steps"]
    for name, r in record["results"].items():
        for threads, runs in r["runs"].items():
            assert all(run["steps_done"] == steps and run["steps_per_second"] > 0 for run in runs), (name, threads)
            assert r["steps_per_second_median"][threads] == pytest.approx(
                statistics.median(run["steps_per_second"] for run in runs))
    committee = record["example_committee"]
    std = np.asarray(committee["committee_force_std"])
    assert len(std) == committee["n_frames"] == 20 and committee["min"] == pytest.approx(std.min())
    for strategy, pick in committee["picks"].items():
        assert len(set(pick["frames"])) == 4 and max(pick["frames"]) < len(std), strategy
        assert pick["mean_std"] == pytest.approx(std[pick["frames"]].mean())
    assert committee["picks"]["committee"]["mean_std"] == pytest.approx(np.sort(std)[-4:].mean())


def test_every_benchmark_module_loads_or_is_a_script():
    """`make bench` runs every module of benchmarks/ that is not a docs script: each must be a benchmark."""
    import benchmarks

    for name in benchmarks.BENCHMARKS:
        benchmarks.load(name)  # AttributeError naming what a module lacks
    assert "loop_protocol" not in benchmarks.BENCHMARKS and "evaluate_many" in benchmarks.BENCHMARKS


def test_campaign_blocks_are_the_rendering_of_their_json():
    """docs/campaigns.md's measured campaigns come from docs/results/campaigns.json; the leaderboard the
    campaign stored ranks the models by the force MAE of their metrics."""
    from benchmarks import campaign_docs

    record = json.loads(campaign_docs.RESULT_JSON.read_text())
    assert set(record["campaigns"]) <= set(campaign_docs.CAMPAIGNS) and "h2-dissociation" in record["campaigns"]
    page = campaign_docs.DOCS.read_text()
    for name, entry in record["campaigns"].items():
        assert entry["provenance"]["git_commit"] and len(entry["provenance"]["load_average"]) == 3
        assert read_block(page, campaign_docs.block_name(name)) == campaign_docs.render_campaign(entry).strip("\n"), (
            f"docs/campaigns.md differs from campaigns.json ({name}): run `.venv/bin/python -m "
            "benchmarks.campaign_docs table`")
        rows = entry["leaderboard"]["rows"]
        assert [row["force_mae"] for row in rows] == sorted(m["force_mae"] for m in entry["metrics"].values())
        assert {row["metrics_uuid"] for row in rows} == {m["uuid"] for m in entry["metrics"].values()}
        assert set(entry["stability"]) <= set(entry["models"])


def test_performance_goals_block_is_the_rendering_of_the_committed_results():
    """docs/benchmark.md's goals at a glance: every row from its benchmark's JSON; a goal met exactly when its number
    says so (recomputed here from the label-throughput JSON)."""
    from benchmarks import label_throughput, performance_goals

    assert read_block(performance_goals.DOCS.read_text(), performance_goals.BLOCK) == performance_goals.render(), (
        "docs/benchmark.md differs from docs/results: run `.venv/bin/python -m benchmarks.performance_goals table`")
    record = json.loads((REPO_ROOT / "docs" / "results" / "label-throughput.json").read_text())
    rows = {row[1]: row for row in performance_goals.label_rows()}
    for name, result in record["results"].items():
        row = rows[f"{name} ({result['n_frames']} frames)"]
        assert (row[3] == "met") == (result["ratio_vs_best_plain"] >= label_throughput.GOAL)


def test_loop_protocol_block_says_partial_for_a_prefix_of_a_spread_plan():
    """A stopped spread protocol (the first 4 of 10 runs) is labelled PARTIAL with runs counted in all."""
    import copy

    from benchmarks import loop_protocol

    entry = copy.deepcopy(json.loads(loop_protocol.RESULT_JSON.read_text())["reactions"]["nh3-inversion"])
    assert entry["evidence"]["layout"] == "spread" and entry["partial"] is None
    whole = "\n".join(loop_protocol.render_reaction("nh3-inversion", entry))
    assert "the whole protocol; 10 runs spread over 3 group splits" in whole and "PARTIAL" not in whole
    entry["partial"] = {"splits": [3, 3], "runs": [4, 10]}
    entry["loops"] = [loop for loop in entry["loops"] if loop["run"] < 4]
    part = "\n".join(loop_protocol.render_reaction("nh3-inversion", entry))
    assert "PARTIAL: 4 of 10 runs over 3 group splits; these verdicts are not the protocol's" in part
    assert "| 0 | 3 | committee |" in part and "| 1 | 4 |" not in part
