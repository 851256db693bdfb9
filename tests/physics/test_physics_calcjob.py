"""The ``physics`` runner task, its settings check and the ``reactmlip.physics`` CalcJob (CHGNet, tiny sizes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aiida_reactmlip import runner
from aiida_reactmlip.frames import Frames, write_extxyz
from aiida_reactmlip.physics.protocol import default_plan
from aiida_reactmlip.runner import contract


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"elements": "H,Cu"}, "elements must be a list"),
        ({"nve": [{"temperatures_K": [300]}]}, "nve entry needs 'frame'"),
        ({"nve": [{"frame": "a", "temperature": 300}]}, "unknown nve key(s) temperature"),
        ({"nve": [{"frame": "a", "temperatures_K": [-5]}]}, "temperatures_K must be >= 0.0 K"),
        ({"nve": [{"frame": "a", "timestep_fs": 20}]}, "far too large"),
        ({"ramp": [{"frame": "a", "t_start": 900, "t_end": 300}]}, "must not be below t_start"),
        (
            {"ramp": [{"frame": "a", "allowed_breaks": ["HH"]}]},
            "allowed_breaks must be null or a list of pairs",
        ),
        ({"reactions": [{"name": "r", "initial": "a"}]}, "reactions entry needs 'final'"),
        ({"distances": [1.0, 2.0]}, "at least 3 positive numbers"),
        ({"bond_factor": 2.0, "break_factor": 1.5}, "break_factor (1.5) must be >= bond_factor (2.0)"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"sample_every": 0}, "sample_every must be >= 1"),
        ({"wobble": 1}, "unknown physics setting(s) wobble"),
    ],
)
def test_physics_settings_are_checked(settings, message):
    with pytest.raises(ValueError) as excinfo:
        contract.check_settings("physics", settings)
    assert message in str(excinfo.value)


def test_physics_settings_defaults_and_frame_names():
    settings = contract.check_settings(
        "physics",
        {
            "elements": ["H", " Cu", "H"],
            "distances": [2, 1, 0.5],
            "nve": [{"frame": "a"}],
            "ramp": [{"frame": "b"}, {"frame": "a"}],
            "reactions": [{"name": "r", "initial": "c", "final": "a", "dft_reaction_energy": -1}],
        },
    )
    assert settings["elements"] == ["H", "Cu"]
    assert settings["distances"] == [0.5, 1.0, 2.0]
    assert settings["nve"][0] == {
        "frame": "a",
        **{k: v for k, v in contract.PHYSICS_NVE_ENTRY.items() if k != "frame"},
    }
    assert settings["ramp"][0]["allowed_breaks"] is None and settings["ramp"][0]["t_end"] == 3000.0
    assert settings["reactions"][0]["dft_reaction_energy"] == -1.0
    assert contract.physics_frame_names(settings) == ["a", "b", "c"]
    assert contract.OUTPUT_FILES["physics"] == {"results_file": "physics.json", "arrays_file": "physics.npz"}


def tiny_plan(elements=("H", "Cu")) -> dict:
    """The default plan with MD shortened to a few steps and a 5-point diatomic grid."""
    plan = default_plan(list(elements))
    settings = plan["settings"]
    for entry in settings["nve"] + settings["ramp"]:
        entry["duration_ps"] = 10 * entry["timestep_fs"] / 1000.0  # 10 steps
    settings.update(distances=[0.6, 0.7, 0.75, 0.8, 1.0, 1.5, 3.0], relax_steps=3, num_threads=1)
    return plan


def write_input(directory, plan, **params) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    write_extxyz(Frames.from_atoms(plan["frames"]), directory / "frames.extxyz")
    payload = {
        "family": "chgnet",
        "model_name": "chgnet-0.3.0",
        "frames_file": "frames.extxyz",
        **plan["settings"],
        **params,
    }
    (directory / "input.json").write_text(json.dumps(payload))
    return str(directory / "input.json")


def test_runner_refuses_a_missing_frame(tmp_path):
    plan = tiny_plan()
    plan["settings"]["nve"][0]["frame"] = "no-such-frame"
    assert runner.main(["physics", "--input", write_input(tmp_path, plan)]) == runner.EXIT_INPUT
    status = json.loads((tmp_path / "status.json").read_text())
    assert "no frame named no-such-frame" in status["message"]


@pytest.mark.mlip
def test_runner_physics_chgnet(tmp_path):
    plan = tiny_plan()
    assert runner.main(["physics", "--input", write_input(tmp_path, plan)]) == runner.EXIT_OK
    results = json.loads((tmp_path / "physics.json").read_text())
    arrays = np.load(tmp_path / "physics.npz")
    assert set(results["diatomic"]) == {"H-H", "Cu-Cu", "H-Cu"}
    assert 0.72 < results["diatomic"]["H-H"]["r_min"] < 0.78
    np.testing.assert_array_equal(arrays["diatomic_H_H_distances"], plan["settings"]["distances"])
    assert [r["frame"] for r in results["nve"]] == ["molecule-H2"] * 2 + ["h-cu111-fcc"] * 2
    assert all(r["steps_done"] == 10 for r in results["nve"])
    assert len(arrays["nve_0_etot"]) == 2  # steps 0 and 10
    assert results["reactions"][0]["name"] == "h2-on-cu111"
    assert results["summary"]["nve_runs"] == 4 and results["model_name"] == "chgnet-0.3.0"
    assert results["n_evaluations"] > 0
    # CHGNet's own energies of the two end states give the reaction energy
    from aiida_reactmlip.models import load_calculator, locate_model_file

    calc = load_calculator("chgnet", locate_model_file("chgnet-0.3.0"))
    ends = {a.info["name"]: a.copy() for a in plan["frames"][2:]}
    for atoms in ends.values():
        atoms.calc = calc
    expected = (
        ends["h2-on-cu111-final"].get_potential_energy() - ends["h2-on-cu111-initial"].get_potential_energy()
    )
    assert results["reactions"][0]["reaction_energy"] == pytest.approx(expected, abs=2e-4)
    # the slab's fixed atoms (info fixed_atoms of the frame) stayed fixed through relaxation and MD
    assert results["nve"][2]["relax"]["steps"] <= 3


@pytest.fixture
def physics_entry_points(entry_points):
    from aiida.plugins.entry_point import get_entry_point_names

    from aiida_reactmlip.calculations.physics import PhysicsCheckCalculation
    from aiida_reactmlip.parsers.physics import PhysicsParser

    if "reactmlip.physics" not in get_entry_point_names("aiida.calculations"):
        entry_points.add(PhysicsCheckCalculation, "aiida.calculations:reactmlip.physics")
    if "reactmlip.physics" not in get_entry_point_names("aiida.parsers"):
        entry_points.add(PhysicsParser, "aiida.parsers:reactmlip.physics")
    return entry_points


@pytest.mark.mlip
def test_physics_calcjob(physics_entry_points, registry_models, codes):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.calculations.physics import PhysicsCheckCalculation
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    plan = tiny_plan()
    structures = LabelledDatasetData.from_atoms(plan["frames"]).store()
    results, node = run_get_node(
        PhysicsCheckCalculation,
        code=codes["runner"],
        model=registry_models["chgnet-0.3.0"],
        structures=structures,
        settings=orm.Dict(plan["settings"]),
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    metrics = results["metrics"].get_dict()
    assert set(metrics["diatomic"]) == {"H-H", "Cu-Cu", "H-Cu"}
    assert metrics["summary"]["nve_runs"] == 4
    curves, traces = results["curves"], results["traces"]
    assert "diatomic_H_Cu_energies" in curves.get_arraynames()
    assert curves.get_array("diatomic_H_H_energies").shape == (7,)
    assert traces.get_array("ramp_1_target_temperature")[0] == 300.0
    assert traces.base.attributes.get("units")["etot"] == "eV"
    # diatomic curves only: no structures needed
    only, node = run_get_node(
        PhysicsCheckCalculation,
        code=codes["runner"],
        model=registry_models["sevennet-0"],
        settings=orm.Dict(
            {"elements": ["O"], "distances": [1.0, 1.2, 1.4, 2.0], "fd_step": None, "num_threads": 1}
        ),
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert list(only["metrics"]["diatomic"]) == ["O-O"]
    assert only["metrics"]["diatomic"]["O-O"]["fd_method"] == "grid"
    assert "traces" not in only


@pytest.mark.mlip
@pytest.mark.parametrize(
    ("settings", "frames", "message"),
    [
        ({"elements": ["Og"]}, False, "does not cover element(s) Og"),
        ({"nve": [{"frame": "molecule-H2"}]}, False, "but no structures are given"),
        ({"nve": [{"frame": "nope"}]}, True, "no frame named nope"),
        ({}, False, "nothing to check"),
        ({"nve": [{"frame": "molecule-H2", "timestep_fs": -1}]}, True, "timestep_fs must be > 0 fs"),
    ],
)
def test_physics_calcjob_refuses_bad_inputs(
    physics_entry_points, registry_models, codes, settings, frames, message
):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.calculations.physics import PhysicsCheckCalculation
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    inputs = {
        "code": codes["runner"],
        "model": registry_models["chgnet-0.3.0"],
        "settings": orm.Dict(settings),
    }
    if frames:
        inputs["structures"] = LabelledDatasetData.from_atoms(tiny_plan()["frames"][:1]).store()
    with pytest.raises(ValueError) as excinfo:
        run_get_node(PhysicsCheckCalculation, **inputs)
    assert message in str(excinfo.value)
