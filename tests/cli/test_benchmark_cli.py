"""`reactmlip benchmark SOURCE --models ...`: bad inputs refused before anything is stored; a user's extxyz file
benchmarked end to end with real CHGNet 0.3.0 and SevenNet-0."""

import pathlib
import re

import ase.io
import numpy as np
import pytest
from aiida import orm
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from click.testing import CliRunner

from aiida_reactmlip.cli import cmd_root
from aiida_reactmlip.data.dataset import LabelledDatasetData

FIXTURE = pathlib.Path(__file__).parents[2] / "fixtures" / "datasets" / "general-reference-set.extxyz"


def invoke(*args, env=None):
    return CliRunner().invoke(cmd_root, list(args), catch_exceptions=False, env={"COLUMNS": "200", **(env or {})})


def node_count() -> int:
    return orm.QueryBuilder().append(orm.Node).count()


def refused(*args) -> str:
    """Invoke, assert a click error and an unchanged database; return the output."""
    before = node_count()
    result = invoke("benchmark", *args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: "), result.output
    assert node_count() == before
    return result.output


def labelled_file(tmp_path, symbols="Cu", name="cu.extxyz", energy=True):
    atoms = Atoms(symbols, positions=[[0, 0, 0]], cell=[[0, 1.8, 1.8], [1.8, 0, 1.8], [1.8, 1.8, 0]], pbc=True)
    atoms.info.update(name="frame", group="g")
    if energy:
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((1, 3)))
    path = tmp_path / name
    ase.io.write(path, [atoms], format="extxyz")
    return path


def test_missing_file(aiida_profile):
    assert "Error: file results/no-such.extxyz not found" in refused("results/no-such.extxyz")


def test_neither_file_node_nor_group(aiida_profile):
    assert "'no-such-group' is neither a file, nor a node pk/UUID, nor an AiiDA group" in refused("no-such-group")


def test_node_of_the_wrong_type(aiida_profile):
    node = orm.Dict({"a": 1}).store()
    output = refused(str(node.pk))
    assert f"node {node.pk} is a Dict, not a LabelledDatasetData" in output
    assert refused(node.uuid).count("is a Dict") == 1


def test_group_without_datasets(aiida_profile):
    orm.Group(label="benchmark-cli-empty").store()
    assert "group 'benchmark-cli-empty' holds no LabelledDatasetData" in refused("benchmark-cli-empty")


def test_unlabelled_file(aiida_profile, tmp_path):
    path = labelled_file(tmp_path, energy=False)
    output = refused(str(path))
    assert "frame 0 (frame) has no DFT energy" in output and "reactmlip label" in output


def test_unknown_model(aiida_profile, tmp_path):
    output = refused(str(labelled_file(tmp_path)), "--models", "chgnet-0.3.0,gpt-mlip")
    assert "--models: unknown model 'gpt-mlip'; available models:" in output and "sevennet-0" in output


def test_model_pk_of_the_wrong_type(aiida_profile, tmp_path):
    node = orm.Int(3).store()
    assert f"--models: node {node.pk} is a Int, not an MlipModelData" in refused(
        str(labelled_file(tmp_path)), "--models", str(node.pk))


@pytest.mark.mlip
def test_element_no_model_covers(registry_models, codes, tmp_path):
    output = refused(str(labelled_file(tmp_path, symbols="Og")), "--models", "chgnet-0.3.0,sevennet-0")
    assert "the dataset has elements Og, but model(s) do not cover them: chgnet-0.3.0 lacks Og; sevennet-0 lacks Og" \
        in output


@pytest.mark.mlip
def test_benchmark_a_user_file(registry_models, codes, tmp_path):
    """Four Cu bulk frames (1 atom, pw.x labels of the fixture set) benchmarked from a file, twice."""
    frames = [a for a in ase.io.read(FIXTURE, index=":") if a.info.get("group") == "cu-bulk"]
    assert len(frames) >= 3
    path = tmp_path / "cu_bulk_dft.extxyz"
    ase.io.write(path, frames, format="extxyz")
    out = tmp_path / "report"
    result = invoke("benchmark", str(path), "--models", "chgnet-0.3.0,sevennet-0", "--output", str(out),
                    env={"REACTMLIP_LOG_DIR": str(tmp_path / "logs")})
    print(result.output)
    assert result.exit_code == 0, result.output
    assert "Zero-shot error against pw.x" in result.output
    assert "CHGNet" in result.output or "chgnet-0.3.0" in result.output
    assert "[REPORT]" not in result.output
    report = pathlib.Path(re.search(r"report: (\S+)", result.output).group(1))
    assert report.exists() and report.parent == out.resolve()
    dataset = orm.load_node(int(re.search(r"dataset pk (\d+)", result.output).group(1)))
    assert isinstance(dataset, LabelledDatasetData) and dataset.n_frames == len(frames)
    assert dataset.base.extras.get("source_file") == str(path.resolve())
    assert "sha256" in dataset.description and dataset.label == path.name
    node = orm.load_node(int(re.search(r"BenchmarkWorkChain pk (\d+)", result.output).group(1)))
    assert node.is_finished_ok and set(node.outputs.metrics) == {"chgnet_0_3_0", "sevennet_0"}

    # The same file again is the same dataset node (stored once), benchmarked again.
    result = invoke("benchmark", str(path), "--models", "sevennet-0", "--no-relax-minima", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert int(re.search(r"dataset pk (\d+)", result.output).group(1)) == dataset.pk


@pytest.mark.mlip
def test_one_frame_gets_force_errors_and_a_note(registry_models, codes, tmp_path):
    """A single labelled frame: no relative energy to compare, but the run is not wasted (issue 14, item 4)."""
    (frame,) = [a for a in ase.io.read(FIXTURE, index=":") if a.info.get("name") == "cu-bulk-strain--0.020"]
    path = tmp_path / "one.extxyz"
    ase.io.write(path, [frame], format="extxyz")
    result = invoke("benchmark", str(path), "--models", "sevennet-0", "--no-relax-minima", "--output",
                    str(tmp_path / "r"))
    print(result.output)
    assert result.exit_code == 0, result.output
    assert "note: no energy error: every group has one frame only" in result.output
    node = orm.load_node(int(re.search(r"BenchmarkWorkChain pk (\d+)", result.output).group(1)))
    metrics = node.outputs.metrics["sevennet_0"].get_dict()
    assert metrics["force_mae"] >= 0 and "energy_mae" not in metrics
