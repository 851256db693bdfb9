"""`reactmlip systems list/show`: pure, no profile needed."""

import ase.io
import pytest
from click.testing import CliRunner

import aiida_reactmlip.cli.cmd_systems  # noqa: F401  registers `systems` on cmd_root
from aiida_reactmlip.cli.root import cmd_root

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_list_by_category():
    result = CliRunner().invoke(cmd_root, ["systems", "list", "--category", "crystal_growth"])
    assert result.exit_code == 0, result.output
    assert "si-adatom-si001" in result.output and "cu-adatom-cu111" in result.output
    assert "h-on-cu111" not in result.output
    assert "17 systems" in result.output


def test_show_writes_extxyz_and_cif(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        cmd_root, ["systems", "show", "h2-on-cu111", "-o", str(tmp_path), "--set", "n_images=3"]
    )
    assert result.exit_code == 0, result.output
    frames = ase.io.read(tmp_path / "h2-on-cu111.extxyz", index=":")
    assert [f.info["role"] for f in frames] == [
        "reference",
        "reference",
        "initial",
        "image",
        "image",
        "image",
        "final",
    ]
    assert frames[2].info["name"] == "h2-on-cu111-initial"
    result = runner.invoke(
        cmd_root, ["systems", "show", "o-on-rh100", "-o", str(tmp_path / "cif"), "--format", "cif"]
    )
    assert result.exit_code == 0, result.output
    assert "o-rh100-hollow" in result.output
    assert sorted(p.name for p in (tmp_path / "cif").iterdir()) == [
        "h2-gas.cif",
        "h2o-gas.cif",
        "o-rh100-bridge.cif",
        "o-rh100-hollow.cif",
        "o-rh100-top.cif",
        "rh100-slab.cif",
    ]
    assert len(ase.io.read(tmp_path / "cif" / "o-rh100-hollow.cif")) == 13


def test_show_errors():
    runner = CliRunner()
    result = runner.invoke(cmd_root, ["systems", "show", "h-on-au111"])
    assert result.exit_code == 1
    assert (
        "unknown reactive system 'h-on-au111'; available:" in result.output and "h-on-cu111" in result.output
    )
    result = runner.invoke(cmd_root, ["systems", "show", "h-on-cu111", "--set", "spacing=2"])
    assert result.exit_code == 1 and "does not take ['spacing']" in result.output
    result = runner.invoke(cmd_root, ["systems", "show", "h-on-cu111", "--set", 'sites=["hollow"]'])
    assert result.exit_code == 1 and "Cu(111) has no ['hollow'] site" in result.output
