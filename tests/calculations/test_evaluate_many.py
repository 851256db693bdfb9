"""``reactmlip.evaluate_many``: several models on several datasets in one job, against one job per pair.

The runner part needs no AiiDA; the CalcJob part runs real CHGNet 0.3.0 and SevenNet-0 on localhost.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import add_adsorbate, fcc111

from aiida_reactmlip import runner
from aiida_reactmlip.calculations.evaluate import EvaluateCalculation, EvaluateManyCalculation
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.frames import Frames, write_extxyz
from aiida_reactmlip.models import load_calculator, locate_model_file
from aiida_reactmlip.runner import contract


def h2_frames() -> list[Atoms]:
    return [Atoms("H2", positions=[[0, 0, 0], [0, 0, d]], cell=[8, 8, 8], pbc=True) for d in (0.65, 0.74, 0.9)]


def slab_frames() -> list[Atoms]:
    frames = []
    for seed in (1, 2):
        slab = fcc111("Cu", size=(2, 2, 2), vacuum=5.0)
        add_adsorbate(slab, "H", 1.0, "fcc")
        slab.rattle(0.05, seed=seed)
        frames.append(slab)
    return frames


def labelled(images: list[Atoms]) -> list[Atoms]:
    """Copies with made-up labels (a dataset needs them; evaluation ignores them)."""
    out = []
    for atoms in images:
        atoms = atoms.copy()
        atoms.info["energy"] = -1.0
        atoms.arrays["forces"] = np.zeros((len(atoms), 3))
        out.append(atoms)
    return out


def reference(model_name: str, images: list[Atoms]):
    """(energies eV, forces eV/Å concatenated) of ``images`` through the model's ASE calculator."""
    family = "chgnet" if model_name.startswith("chgnet") else "sevenn"
    calc = load_calculator(family, locate_model_file(model_name))
    energies, forces = [], []
    for atoms in images:
        atoms = atoms.copy()
        atoms.calc = calc
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    return np.array(energies), np.concatenate(forces)


def write_many_input(directory, models: dict, frames: dict, **extra):
    for key, images in frames.items():
        write_extxyz(Frames.from_atoms(images), directory / f"{key}.extxyz")
    data = {"models": models, "frames": {key: f"{key}.extxyz" for key in frames}, **extra}
    path = directory / "input.json"
    path.write_text(json.dumps(data))
    return path


# ------------------------------------------------------------------------------------------- the runner


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"models": {}, "frames": {"a": "a.extxyz"}}, "'models' must be a non-empty object"),
        ({"models": {"m": {"family": "chgnet", "model_file": "m"}}, "frames": []}, "'frames' must be a non-empty"),
        ({"models": {"bad__key": {"family": "chgnet", "model_file": "m"}}, "frames": {"a": "a.extxyz"}},
         "models key 'bad__key' is invalid"),
        ({"models": {"m": {"model_file": "m"}}, "frames": {"a": "a.extxyz"}}, "model 'm' needs 'family'"),
        ({"models": {"m": {"family": "chgnet", "model_file": "m"}}, "frames": {"a": "a.extxyz"},
          "settings": {"mode": "fast"}}, "mode must be one of auto, batched, ase"),
        ({"models": {"m": {"family": "chgnet", "model_file": "m"}}, "frames": {"a": "a.extxyz"}, "extra": 1},
         "extra"),
    ],
)
def test_runner_refuses_a_bad_manifest(tmp_path, capsys, content, message):
    path = tmp_path / "input.json"
    path.write_text(json.dumps(content))
    assert runner.main(["evaluate_many", "--input", str(path)]) == runner.EXIT_INPUT
    assert message in capsys.readouterr().err
    assert json.loads((tmp_path / contract.STATUS_FILE).read_text())["exit_code"] == runner.EXIT_INPUT


@pytest.mark.mlip
def test_runner_evaluates_every_pair_with_each_model_loaded_once(tmp_path, capsys):
    chgnet = str(locate_model_file("chgnet-0.3.0"))
    models = {"first": {"family": "chgnet", "model_file": chgnet, "model_name": "chgnet-0.3.0"},
              "second": {"family": "chgnet", "model_file": chgnet}}
    frames = {"h2": h2_frames(), "slab": slab_frames()}
    path = write_many_input(tmp_path, models, frames, settings={"compute_stress": False})
    assert runner.main(["evaluate_many", "--input", str(path)]) == runner.EXIT_OK
    out = capsys.readouterr().out
    assert out.count("model loaded in") == 2  # once per model, not once per pair
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert timing["n_models"] == 2 and timing["n_frame_sets"] == 2
    assert sorted(timing["evaluations"]) == ["first.h2", "first.slab", "second.h2", "second.slab"]
    assert timing["models"]["first"]["model_name"] == "chgnet-0.3.0"
    assert timing["models"]["second"]["model_name"] == pathlib.Path(chgnet).name  # no name given: its file's
    for key, images in frames.items():
        energies, forces = reference("chgnet-0.3.0", images)
        for model in models:
            with np.load(tmp_path / contract.many_predictions_file(model, key)) as got:
                np.testing.assert_allclose(got["energies"], energies, atol=1e-4, rtol=0)
                np.testing.assert_allclose(got["forces"], forces, atol=1e-3, rtol=0)
                assert got["n_atoms"].tolist() == [len(a) for a in images]
                assert np.all(np.isnan(got["stress"]))  # compute_stress false
            assert timing["evaluations"][f"{model}.{key}"]["n_frames"] == len(images)


@pytest.mark.mlip
def test_runner_refuses_a_model_that_misses_an_element_of_any_frame_set(tmp_path, capsys):
    chgnet = str(locate_model_file("chgnet-0.3.0"))
    frames = {"h2": h2_frames(), "odd": [Atoms("OgH", positions=[[0, 0, 0], [0, 0, 2.0]])]}
    path = write_many_input(tmp_path, {"m": {"family": "chgnet", "model_file": chgnet, "model_name": "chgnet-0.3.0"}},
                            frames)
    assert runner.main(["evaluate_many", "--input", str(path)]) == runner.EXIT_ELEMENTS
    assert "model chgnet-0.3.0 does not cover element(s) Og" in capsys.readouterr().err
    assert not list(tmp_path.glob("predictions__*"))  # refused before any evaluation: nothing half-written


# ------------------------------------------------------------------------------------------- the CalcJob


@pytest.fixture(scope="module")
def two_datasets(aiida_profile):
    return {"h2": LabelledDatasetData.from_atoms(labelled(h2_frames())).store(),
            "slab": LabelledDatasetData.from_atoms(labelled(slab_frames())).store()}


@pytest.mark.mlip
def test_one_job_equals_one_job_per_pair(codes, registry_models, two_datasets):
    models = {"chgnet": registry_models["chgnet-0.3.0"], "sevennet": registry_models["sevennet-0"]}
    before = orm.QueryBuilder().append(orm.CalcJobNode).count()
    result, node = run_get_node(EvaluateManyCalculation, code=codes["runner"], models=models, datasets=two_datasets)
    assert node.is_finished_ok, node.exit_message
    assert orm.QueryBuilder().append(orm.CalcJobNode).count() == before + 1
    timing = result["timing"].get_dict()
    assert timing["n_models"] == 2 and len(timing["evaluations"]) == 4
    for model_key, model in models.items():
        for dataset_key, dataset in two_datasets.items():
            many = node.outputs.predictions[model_key][dataset_key]
            assert many.base.attributes.get("model_uuid") == model.uuid
            assert many.base.attributes.get("dataset_uuid") == dataset.uuid
            single, _ = run_get_node(EvaluateCalculation, code=codes["runner"], model=model, dataset=dataset)
            for array in ("energies", "forces", "n_atoms"):
                np.testing.assert_allclose(many.get_array(array), single["predictions"].get_array(array),
                                           atol=1e-6, rtol=0)
            np.testing.assert_allclose(many.get_array("stress"), single["predictions"].get_array("stress"),
                                       atol=1e-8, rtol=0, equal_nan=True)
    # the physics is there: H2 stretched to 0.9 Å is pulled together by both models
    for model_key in models:
        forces = node.outputs.predictions[model_key]["h2"].get_array("forces")
        assert forces[4, 2] > 0.5 and forces[5, 2] < -0.5


@pytest.mark.parametrize(
    ("models", "datasets", "message"),
    [
        ({}, ("h2",), "needs at least one model"),
        (("m",), (), "needs at least one model"),
        (("bad__key",), ("h2",), "models key 'bad__key' is invalid"),
    ],
)
def test_calcjob_refuses_bad_keys_before_running(codes, registry_models, two_datasets, models, datasets, message):
    model = registry_models["chgnet-0.3.0"]
    before = orm.QueryBuilder().append(orm.CalcJobNode).count()
    with pytest.raises(ValueError, match=message):
        run_get_node(EvaluateManyCalculation, code=codes["runner"], models={key: model for key in models},
                     datasets={key: two_datasets[key] for key in datasets})
    assert orm.QueryBuilder().append(orm.CalcJobNode).count() == before


def test_calcjob_refuses_a_model_that_misses_an_element(codes, tmp_path, two_datasets):
    from aiida_reactmlip.data.model import MlipModelData

    model_file = tmp_path / "tiny.model"
    model_file.write_bytes(b"not a real model, only its metadata matters here")
    cu_only = MlipModelData(file=str(model_file), family="mace", model_name="cu-only", elements=["Cu"]).store()
    with pytest.raises(ValueError, match=r"cu-only.*does not cover element\(s\) H present in datasets.h2"):
        run_get_node(EvaluateManyCalculation, code=codes["runner"], models={"m": cu_only}, datasets=two_datasets)
