"""The physics checks in the benchmark (leaderboard, outputs, HTML report) and in campaign files."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from ase import Atoms
from ase.calculators.emt import EMT

from aiida_reactmlip.report.tables import format_rows, headers
from aiida_reactmlip.specs.campaign import load_campaign
from aiida_reactmlip.workflows.benchmark import leaderboard_rows


def test_leaderboard_rows_take_the_physics_summary():
    summary = {
        "diatomic_pairs": 3,
        "diatomic_repulsive": 2,
        "diatomic_single_well": 1,
        "diatomic_max_force_energy_dev": 0.4,
        "nve_max_abs_drift": 0.52,
        "nve_max_spread": 0.8,
        "nve_bonds_broken": 0,
        "ramp_min_t_reached": 2438.5,
        "reaction_sign_agrees": 1,
        "reaction_with_dft": 1,
        "reaction_max_abs_error": 0.25,
    }
    rows = leaderboard_rows(
        {
            "metrics_a": {"uuid": "m", "model_name": "a", "force_mae": 0.1},
            "physics_a": {"uuid": "p", "summary": summary},
            "metrics_b": {"uuid": "n", "model_name": "b", "force_mae": 0.2},
        }
    )
    a, b = rows
    assert a["physics_uuid"] == "p" and a["physics_repulsive_pairs"] == 2 and a["physics_pairs"] == 3
    assert a["physics_ramp_min_t_reached"] == 2438.5 and "physics_uuid" not in b
    head = headers(rows)
    assert {
        "pairs repulsive",
        "NVE max abs drift (meV/atom/ps)",
        "ramp T reached (K)",
        "reaction sign as DFT",
    } <= set(head)
    cells = dict(zip(head, format_rows(rows)[0]))
    assert cells["pairs repulsive"] == "2/3" and cells["reaction sign as DFT"] == "1/1"
    assert cells["ramp T reached (K)"] == "2438"
    assert dict(zip(head, format_rows(rows)[1]))["pairs repulsive"] == "-"


def _campaign(tmp_path, **extra) -> pathlib.Path:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"name": "c", "systems": ["h2-dissociation"], "models": ["chgnet-0.3.0"], **extra})
    )
    return path


def test_campaign_physics_key(tmp_path):
    assert load_campaign(_campaign(tmp_path)).physics is None
    spec = load_campaign(
        _campaign(tmp_path, physics={"elements": ["H", "Cu"], "checks": ["diatomic"], "quick": True})
    )
    assert spec.physics == {"elements": ["H", "Cu"], "checks": ["diatomic"], "quick": True}
    assert load_campaign(_campaign(tmp_path, physics={})).physics == {}
    for bad, message in (
        ({"elemnts": ["H"]}, "unknown physics key(s) elemnts"),
        ({"checks": ["dance"]}, "unknown physics check(s)"),
        ([1], "'physics' must be a mapping"),
    ):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_campaign(_campaign(tmp_path, physics=bad))


def test_campaign_physics_inputs(tmp_path, aiida_profile):
    from aiida_reactmlip.specs.campaign import physics_inputs

    spec = load_campaign(_campaign(tmp_path, physics={"quick": True}))
    inputs = physics_inputs(spec, {"H"})  # the campaign's own elements
    settings = inputs["physics_settings"].get_dict()
    assert settings["elements"] == ["H"]
    assert [e["frame"] for e in settings["nve"]] == ["molecule-H2"]
    assert settings["nve"][0]["duration_ps"] == pytest.approx(0.1)  # quick: 10x shorter
    names = [info["name"] for info in inputs["physics_structures"].frame_info]
    assert names == ["molecule-H2"]
    again = physics_inputs(spec, {"H"})
    assert again["physics_structures"].pk == inputs["physics_structures"].pk  # stored once


def _h2_dataset():
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    frames = []
    for k, d in enumerate([0.7, 0.74, 0.8, 0.9]):
        atoms = Atoms("H2", positions=[[5, 5, 5], [5, 5, 5 + d]], cell=[10, 10, 10], pbc=True)
        atoms.calc = EMT()
        atoms.info.update({"energy": atoms.get_potential_energy(), "system": "h2", "name": f"h2-{d}"})
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
    return LabelledDatasetData.from_atoms(frames).store()


@pytest.mark.mlip
def test_benchmark_runs_the_physics_checks(codes, registry_models, tmp_path):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.report.benchmark_report import write_benchmark_report
    from aiida_reactmlip.workflows.benchmark import BenchmarkWorkChain

    physics = {"elements": ["H"], "distances": [0.6, 0.7, 0.75, 0.8, 1.0, 2.0], "num_threads": 1}
    inputs = {
        "dataset": _h2_dataset(),
        "models": {"chgnet": registry_models["chgnet-0.3.0"]},
        "runner_code": codes["runner"],
        "relax_minima": orm.Bool(False),
    }
    with pytest.raises(ValueError, match="physics_settings"):
        run_get_node(
            BenchmarkWorkChain, **inputs, physics_settings=orm.Dict({**physics, "nve": [{"frame": "x"}]})
        )
    results, node = run_get_node(BenchmarkWorkChain, **inputs, physics_settings=orm.Dict(physics))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    metrics = results["physics"]["chgnet"].get_dict()
    assert list(metrics["diatomic"]) == ["H-H"] and 0.72 < metrics["diatomic"]["H-H"]["r_min"] < 0.78
    row = results["leaderboard"]["rows"][0]
    assert row["physics_uuid"] == results["physics"]["chgnet"].uuid and row["physics_pairs"] == 1
    files = write_benchmark_report(node, tmp_path / "report")
    assert "physics-diatomic-chgnet-0.3.0.png" in files and "physics.md" in files
    html = files["index.html"].read_text()
    assert "Physics-aware checks" in html and "physics-diatomic-chgnet-0.3.0.png" in html
