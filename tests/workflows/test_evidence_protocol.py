"""The evidence protocol of loop files (specs/evidence.py): checked before anything runs, expanded into splits
and runs with independent selection and fine-tune seeds; the loop's test set and fine-tune seed
(ActiveLearningWorkChain inputs ``test`` and ``finetune_seed``); the paired verdicts (metrics.statistics)."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.specs.evidence import check_evidence, evidence_plan, partial_plan, split_parameters
from aiida_reactmlip.specs.loop import load_loop_spec
from aiida_reactmlip.workflows.active_learning import ActiveLearningWorkChain

from test_active_learning import emt_cu_frames, loop_inputs  # the same directory (pytest prepends it)

PROTOCOL = textwrap.dedent("""\
    name: loop-evidence-test
    model: chgnet-0.3.0
    pool: {fixture: ch4-dissociation-pool}
    strategy: committee
    k: 1
    committee_size: 4
    max_dft_labels: 12
    hyperparameters: {epochs: 2, batch_size: 2}
    evidence:
      target: {metric: force_mae, threshold: 0.15}
      runs: 10
      splits: 3
      baselines: [random, fps]
      seed: 7
""")


def write(tmp_path, text: str):
    path = tmp_path / "loop.yaml"
    path.write_text(text)
    return path


def test_a_file_that_meets_the_protocol_expands_into_paired_runs(tmp_path):
    spec = load_loop_spec(write(tmp_path, PROTOCOL))
    evidence = spec["evidence"]
    assert evidence["validation_fraction"] == evidence["test_fraction"] == 0.2 and evidence["group_by"] == "auto"
    plan = evidence_plan(evidence, spec["strategy"])
    assert len(plan["splits"]) == 3 and len(plan["runs"]) == 30
    assert {run["split"] for run in plan["runs"]} == {0, 1, 2}
    assert all(run["strategies"] == ["committee", "random", "fps"] for run in plan["runs"])
    selection = np.array([run["selection_seed"] for run in plan["runs"]])
    finetune = np.array([run["finetune_seed"] for run in plan["runs"]])
    assert len(set(selection)) == 30 and len(set(finetune)) == 30  # every run its own seeds
    assert not np.array_equal(selection, finetune)  # two streams, not one seed used twice
    assert len({split["seed"] for split in plan["splits"]}) == 3
    assert evidence_plan(evidence, "committee") == plan  # the same file, the same plan
    assert evidence_plan({**evidence, "seed": 8}, "committee") != plan
    params = split_parameters(evidence, plan["splits"][1]["seed"])
    assert params == {"validation_fraction": 0.2, "test_fraction": 0.2, "seed": plan["splits"][1]["seed"],
                      "group_by": "auto"}


def test_every_shortfall_of_the_protocol_is_named_at_once(tmp_path):
    weak = PROTOCOL.replace("k: 1", "k: 4").replace("committee_size: 4", "committee_size: 2") \
        .replace("runs: 10", "runs: 2").replace("splits: 3", "splits: 1").replace("[random, fps]", "[random]")
    weak += "validation: {split: {validation_fraction: 0.25}}\n"
    with pytest.raises(ValueError) as refused:
        load_loop_spec(write(tmp_path, weak))
    message = str(refused.value)
    for expected in ("runs must be an integer >= 10, got 2", "splits must be an integer >= 3, got 1",
                     "baselines must list at least random, fps", "k (labels per round) must be 1 or 2",
                     "committee_size must be >= 4", "'validation' and 'evidence' exclude each other"):
        assert expected in message, message


@pytest.mark.parametrize("change, expected", [
    ({"target": {"metric": "barrier", "threshold": 0.1}}, "target must be"),
    ({"target": {"metric": "force_mae", "threshold": -1}}, "target must be"),
    ({"validation_fraction": 0.6, "test_fraction": 0.5}, "with a sum below 1"),
    ({"bogus": 1}, "unknown evidence key(s) bogus"),
    ({"baselines": ["random", "fps", "committee"]}, "is also a baseline"),
])
def test_malformed_evidence_entries_are_refused(change, expected):
    spec = {"strategy": "committee", "k": 1, "committee_size": 4, "pool": {"fixture": "x"},
            "evidence": {"target": {"metric": "force_mae", "threshold": 0.1}, "runs": 10, "splits": 3,
                         "baselines": ["random", "fps"], **change}}
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        check_evidence(spec, "f.yaml")


def test_dry_run_states_the_protocol(tmp_path):
    from click.testing import CliRunner

    from aiida_reactmlip.cli import cmd_root

    result = CliRunner().invoke(cmd_root, ["loop", "run", str(write(tmp_path, PROTOCOL)), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "3 group splits x 10 runs" in result.output and "committee vs random vs fps: 90 loops" in result.output
    assert "force_mae <= 0.15 eV/Å on the test set" in result.output
    refused = CliRunner().invoke(cmd_root, ["loop", "run", str(write(tmp_path, PROTOCOL)), "--dry-run",
                                            "--seeds", "0,1"])
    assert refused.exit_code != 0 and "--seeds and --strategy do not apply" in refused.output


def test_a_partial_run_is_a_prefix_of_the_plan_and_says_so(tmp_path):
    from click.testing import CliRunner

    from aiida_reactmlip.cli import cmd_root

    spec = load_loop_spec(write(tmp_path, PROTOCOL))
    plan = evidence_plan(spec["evidence"], spec["strategy"])
    part = partial_plan(plan, splits=1, runs=4)
    assert part["partial"] == {"splits": [1, 3], "runs": [4, 10]}
    assert part["runs"] == [run for run in plan["runs"] if run["split"] == 0 and run["run"] < 4]
    assert [run["selection_seed"] for run in part["runs"]] == [run["selection_seed"] for run in plan["runs"][:4]]
    assert part["splits"] == plan["splits"][:1]
    assert partial_plan(plan)["partial"] is None and partial_plan(plan)["runs"] == plan["runs"]
    assert partial_plan(plan, runs=10, splits=3)["partial"] is None  # all of it is not partial
    with pytest.raises(ValueError, match="runs must be between 1 and 10 .* got 11"):
        partial_plan(plan, runs=11)
    with pytest.raises(ValueError, match="splits must be between 1 and 3 .* got 0"):
        partial_plan(plan, splits=0)
    path = str(write(tmp_path, PROTOCOL))
    result = CliRunner().invoke(cmd_root, ["loop", "run", path, "--dry-run", "--splits", "1", "--runs", "4"])
    assert result.exit_code == 0, result.output
    assert "PARTIAL evidence protocol (the first 1 of 3 splits, 4 of 10 runs each" in result.output
    assert "1 group splits x 4 runs" in result.output and "committee vs random vs fps: 12 loops" in result.output
    refused = CliRunner().invoke(cmd_root, ["loop", "run", path, "--dry-run", "--runs", "12"])
    assert refused.exit_code != 0 and "--splits / --runs: runs must be between 1 and 10" in refused.output
    plain = write(tmp_path, PROTOCOL.split("evidence:")[0] + "validation: {split: {validation_fraction: 0.25}}\n")
    refused = CliRunner().invoke(cmd_root, ["loop", "run", str(plain), "--dry-run", "--runs", "2"])
    assert refused.exit_code != 0 and "apply to a file with an 'evidence' section only" in refused.output


def test_a_run_that_never_reaches_the_target_counts_one_round_past_the_budget():
    from aiida_reactmlip.cli.cmd_loop import evidence_censor, evidence_verdict_lines

    assert evidence_censor({"max_dft_labels": 8, "k": 2}, pool_size=130) == (10, "one round past the budget")
    assert evidence_censor({"k": 2}, pool_size=130) == (130, "the pool size")
    assert evidence_censor({"max_dft_labels": 40, "k": 2}, pool_size=30) == (30, "the pool size")
    never = ([0, 2, 4], [0.3, 0.25, 0.2])  # target 0.15 never reached
    summaries = {"committee": [{"n_labels": [0, 2, 4], "test_force_mae": [0.3, 0.2, 0.1]}] * 6,
                 "random": [{"n_labels": never[0], "test_force_mae": never[1]}] * 6}
    spec = {"strategy": "committee", "evidence": {"target": {"metric": "force_mae", "threshold": 0.15}}}
    lines = evidence_verdict_lines(summaries, spec, 6, "one round past the budget")
    assert "counted at one round past the budget, 6" in lines[1]
    assert "committee needs 4 ± 0 labels, random 6 ± 0" in lines[2] and "count as 6 labels" in lines[2]


def test_the_partial_verdict_is_labelled_partial():
    from aiida_reactmlip.cli.cmd_loop import evidence_verdict_lines

    curve = ([0, 1, 2], [0.3, 0.2, 0.1])
    summaries = {name: [{"n_labels": curve[0], "test_force_mae": curve[1]}] * 3 for name in ("committee", "random")}
    spec = {"strategy": "committee", "evidence": {"target": {"metric": "force_mae", "threshold": 0.15}},
            "plan": {"partial": {"splits": [1, 3], "runs": [3, 10]}}}
    lines = evidence_verdict_lines(summaries, spec, censor_at=40)
    assert "PARTIAL protocol: 1 of 3 splits, 3 of 10 runs each" in lines[1]
    del spec["plan"]
    assert not any("PARTIAL" in line for line in evidence_verdict_lines(summaries, spec, censor_at=40))


def test_a_test_set_that_shares_labels_with_the_validation_set_is_refused(codes, registry_models):
    pool = LabelledDatasetData.from_atoms(emt_cu_frames(3, 2, seed=11)).store()
    validation = LabelledDatasetData.from_atoms(emt_cu_frames(2, 2, seed=12, group_prefix="v")).store()
    with pytest.raises(ValueError, match="is also the validation: the test set must be separate"):
        run_get_node(ActiveLearningWorkChain, **loop_inputs(codes, registry_models, pool, validation,
                                                            test=validation))
    frames = emt_cu_frames(2, 2, seed=12, group_prefix="v")
    for k, atoms in enumerate(frames):
        atoms.info["source_uuid"] = f"00000000-0000-0000-0000-{k:012d}"  # DFT labels: their CalcJobs' UUIDs
    labelled = LabelledDatasetData.from_atoms(frames).store()
    overlapping = LabelledDatasetData.from_atoms(frames[:2]).store()
    with pytest.raises(ValueError, match="share 2 DFT label.* separate from the validation"):
        run_get_node(ActiveLearningWorkChain, **loop_inputs(codes, registry_models, pool, labelled,
                                                            test=overlapping))
    assert orm.QueryBuilder().append(orm.CalcJobNode, filters={"ctime": {">": pool.ctime}}).count() == 0


@pytest.mark.mlip
def test_loop_reports_the_test_set_and_seeds_its_finetunes_apart(codes, registry_models):
    pool = LabelledDatasetData.from_atoms(emt_cu_frames(3, 2, seed=21)).store()
    validation = LabelledDatasetData.from_atoms(emt_cu_frames(2, 2, seed=22, group_prefix="v")).store()
    test = LabelledDatasetData.from_atoms(emt_cu_frames(2, 2, seed=23, group_prefix="t")).store()
    inputs = loop_inputs(codes, registry_models, pool, validation, strategy=orm.Str("random"), k=orm.Int(2),
                         max_rounds=orm.Int(1), seed=orm.Int(3), finetune_seed=orm.Int(11), test=test)
    _, node = run_get_node(ActiveLearningWorkChain, **inputs)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    summary = node.outputs.summary.get_dict()
    assert summary["finetune_seed"] == 11 and summary["seed"] == 3 and summary["test_uuid"] == test.uuid
    assert len(summary["test_force_mae"]) == len(summary["force_mae"]) == 2
    for row, key in zip(summary["rounds"], ("round_00", "round_01")):
        metrics = node.outputs.rounds[key]["test_metrics"]
        assert row["test_force_mae"] == pytest.approx(metrics["force_mae"]) and row["test_force_mae"] > 0
        assert metrics.creator.inputs.dataset.uuid == test.uuid  # computed on the test set, not validation
    assert summary["test_force_mae"] != summary["force_mae"]  # two different sets
    finetune = [p for p in node.called if p.process_type == "aiida.workflows:reactmlip.finetune_base"]
    assert [f.inputs.finetune.parameters["seed"] for f in finetune] == [11]
    select = [p for p in node.called_descendants if p.process_label == "select_candidates"]
    assert select and all(p.inputs.parameters["seed"] == 3 + 1 for p in select)


@pytest.mark.parametrize("name, layout, n_runs", [("loop-ch4-protocol", "crossed", 30),
                                                   ("loop-h3-protocol", "spread", 10),
                                                   ("loop-nh3-protocol", "spread", 10)])
def test_the_shipped_protocol_files_meet_the_protocol(name, layout, n_runs):
    import pathlib

    path = pathlib.Path(__file__).parents[2] / "workchains" / f"{name}.yaml"
    spec = load_loop_spec(path)
    plan = evidence_plan(spec["evidence"], spec["strategy"])
    assert (plan["layout"], len(plan["splits"]), len(plan["runs"]), plan["runs"][0]["strategies"]) == \
        (layout, 3, n_runs, ["committee", "random", "fps"])
    assert {run["split"] for run in plan["runs"]} == {0, 1, 2}


def test_a_spread_layout_deals_ten_runs_over_three_splits(tmp_path):
    from click.testing import CliRunner

    from aiida_reactmlip.cli import cmd_root
    from benchmarks.loop_protocol import prefix_counts

    text = PROTOCOL.replace("splits: 3\n", "splits: 3\n  layout: spread\n")
    spec = load_loop_spec(write(tmp_path, text))
    plan = evidence_plan(spec["evidence"], spec["strategy"])
    assert [(run["split"], run["run"]) for run in plan["runs"]] == [(r % 3, r) for r in range(10)]
    assert len({run["selection_seed"] for run in plan["runs"]}) == 10
    assert len({run["finetune_seed"] for run in plan["runs"]}) == 10
    assert {run["selection_seed"] for run in plan["runs"]}.isdisjoint(run["finetune_seed"] for run in plan["runs"])
    crossed = evidence_plan({**spec["evidence"], "layout": "crossed"}, spec["strategy"])
    assert plan["splits"] == crossed["splits"]  # the same three group splits either way
    part = partial_plan(plan, runs=4)
    assert part["partial"] == {"splits": [3, 3], "runs": [4, 10]}
    assert [(run["split"], run["run"]) for run in part["runs"]] == [(0, 0), (1, 1), (2, 2), (0, 3)]
    assert partial_plan(plan, runs=10)["partial"] is None
    assert prefix_counts(spec, [(0, 0), (1, 1), (2, 2), (0, 3)]) == (3, 4)
    assert partial_plan(plan, *prefix_counts(spec, [(0, 0), (1, 1)]))["runs"] == plan["runs"][:2]
    first_two_splits = [(run["split"], run["run"]) for run in partial_plan(plan, splits=2)["runs"]]
    assert first_two_splits == [(0, 0), (1, 1), (0, 3), (1, 4), (0, 6), (1, 7), (0, 9)]  # --splits 2
    assert partial_plan(plan, *prefix_counts(spec, first_two_splits))["runs"] == partial_plan(plan, splits=2)["runs"]
    assert prefix_counts({"evidence": {}}, [(0, 0), (0, 1), (1, 0), (1, 1)]) == (2, 2)  # crossed
    path = str(write(tmp_path, text))
    result = CliRunner().invoke(cmd_root, ["loop", "run", path, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "10 runs spread over 3 group splits (run r on split r mod 3)" in result.output
    assert "committee vs random vs fps: 30 loops" in result.output
    result = CliRunner().invoke(cmd_root, ["loop", "run", path, "--dry-run", "--runs", "4"])
    assert "PARTIAL evidence protocol (the first 3 of 3 splits, 4 of 10 runs in all" in result.output
    assert "committee vs random vs fps: 12 loops" in result.output


@pytest.mark.parametrize("layout, splits, expected", [
    ("spread", 3, None),
    ("diagonal", 3, "layout must be one of crossed, spread, got 'diagonal'"),
    ("spread", 11, "runs (10) must be >= splits (11) so that every split is scored"),
])
def test_the_layout_is_checked(tmp_path, layout, splits, expected):
    text = PROTOCOL.replace("  splits: 3\n", f"  splits: {splits}\n  layout: {layout}\n")
    if expected is None:
        assert load_loop_spec(write(tmp_path, text))["evidence"]["layout"] == layout
        return
    with pytest.raises(ValueError, match=re.escape(expected)):
        load_loop_spec(write(tmp_path, text))


@pytest.mark.slow
@pytest.mark.mlip
def test_one_protocol_run_on_a_reaction_pool(tmp_path):
    """The first run of workchains/loop-h3-protocol.yaml end to end on the >= 200-frame pw.x pool, at a budget of 4
    labels and 5 epochs (a few minutes): committee, random and fps with the run's seeds on the same split; the test
    set apart from the validation set and the candidates; the PARTIAL verdict; the docs entry built from the nodes
    is what the benchmark would write."""
    import pathlib

    from click.testing import CliRunner

    from aiida_reactmlip.cli import cmd_root
    from benchmarks import loop_protocol

    shipped = pathlib.Path(__file__).resolve().parents[2] / "workchains" / "loop-h3-protocol.yaml"
    text = shipped.read_text()
    assert "max_dft_labels: 8" in text and "epochs: 30" in text
    path = tmp_path / "loop-h3-protocol.yaml"  # the same protocol, seeds and split at a CI-sized budget
    path.write_text(text.replace("max_dft_labels: 8", "max_dft_labels: 4").replace("epochs: 30", "epochs: 5"))
    spec = load_loop_spec(path)
    plan = partial_plan(evidence_plan(spec["evidence"], spec["strategy"]), splits=1, runs=1)
    result = CliRunner().invoke(cmd_root, ["loop", "run", str(path), "--splits", "1", "--runs", "1",
                                           "--output", str(tmp_path / "report")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "PARTIAL protocol: 1 of 3 splits, 1 of 10 runs in all" in result.output  # the file's layout: spread
    nodes = [orm.load_node(int(pk)) for pk in re.findall(r"ActiveLearningWorkChain pk (\d+)", result.output)]
    assert [n.inputs.strategy.value for n in nodes] == ["committee", "random", "fps"]
    run = plan["runs"][0]
    budget = list(range(0, spec["max_dft_labels"] + 1, spec["k"]))
    sources = {}
    for node in nodes:
        assert node.inputs.seed.value == run["selection_seed"] and node.inputs.finetune_seed.value == run["finetune_seed"]
        summary = node.outputs.summary.get_dict()
        assert summary["n_labels"] == budget and len(summary["test_force_mae"]) == len(budget)
        for name in ("label_pool", "validation", "test"):
            uuids = {info["source_uuid"] for info in node.inputs[name].frame_info}
            sources.setdefault(name, set()).update(uuids)
    assert not sources["test"] & sources["validation"] and not sources["test"] & sources["label_pool"]
    assert len(sources["label_pool"]) + len(sources["validation"]) + len(sources["test"]) >= 200
    # the three strategies start from the same base model on the same test set
    assert len({round(n.outputs.summary["test_force_mae"][0], 9) for n in nodes}) == 1
    entry = loop_protocol.reaction_record("h-h2-exchange", nodes, spec, plan)
    assert entry["partial"] == {"splits": [1, 3], "runs": [1, 10]} and len(entry["loops"]) == 3
    assert all(line in result.output for line in entry["verdicts"]["lines"][1:])
