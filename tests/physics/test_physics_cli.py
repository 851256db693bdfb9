"""``reactmlip physics``: refusals before anything runs, and one quick run with CHGNet 0.3.0."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aiida_reactmlip.cli import cmd_root
from aiida_reactmlip.physics import default_plan


def invoke(*args):
    return CliRunner().invoke(cmd_root, list(args), env={"COLUMNS": "200"})


def test_md_scale_shortens_every_md_run():
    plan = default_plan(["H", "Cu"], md_scale=0.1)
    assert [e["duration_ps"] for e in plan["settings"]["nve"]] == pytest.approx([0.1, 0.05])
    assert [e["duration_ps"] for e in plan["settings"]["ramp"]] == pytest.approx([0.1, 0.05])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["chgnet-0.3.0", "--elements", "H", "--checks", "diatomic,dance"],
            "unknown physics check(s) ['dance']",
        ),
        (["no-such-model", "--elements", "H"], "no-such-model"),
    ],
)
def test_physics_cli_refuses(args, message, aiida_profile):
    result = invoke("physics", *args)
    assert result.exit_code != 0
    assert message in result.output


@pytest.mark.mlip
def test_physics_cli_runs_and_writes(tmp_path, registry_models, codes):
    out = tmp_path / "physics"
    result = invoke(
        "physics", "chgnet-0.3.0", "--elements", "C,H", "--checks", "diatomic,reaction", "--output", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "physics-aware checks" in result.output and "ch4-dissociation" in result.output
    record = json.loads((out / "physics.json").read_text())
    entry = record["models"]["chgnet-0.3.0"]
    assert set(entry["metrics"]["diatomic"]) == {"H-H", "C-C", "H-C"}
    reaction = entry["metrics"]["reactions"][0]
    assert reaction["dft_reaction_energy"] == pytest.approx(3.448, abs=1e-3)
    assert reaction["sign_agrees"] is True  # stretching a C-H bond costs energy for DFT and for CHGNet
    assert (out / "physics-diatomic-chgnet-0.3.0.png").stat().st_size > 1000
    assert "| chgnet-0.3.0 |" in (out / "physics.md").read_text()
    from aiida import orm

    node = orm.load_node(entry["calcjob_uuid"])
    assert node.is_finished_ok and node.outputs.metrics.uuid == entry["metrics_uuid"]
