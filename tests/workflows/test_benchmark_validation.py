"""reactmlip.benchmark refuses, before any job runs, every input combination that cannot give a result."""

import io

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.frames import Frames
from aiida_reactmlip.workflows.benchmark import BenchmarkWorkChain


def dataset(n_frames=3, energies=None, forces_nan=False, infos=None, compositions=None):
    """H2 frames in a box (or the compositions given: lists of atomic numbers), labelled with numbers."""
    compositions = compositions or [[1, 1]] * n_frames
    numbers, positions, n_atoms = [], [], []
    for composition in compositions:
        numbers += composition
        positions += [[0.0, 0.0, 0.8 * k] for k in range(len(composition))]
        n_atoms.append(len(composition))
    energies = np.arange(len(compositions), dtype=float) * -0.1 if energies is None else np.asarray(energies, float)
    forces = np.full((len(numbers), 3), np.nan) if forces_nan else np.zeros((len(numbers), 3))
    frames = Frames(numbers=numbers, positions=positions, cells=[np.eye(3) * 8] * len(compositions),
                    pbc=[[True] * 3] * len(compositions), n_atoms=n_atoms, energies=energies, forces=forces,
                    info=infos or [{"name": f"f{k}"} for k in range(len(compositions))])
    return LabelledDatasetData(frames=frames)


@pytest.fixture(scope="module")
def model(aiida_profile):
    """A model node for validation only (never run): covers H, O, Cu."""
    return MlipModelData(file=io.BytesIO(b"not a model"), family="chgnet", model_name="validation-only",
                         elements=["H", "O", "Cu"], filename="validation.pt")


def refused(codes, model, match, **inputs):
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    inputs.setdefault("dataset", dataset())
    with pytest.raises(ValueError, match=match):
        run_get_node(BenchmarkWorkChain, models={"m": model}, runner_code=codes["runner"], **inputs)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


def test_frame_without_energy(codes, model):
    refused(codes, model, r"frame 1 \(f1\) has no DFT energy.*reactmlip label", dataset=dataset(energies=[0.0, np.nan, 1.0]))


def test_frames_without_forces(codes, model):
    refused(codes, model, r"frame 0 \(f0\) has no DFT forces", dataset=dataset(forces_nan=True))


def test_unknown_energy_reference(codes, model):
    refused(codes, model, r"metrics_settings: energy_reference 'absolute' is not one of relative:min, relative:mean, "
                          r"elemental_fit", metrics_settings=orm.Dict({"energy_reference": "absolute"}))


def test_unknown_metrics_setting(codes, model):
    refused(codes, model, r"metrics_settings: unknown key\(s\) referense", metrics_settings=orm.Dict({"referense": 1}))


def test_train_mask_with_a_relative_reference(codes, model):
    refused(codes, model, r"train_mask applies only to reference='elemental_fit'",
            metrics_settings=orm.Dict({"energy_reference": "relative:min", "train_mask": [True, False, True]}))


def test_train_mask_of_the_wrong_length(codes, model):
    refused(codes, model, r"train_mask", metrics_settings=orm.Dict({"energy_reference": "elemental_fit",
                                                                     "train_mask": [True, False]}))


def test_group_mixing_compositions(codes, model):
    infos = [{"name": "a", "group": "g"}, {"name": "b", "group": "g"}]
    refused(codes, model, r"mixes compositions.*`group`",
            dataset=dataset(compositions=[[1, 1], [8, 8]], infos=infos))


def test_dataset_and_structures_both(codes, model, pseudo_family):
    structure = orm.StructureData(cell=np.eye(3) * 8)
    structure.append_atom(position=(0, 0, 0), symbols="H")
    structure.append_atom(position=(0, 0, 0.74), symbols="H")
    refused(codes, model, r"give either a labelled `dataset` or `label.structures` to label with DFT, not both",
            label={"structures": {"h2": structure}, "pw_code": codes["pw"], "pseudo_family": orm.Str(pseudo_family.label)})


def test_unknown_evaluate_setting(codes, model):
    refused(codes, model, r"evaluate_settings: .*devise", evaluate_settings=orm.Dict({"devise": "cuda"}))


def test_one_frame_per_group_is_accepted(codes, model):
    """Nothing to compare relative energies with, but forces are still compared: not refused."""
    inputs = {"dataset": dataset(n_frames=1), "models": {"m": model}, "runner_code": codes["runner"]}
    assert BenchmarkWorkChain.spec().inputs.validate(inputs) is None
