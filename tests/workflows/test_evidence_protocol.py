"""The evidence protocol of loop files (specs/evidence.py): checked before anything runs, expanded into splits
and runs with independent selection and fine-tune seeds; the loop's test set and fine-tune seed
(ActiveLearningWorkChain inputs ``test`` and ``finetune_seed``); the paired verdicts (metrics.statistics)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.specs.evidence import check_evidence, evidence_plan, split_parameters
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


def test_the_shipped_protocol_file_meets_the_protocol():
    import pathlib

    path = pathlib.Path(__file__).parents[2] / "workchains" / "loop-ch4-protocol.yaml"
    spec = load_loop_spec(path)
    plan = evidence_plan(spec["evidence"], spec["strategy"])
    assert (len(plan["splits"]), len(plan["runs"]), plan["runs"][0]["strategies"]) == \
        (3, 30, ["committee", "random", "fps"])
