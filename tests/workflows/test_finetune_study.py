"""reactmlip.finetune_study: splits, nested budgets, fine-tunes, held-out and general-set metrics, learning curves."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.specs.study import load_study
from aiida_reactmlip.workflows.finetune_study import (
    FinetuneStudyWorkChain,
    nested_budget_indices,
    resolve_hyperparameters,
)


def emt_pool(n_groups: int = 6, per_group: int = 3, seed: int = 0, with_h: bool = True) -> list:
    """A Cu(111) slab (+ H) rattled: ``n_groups`` groups of ``per_group`` frames, EMT labels (eV, eV/Å)."""
    rng = np.random.default_rng(seed)
    images = []
    for g in range(n_groups):
        slab = fcc111("Cu", size=(2, 2, 2), vacuum=5.0)
        if with_h:
            slab.append("H")
            slab.positions[-1] = slab.positions[4] + [0.0, 0.0, 1.6 + 0.1 * g]
        slab.pbc = True
        for k in range(per_group):
            atoms = slab.copy()
            atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
            atoms.calc = EMT()
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
            atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
            atoms.info.update({"group": f"g{g}", "system": "emt-cu-h", "name": f"g{g}-{k}"})
            images.append(atoms)
    return images


def count_processes() -> int:
    return orm.QueryBuilder().append(orm.ProcessNode).count()


def test_hyperparameters_of_a_model_override_those_of_its_family():
    given = {"chgnet": orm.Dict({"epochs": 5, "learning_rate": 1e-4}), "chgnet_b": {"epochs": 9}}
    assert resolve_hyperparameters("chgnet_b", "chgnet", given, 3) == {"epochs": 9, "learning_rate": 1e-4, "seed": 3}
    assert resolve_hyperparameters("chgnet_a", "chgnet", given, 3)["epochs"] == 5
    assert resolve_hyperparameters("x", "chgnet", {"x": {"seed": 11}}, 3) == {"seed": 11}


def test_nested_budget_indices_are_nested_seeded_and_in_the_provenance(aiida_profile):
    pool = LabelledDatasetData.from_atoms(emt_pool(5, 4)).store()
    parameters = orm.Dict({"seed": 4, "group_by": "auto"})
    first = nested_budget_indices(pool, orm.List([0, 3, 5, 12]), parameters)
    again = nested_budget_indices(pool, orm.List([0, 3, 5, 12]), orm.Dict({"seed": 4, "group_by": "auto"}))
    assert set(first) == {"budget_3", "budget_5", "budget_12"}  # budget 0: the zero-shot model, no subset
    small, middle, large = (set(first[f"budget_{b}"].get_list()) for b in (3, 5, 12))
    assert len(small) == 3 and len(middle) == 5 and len(large) == 12
    assert small < middle < large
    assert first["budget_12"].get_list() == again["budget_12"].get_list()
    groups = [pool.frame_info[i]["group"] for i in small]
    assert len(set(groups)) == 3  # a small budget spreads over groups
    creator = first["budget_5"].creator
    assert creator.inputs.training.uuid == pool.uuid and creator.inputs.budgets.get_list() == [0, 3, 5, 12]


# --------------------------------------------------------------------------- bad input, before any job


@pytest.fixture(scope="module")
def pool():
    return LabelledDatasetData.from_atoms(emt_pool(6, 3)).store()


def _model(family="chgnet", elements=("Cu", "H"), name="test-model"):
    from aiida_reactmlip.models import locate_model_file

    return MlipModelData(file=locate_model_file("chgnet-0.3.0"), family=family, model_name=name,
                         elements=list(elements)).store()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budgets": [0, 5, 13]}, "label budget 13 exceeds the training split: 12 of the pool's 18 frames"),
        ({"budgets": [0, 5, 5]}, "label budgets contain duplicates"),
        ({"budgets": [-1, 5]}, "label budgets must be whole numbers >= 0, got [-1]"),
        ({"budgets": []}, "`budgets` is empty"),
        ({"elements": ["Cu"]}, "does not cover element(s) H of the labelled pool"),
        ({"general_elements": ["Cu", "H", "O"]}, "does not cover element(s) O of the general set"),
        ({"family": "mattersim"}, "family 'mattersim', which has no fine-tuning support"),
        ({"hyperparameters": {"chgnet": {"epoch": 2}}}, "(m): unknown chgnet hyperparameter(s) epoch"),
        ({"hyperparameters": {"sevenn": {"epochs": 2}}}, "hyperparameters given for sevenn, which is neither"),
        ({"split": {"test_fraction": 0.0, "validation_fraction": 0.2}}, "the test split of the labelled pool"),
        ({"split": {"test_fraction": 0.2, "seed": 1, "sets": 3}}, "unknown split parameter(s) sets"),
        ({"models": {}}, "no base models given"),
    ],
)
def test_bad_study_is_refused_before_any_job(pool, codes, change, message):
    inputs = {
        "base_models": {"m": _model(change.get("family", "chgnet"), change.get("elements", ("Cu", "H")))},
        "dataset": pool,
        "budgets": orm.List(change.get("budgets", [0, 5, 10])),
        "split_parameters": orm.Dict(change.get("split", {"test_fraction": 0.2, "validation_fraction": 0.1,
                                                          "seed": 0})),
        "runner_code": codes["runner"],
    }
    if "models" in change:
        inputs["base_models"] = change["models"]
    if "general_elements" in change:
        symbols = change["general_elements"]
        from ase import Atoms

        atoms = Atoms(symbols, positions=np.arange(3 * len(symbols)).reshape(-1, 3), cell=[8, 8, 8], pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((len(symbols), 3)))
        inputs["general_set"] = LabelledDatasetData.from_atoms([atoms]).store()
        inputs["base_models"] = {"m": _model(elements=("Cu", "H"))}
    if "hyperparameters" in change:
        inputs["hyperparameters"] = {k: orm.Dict(v) for k, v in change["hyperparameters"].items()}
    before = count_processes()
    with pytest.raises(ValueError) as excinfo:
        run_get_node(FinetuneStudyWorkChain, **inputs)
    assert message in str(excinfo.value)
    assert count_processes() == before


def test_study_file_errors_name_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndataset: reactive-pool\nmodels: [chgnet-0.3.0]\nbudgets: [0, 5]\nepochs: 3\n")
    with pytest.raises(ValueError, match="unknown key.*epochs"):
        load_study(path)
    path.write_text("name: x\ndataset: reactive-pool\nmodels: [no-such-model]\nbudgets: [0, 5]\n")
    with pytest.raises(KeyError, match="no-such-model"):
        load_study(path)
    path.write_text("name: x\ndataset: reactive-pool\nmodels: [chgnet-0.3.0]\nbudgets: [0, 5, 5]\n")
    with pytest.raises(ValueError, match="duplicates"):
        load_study(path)


def test_shipped_study_files_load():
    import pathlib

    files = sorted((pathlib.Path(__file__).parents[2] / "workchains").glob("finetune-*.yaml"))
    assert files, "workchains/finetune-*.yaml: at least one study campaign"
    for file in files:
        spec = load_study(file)
        assert 0 in spec.budgets and max(spec.budgets) > 0
        assert spec.model_keys()


# ------------------------------------------------------------------- end to end: real CHGNet 0.3.0


def fixture_node(name: str) -> LabelledDatasetData:
    """A DFT-labelled fixture dataset (fixtures/datasets, real pw.x) as a stored node."""
    from aiida_reactmlip.fixture_data import fixture_path
    from aiida_reactmlip.specs.datasets import stored_fixture_dataset

    return stored_fixture_dataset(fixture_path(name))


@pytest.fixture(scope="module")
def small_study(registry_models, codes):
    """CHGNet 0.3.0 x budgets 0 and 4, two epochs, on the real pw.x CH4 pool, with the general set."""
    _, node = run_get_node(
        FinetuneStudyWorkChain,
        base_models={"chgnet": registry_models["chgnet-0.3.0"]},
        dataset=fixture_node("ch4-dissociation-pool"),
        general_set=fixture_node("general-reference-set"),
        budgets=orm.List([0, 4]),
        # split seed 7 holds out the library's C-H bond scan (scan-ch4-h1) with two rattle groups
        split_parameters=orm.Dict({"test_fraction": 0.25, "validation_fraction": 0.15, "seed": 7}),
        seed=orm.Int(5),
        hyperparameters={"chgnet": orm.Dict({"epochs": 2, "batch_size": 4, "learning_rate": 3e-4, "num_threads": 1})},
        runner_code=codes["runner"],
        max_concurrent_jobs=orm.Int(2),
    )
    return node


def _force_mae(dataset, predictions) -> float:
    return float(np.mean(np.abs(predictions.get_array("forces") - dataset.get_array("forces"))))


@pytest.mark.mlip
def test_study_end_to_end_numbers_and_provenance(small_study, registry_models):
    node = small_study
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    base = registry_models["chgnet-0.3.0"]
    pool = node.inputs.dataset
    split = node.outputs.split.get_dict()
    test_set, training = node.outputs.test_set, node.outputs.training_sets.budget_4
    model = node.outputs.models.chgnet.budget_4
    assert test_set.n_frames == len(split["test"]) > 0 and training.n_frames == 4

    # provenance: pool -> split -> select_frames -> fine-tune -> model; metrics from the model's predictions
    assert test_set.creator.process_type.endswith("reactmlip.split_dataset")
    assert test_set.creator.inputs.dataset.uuid == pool.uuid
    selector = training.creator
    assert selector.inputs.dataset.uuid == split_train_uuid(test_set.creator)
    job = model.creator
    assert job.process_type == "aiida.calculations:reactmlip.finetune"
    assert job.inputs.training.uuid == training.uuid and job.inputs.base_model.uuid == base.uuid
    assert (model.base_model_uuid, model.training_dataset_uuid) == (base.uuid, training.uuid)
    assert job.inputs.parameters["seed"] == 5 and job.inputs.parameters["epochs"] == 2
    assert model.sha256 != base.sha256

    # no leakage: the training frames are train-split frames, from groups absent from the test split
    train_groups = {pool.frame_info[i]["group"] for i in split["train"]}
    test_groups = {info["group"] for info in test_set.frame_info}
    assert {info["group"] for info in training.frame_info} <= train_groups
    assert not train_groups & test_groups

    # every number of the learning curve is the one computed from the stored predictions
    curve = node.outputs.learning_curve.get_dict()["models"]["chgnet"]
    assert curve["budgets"] == [0, 4]
    forces, general_forces = [], []
    for budget, model_uuid in ((0, base.uuid), (4, model.uuid)):
        metrics = node.outputs.metrics.chgnet[f"budget_{budget}"]
        general = node.outputs.general_metrics.chgnet[f"budget_{budget}"]
        assert metrics["model_uuid"] == model_uuid == general["model_uuid"]
        predictions = metrics.creator.inputs.predictions
        # one reactmlip.evaluate_many job per (model, budget) evaluated the test split and the general set
        job = predictions.creator
        assert job.process_type == "aiida.calculations:reactmlip.evaluate_many"
        assert job.inputs.models.model.uuid == model_uuid
        assert job.inputs.datasets.test.uuid == test_set.uuid
        assert job.inputs.datasets.general.uuid == node.inputs.general_set.uuid
        assert general.creator.inputs.predictions.creator.uuid == job.uuid
        forces.append(_force_mae(test_set, predictions))
        general_forces.append(_force_mae(node.inputs.general_set, general.creator.inputs.predictions))
        assert metrics["force_mae"] == pytest.approx(forces[-1], rel=1e-9)
    assert curve["test"]["force_mae"] == pytest.approx(forces, rel=1e-9)
    assert curve["gain"]["force_mae"][1] == pytest.approx((forces[0] - forces[1]) / forces[0], rel=1e-9)
    assert curve["general"]["force_mae"] == pytest.approx(general_forces, rel=1e-9)
    assert curve["forgetting"]["force_mae_change"][1] == pytest.approx(general_forces[1] - general_forces[0],
                                                                        rel=1e-9)
    assert forces[0] != pytest.approx(forces[1], rel=1e-6)  # two epochs changed the model's forces
    # the held-out bond scan gives the reactive error: the C-H stretch energy E(2.0 Å) - E(minimum), by hand
    infos = test_set.frame_info
    scan = [i for i, info in enumerate(infos) if info["group"] == "scan-ch4-h1"]
    assert len(scan) == 9
    end = max(scan, key=lambda i: infos[i]["scan_coordinate"])
    dft = test_set.get_array("energies")
    minimum = min(scan, key=lambda i: dft[i])
    for k, budget in enumerate((0, 4)):
        model_e = node.outputs.metrics.chgnet[f"budget_{budget}"].creator.inputs.predictions.get_array("energies")
        error = (model_e[end] - model_e[minimum]) - (dft[end] - dft[minimum])
        scans = node.outputs.scan_metrics.chgnet[f"budget_{budget}"].get_dict()
        assert set(scans["scans"]) == {"scan-ch4-h1"}
        assert scans["scans"]["scan-ch4-h1"]["stretch_energy_error_eV"] == pytest.approx(error, rel=1e-9)
        assert curve["test"]["scan_energy_mae"][k] == pytest.approx(abs(error), rel=1e-9)
    assert 2.0 < dft[end] - dft[minimum] < 6.0  # pw.x: stretching C-H to 2 Å costs a few eV


def split_train_uuid(split_call) -> str:
    return split_call.base.links.get_outgoing(link_label_filter="train").one().node.uuid


@pytest.mark.slow
@pytest.mark.mlip
def test_full_study_chgnet_gains_and_reproducible_model(codes):
    """The shipped study (workchains/finetune-ch4-dissociation.yaml: CHGNet 0.3.0, SevenNet-0 and the MACE
    fixture x 0, 5, 10, 20 pw.x labels): CHGNet fine-tuned on at most 20 labels lowers the held-out force
    MAE by at least 30 % and the energy error too; the same fine-tune run again gives the same file."""
    import pathlib

    from aiida_reactmlip.calculations.finetune import FinetuneCalculation
    from aiida_reactmlip.specs.study import run_study

    spec = load_study(pathlib.Path(__file__).parents[2] / "workchains" / "finetune-ch4-dissociation.yaml")
    node = run_study(spec)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    curves = node.outputs.learning_curve.get_dict()["models"]
    for key, entry in curves.items():
        print(key, entry["budgets"], "F", entry["test"]["force_mae"], "E", entry["test"]["energy_mae_per_atom"],
              "gain", entry["gain"], "forgetting", entry["forgetting"])
    chgnet = curves["chgnet_0_3_0"]
    best = [i for i, b in enumerate(chgnet["budgets"]) if 0 < b <= 20 and chgnet["gain"]["force_mae"][i] >= 0.30]
    assert best, f"CHGNet force-MAE gains {chgnet['gain']['force_mae']} never reach 30 % with <= 20 labels"
    assert all(chgnet["gain"]["energy_mae_per_atom"][i] > 0 for i in best)
    job = node.outputs.models.chgnet_0_3_0.budget_5.creator
    inputs = {name: job.inputs[name] for name in ("code", "base_model", "training", "validation", "parameters")}
    again, _ = run_get_node(FinetuneCalculation, **inputs)
    assert again["model"].sha256 == node.outputs.models.chgnet_0_3_0.budget_5.sha256
