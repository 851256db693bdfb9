"""`reactmlip finetune run|study|show` and `reactmlip report` on a study."""

from __future__ import annotations

import re
import sys

import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_reactmlip.cli import cmd_root


def invoke(*args):
    return CliRunner().invoke(cmd_root, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "220"})


def _pool_file(tmp_path):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "workflows"))
    from test_finetune_study import emt_pool

    from aiida_reactmlip.frames import Frames, write_extxyz

    path = tmp_path / "pool.extxyz"
    write_extxyz(Frames.from_atoms(emt_pool(5, 3, seed=3)), path)
    return path


STUDY = """\
name: cli-tiny
description: CHGNet 0.3.0 on 0 and 3 EMT labels, one epoch.
dataset: {extxyz: POOL}
models: [chgnet-0.3.0]
budgets: [0, 3]
split: {test_fraction: 0.2, validation_fraction: 0.15, seed: 2}
seed: 3
hyperparameters:
  chgnet: {epochs: 1, batch_size: 3, learning_rate: 1.0e-4, num_threads: 1}
max_concurrent_jobs: 2
"""


def test_help_teaches_with_examples():
    for args in (["finetune"], ["finetune", "run"], ["finetune", "study"], ["finetune", "show"]):
        result = invoke(*args, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
    assert "reactmlip finetune study workchains/" in invoke("finetune", "study", "--help").output
    assert "--param epochs=30" in invoke("finetune", "run", "--help").output
    assert "finetune_study" in invoke("report", "--help").output


def test_study_dry_run_and_bad_files(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.replace("POOL", "pool.extxyz"))
    result = invoke("finetune", "study", path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "study cli-tiny" in result.output and "budgets [0, 3]; 1 fine-tunes" in result.output
    path.write_text(STUDY.replace("POOL", "pool.extxyz").replace("budgets: [0, 3]", "budgets: [0, 3, -2]"))
    result = invoke("finetune", "study", path, "--dry-run")
    assert result.exit_code == 1 and "label budgets must be whole numbers >= 0, got [-2]" in result.output


def test_show_refuses_other_nodes(aiida_profile):
    node = orm.Int(3).store()
    result = invoke("finetune", "show", node.pk)
    assert result.exit_code == 1 and "give a reactmlip.finetune_study" in result.output
    assert "no node with pk/uuid 987654321" in invoke("finetune", "show", 987654321).output


def test_run_refuses_a_budget_larger_than_the_pool_before_any_job(tmp_path, codes):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.replace("POOL", str(_pool_file(tmp_path))).replace("budgets: [0, 3]", "budgets: [0, 50]"))
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    result = invoke("finetune", "study", path)
    assert result.exit_code == 1
    assert re.search(r"label budget 50 exceeds the training split: \d+ of the pool's 15 frames", result.output)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


@pytest.mark.mlip
def test_study_show_report_and_run_reproduce_the_model(tmp_path, codes, registry_models):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.replace("POOL", str(_pool_file(tmp_path))))
    result = invoke("finetune", "study", path, "--output", tmp_path / "report")
    assert result.exit_code == 0, result.output
    pk = int(re.search(r"FinetuneStudyWorkChain pk (\d+)", result.output).group(1))
    node = orm.load_node(pk)
    assert node.is_finished_ok
    rows = node.outputs.learning_curve["rows"]
    assert [r["budget"] for r in rows] == [0, 3]
    # the table printed is the learning curve of the node: force MAE in meV/Å, one row per budget
    for row in rows:
        assert f"{1000 * row['force_mae']:.1f}" in result.output
    assert (tmp_path / "report" / "index.html").is_file() and (tmp_path / "report" / "learning_curves.png").is_file()

    shown = invoke("finetune", "show", pk)
    assert shown.exit_code == 0 and f"{1000 * rows[1]['force_mae']:.1f}" in shown.output
    model = node.outputs.models.chgnet_0_3_0.budget_3
    assert f"N=3: {model.pk}" in shown.output
    lineage = invoke("finetune", "show", model.pk)
    assert lineage.exit_code == 0 and f"fine-tuned from chgnet-0.3.0 (pk {registry_models['chgnet-0.3.0'].pk})" in lineage.output

    report = invoke("report", pk, "--output", tmp_path / "again")
    assert report.exit_code == 0, report.output
    assert "learning_curve.csv" in report.output and (tmp_path / "again" / "forgetting.png").exists() is False

    # one fine-tune again from the command line, same data, hyperparameters and seed: the same model file
    job = model.creator
    params = job.inputs.parameters.get_dict()
    args = ["finetune", "run", "--model", "chgnet-0.3.0", "--training", job.inputs.training.pk,
            "--validation", job.inputs.validation.pk]
    for key, value in params.items():
        args += ["--param", f"{key}={value}"]
    rerun = invoke(*args)
    assert rerun.exit_code == 0, rerun.output
    assert f"sha256 {model.sha256}" in rerun.output
