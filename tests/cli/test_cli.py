"""The `reactmlip` command (also `verdi data reactmlip`)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from aiida import orm
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from click.testing import CliRunner

from aiida_reactmlip.cli import cmd_root
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.frames import Frames, write_extxyz

BIN = pathlib.Path(sys.executable).parent


def invoke(*args):
    result = CliRunner().invoke(cmd_root, list(args), catch_exceptions=False, env={"COLUMNS": "200"})
    return result


def _frames():
    images = []
    for i, d in enumerate([0.7, 0.8, 0.9]):
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, d]], cell=[6, 6, 6], pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=-31.5 + 0.123456789012345 * i,
                                           forces=[[0, 0, 1.0 / 3.0 + i], [0, 0, -1.0 / 3.0 - i]])
        atoms.info["name"] = f"h2-{d}"
        images.append(atoms)
    return Frames.from_atoms(images)


def test_help_teaches_with_examples():
    for args in ([], ["dataset"], ["dataset", "import"], ["models", "list"], ["setup"], ["status"], ["demo"]):
        result = invoke(*args, "--help")
        assert result.exit_code == 0
        assert "Usage:" in result.output
    assert "Example" in invoke("dataset", "import", "--help").output
    assert "reactmlip setup" in invoke("--help").output


def test_verdi_data_reactmlip_is_the_same_group():
    result = subprocess.run([str(BIN / "verdi"), "data", "reactmlip", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "dataset" in result.stdout
    assert "Can I trust a universal MLIP" in result.stdout


def test_dataset_import_show_export_round_trip(tmp_path):
    source = tmp_path / "in.extxyz"
    write_extxyz(_frames(), source)
    result = invoke("dataset", "import", str(source), "--label", "h2-three")
    assert result.exit_code == 0, result.output
    pk = int(result.output.split("LabelledDatasetData<")[1].split(">")[0])
    node = orm.load_node(pk)
    assert node.label == "h2-three" and node.n_frames == 3
    shown = invoke("dataset", "show", str(pk))
    assert shown.exit_code == 0 and "h2-0.8" in shown.output and "-31.376543" in shown.output
    out = tmp_path / "out.extxyz"
    assert invoke("dataset", "export", str(pk), str(out)).exit_code == 0
    assert out.read_text() == source.read_text()
    assert node.frames.identical(_frames())


def test_malformed_extxyz_is_refused_with_line_number_and_nothing_stored(tmp_path):
    bad = tmp_path / "bad.extxyz"
    write_extxyz(_frames(), bad)
    lines = bad.read_text().splitlines()
    lines[6] = "H 0.0 zero 0.7 0 0 -0.3"  # a non-numeric coordinate in the second frame
    bad.write_text("\n".join(lines) + "\n")
    before = orm.QueryBuilder().append(LabelledDatasetData).count()
    result = CliRunner().invoke(cmd_root, ["dataset", "import", str(bad)])
    assert result.exit_code != 0
    assert "line 7" in result.output
    assert orm.QueryBuilder().append(LabelledDatasetData).count() == before


def test_dataset_show_refuses_wrong_node_type():
    node = orm.Int(5).store()
    result = CliRunner().invoke(cmd_root, ["dataset", "show", str(node.pk)])
    assert result.exit_code != 0
    assert "is a Int, not a LabelledDatasetData" in result.output


@pytest.mark.mlip
def test_models_list_and_status(codes, pseudo_family, registry_models):
    listing = invoke("models", "list")
    assert listing.exit_code == 0
    for name in ("chgnet-0.3.0", "sevennet-0", "mace-mp-0"):
        assert name in listing.output
    stored = invoke("models", "list", "--stored")
    assert "chgnet-0.3.0" in stored.output and registry_models["chgnet-0.3.0"].sha256[:16] in stored.output
    status = invoke("status")
    assert status.exit_code == 0
    assert "core.sqlite_dos" in status.output
    assert "pw@localhost" in status.output and "reactmlip-runner@localhost" in status.output
    assert "reactmlip/debian-pbe" in status.output


def test_setup_creates_then_finds_everything(tmp_path):
    """`reactmlip setup` on a fresh AIIDA_PATH: SQLite + no broker; a second run creates nothing."""
    env = {**os.environ, "AIIDA_PATH": str(tmp_path)}
    first = subprocess.run([str(BIN / "reactmlip"), "setup", "--profile-name", "fresh", "--models", ""],
                           env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == 7
    second = subprocess.run([str(BIN / "reactmlip"), "setup", "--profile-name", "fresh", "--models", ""],
                            env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout and second.stdout.count("exists") == 7
    config = json.loads((tmp_path / ".aiida" / "config.json").read_text())
    profile = config["profiles"]["fresh"]
    assert profile["storage"]["backend"] == "core.sqlite_dos"
    assert profile["process_control"]["backend"] is None
    assert profile["options"]["runner.poll.interval"] == 1
