"""`reactmlip loop run FILE`, `loop show PK`, `loop report PK`: a bad file refused with the reason, a
1-round oracle loop against its random baseline (real CHGNet 0.3.0 fine-tunes, EMT oracle labels)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from aiida import orm
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from click.testing import CliRunner

from aiida_reactmlip.cli import cmd_root
from aiida_reactmlip.frames import Frames, write_extxyz


def invoke(*args):
    return CliRunner().invoke(cmd_root, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def emt_frames(n: int, seed: int, prefix: str, n_groups: int = 3) -> Frames:
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.55 + 0.04 * (i % 3), cubic=True)
        atoms.positions += rng.normal(0.0, 0.05 + 0.03 * (i % 4), atoms.positions.shape)
        atoms.calc = EMT()
        atoms.calc = SinglePointCalculator(atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
        atoms.info.update(group=f"{prefix}{i % n_groups}", name=f"{prefix}-{i}")
        images.append(atoms)
    return Frames.from_atoms(images)


@pytest.fixture(scope="module")
def loop_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loop")
    write_extxyz(emt_frames(8, 1, "p"), folder / "pool.extxyz")
    write_extxyz(emt_frames(4, 2, "v", n_groups=2), folder / "validation.extxyz")
    spec = {
        "name": "cli-smoke",
        "description": "EMT oracle, 1 round, fps against random",
        "model": "chgnet-0.3.0",
        "pool": {"extxyz": "pool.extxyz"},
        "validation": {"extxyz": "validation.extxyz"},
        "strategy": "fps",
        "k": 2,
        "max_rounds": 1,
        "target_force_mae": 0.01,  # eV/Å: not reached in 1 round
        "seeds": [4],
        "baseline": "random",
        "hyperparameters": {"epochs": 1, "batch_size": 2, "learning_rate": 1e-4, "num_threads": 2},
    }
    path = folder / "loop-cli-smoke.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key(s) colour"),
        ({"strategy": "greedy"}, "unknown strategy 'greedy'"),
        ({"explore": {"system": "h2-dissociation"}}, "give either 'pool'"),
        ({"pool": {"extxyz": "a", "dataset": 3}}, "'pool' must name exactly one of"),
        ({"model": "no-such-model"}, "no-such-model"),
        ({"seeds": "one"}, "'seeds' must be an integer or a list of integers"),
    ],
)
def test_bad_loop_file_is_refused_with_the_reason(loop_file, tmp_path, change, message):
    spec = yaml.safe_load(loop_file.read_text())
    spec.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    result = invoke("loop", "run", str(path))
    assert result.exit_code != 0
    assert message in result.output
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


def test_dry_run_says_what_would_run(loop_file):
    result = invoke("loop", "run", str(loop_file), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "loop cli-smoke: oracle (DFT-labelled pool); model chgnet-0.3.0; strategies fps vs random; k 2" in result.output
    assert "target_force_mae 0.01" in result.output and "max_rounds 1" in result.output


def test_old_keys_are_read_and_the_warning_is_echoed(loop_file, tmp_path):
    spec = yaml.safe_load(loop_file.read_text())
    spec["finetune"] = spec.pop("hyperparameters")
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = invoke("loop", "run", str(path), "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"warning: {path}: 'finetune' is deprecated in loop files, write 'hyperparameters' instead" in result.output
    assert "loop cli-smoke: oracle (DFT-labelled pool)" in result.output


@pytest.fixture(scope="module")
def loop_run(loop_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("report")
    result = invoke("loop", "run", str(loop_file), "--output", str(output))
    assert result.exit_code == 0, result.output
    return result.output, output


@pytest.mark.mlip
def test_loop_run_prints_rounds_and_the_final_table(loop_run):
    text, output = loop_run
    pks = [int(pk) for pk in re.findall(r"ActiveLearningWorkChain pk (\d+)", text)]
    assert len(pks) == 2  # the loop and its random baseline
    loop, baseline = (orm.load_node(pk) for pk in pks)
    assert loop.inputs.strategy.value == "fps" and baseline.inputs.strategy.value == "random"
    assert baseline.base.extras.get("loop_baseline_for") == loop.uuid
    for node in (loop, baseline):
        summary = node.outputs.summary.get_dict()
        assert summary["n_labels"] == [0, 2]
        # each round was printed as it finished, with the numbers of the summary
        for row in summary["rounds"]:
            assert f"round {row['round']}: {row['n_labels']:3d} DFT labels" in text
            assert f"force MAE {row['force_mae']:.4f} eV/Å" in text
        # final table row: strategy, seed, pk, the curve, and the 0.01 eV/Å target not reached
        points = "  ".join(f"{n}:{e:.3f}" for n, e in zip(summary["n_labels"], summary["force_mae"]))
        assert re.search(rf"{node.inputs.strategy.value}\s+4\s+{node.pk}\s+{re.escape(points)}\s+not reached", text)
    assert "target 0.01 eV/Å: neither the loop nor random selection reached 0.01 within 2 labels" in text
    for name in ("index.html", "error_vs_labels.png", "selected_per_round.png", "rounds.csv"):
        assert (output / name).stat().st_size > 0
    rounds = (output / "rounds.csv").read_text().splitlines()
    assert len(rounds) == 1 + 4  # header + 2 rounds x 2 loops


@pytest.mark.mlip
def test_loop_show_lists_rounds_labels_error_and_time(loop_run):
    text, _ = loop_run
    pk = int(re.findall(r"ActiveLearningWorkChain pk (\d+)", text)[0])
    node = orm.load_node(pk)
    result = invoke("loop", "show", str(pk))
    assert result.exit_code == 0, result.output
    assert f"ActiveLearningWorkChain<{pk}> finished [0]" in result.output
    assert "strategy fps, k 2, seed 4" in result.output
    rows = node.base.extras.get("loop_progress")
    for row in rows:
        line = next(line for line in result.output.splitlines() if re.match(rf"\s+{row['round']} ", line))
        assert f"{row['force_mae']:.4f}" in line and f"{row['seconds']:.1f}" in line
        assert re.search(rf"\s{row['n_labels']}\s+{row['n_new']}\s", line)
    assert "stopped: max_rounds" in result.output


@pytest.mark.mlip
def test_loop_report_finds_the_baseline(loop_run, tmp_path):
    from aiida_reactmlip.cli.cmd_loop import write_loop_report_for

    text, _ = loop_run
    pk = int(re.findall(r"ActiveLearningWorkChain pk (\d+)", text)[0])
    files = write_loop_report_for(orm.load_node(pk), tmp_path / "r")
    page = files["index.html"].read_text()
    assert "random pk" in page and "fps" in page  # both loops' tables
    result = invoke("loop", "report", str(pk), "--output", str(tmp_path / "r2"))
    assert result.exit_code == 0, result.output
    assert "error_vs_labels.png" in result.output
    # `reactmlip report PK` dispatches loop nodes to the same report (cli/cmd_report.py)
    result = invoke("report", str(pk), "--output", str(tmp_path / "r3"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r3" / "error_vs_labels.png").is_file()


def test_show_refuses_a_node_that_is_not_a_loop():
    node = orm.Int(3).store()
    result = invoke("loop", "show", str(node.pk))
    assert result.exit_code != 0
    assert "is not a reactmlip.active_learning WorkChain" in result.output


def test_report_helpers_coordinate_and_relative_energy(tmp_path):
    from aiida_reactmlip.report.loop_report import (
        plot_error_vs_labels,
        plot_selected_per_round,
        pool_coordinate,
        relative_energy_per_atom,
    )

    infos = [{"scan_coordinate": 1.1}, {"scan_coordinate": 1.5}, {"scan_coordinate": 2.0}]
    coordinate, label = pool_coordinate(infos)
    np.testing.assert_allclose(coordinate, [1.1, 1.5, 2.0])
    assert label == "scan coordinate"
    assert pool_coordinate([{"a": 1}, {}])[1] == "pool frame index"
    # per atom, relative to the lowest of each group: group a (-10/2, -9/2), group b (-12/3 alone)
    rel = relative_energy_per_atom(np.array([-10.0, -9.0, -12.0]), np.array([2, 2, 3]), ["a", "a", "b"])
    np.testing.assert_allclose(rel, [0.0, 0.5, 0.0])
    path = plot_error_vs_labels({"loop": [([0, 2, 4], [0.3, 0.2, 0.1]), ([0, 2, 4], [0.3, 0.15, 0.12])],
                                 "random": [([0, 2, 4], [0.3, 0.25, 0.2])]}, tmp_path / "e.png", target=0.15)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = plot_selected_per_round(coordinate, rel, {1: [0], 2: [2]}, tmp_path / "s.png")
    assert path.stat().st_size > 1000
