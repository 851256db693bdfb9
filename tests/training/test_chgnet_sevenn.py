"""CHGNet and SevenNet fine-tuning (aiida_reactmlip.training.chgnet / .sevenn) on EMT labels.

Base models: the bundled CHGNet 0.3.0 and SevenNet-0 (11Jul2024) files.  Frames: a Cu(111) 2x2x2 slab
with H in the fcc hollow and a 13-atom Cu octahedron with H on top, each relaxed with EMT and rattled
(0.1 Å), labelled with EMT: forces of ~1-2 eV/Å that the universal models miss by 0.2-0.4 eV/Å.
One torch thread (the machine is shared), a few frames, a few epochs.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from ase import Atoms
from ase.build import add_adsorbate, fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.cluster import Octahedron
from ase.optimize import BFGS

from aiida_reactmlip.training import TrainingError, default_hyperparameters, finetune
from aiida_reactmlip.training.common import (
    UnknownElementError,
    apply_freeze,
    fit_elemental_shift,
    read_labels,
    sha256_file,
)

BASE = {"chgnet": "chgnet-0.3.0", "sevenn": "sevennet-0"}
#: the settings of the main runs: 10 training frames, 6 epochs
RUN = {"epochs": 6, "batch_size": 4, "seed": 7, "num_threads": 1}


# ------------------------------------------------------------------------------------------ data


def emt_label(atoms: Atoms) -> Atoms:
    atoms = atoms.copy()
    atoms.calc = EMT()
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    labelled = atoms.copy()
    labelled.calc = SinglePointCalculator(labelled, energy=energy, forces=forces)
    return labelled


@functools.cache
def _relaxed(kind: str) -> Atoms:
    if kind == "slab":
        atoms = fcc111("Cu", (2, 2, 2), a=3.61, vacuum=5.0)
        add_adsorbate(atoms, "H", 1.2, "fcc")
    else:
        atoms = Octahedron("Cu", 3, 1)
        atoms.append("H")
        atoms.positions[-1] = atoms.positions[np.argmax(atoms.positions[:, 2])] + [0.0, 0.0, 1.6]
        atoms.pbc, atoms.cell = False, None
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=0.02, steps=200)
    atoms.calc = None
    return atoms


def rattled(kind: str, n: int, seed: int, amplitude: float = 0.1) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = _relaxed(kind).copy()
        atoms.positions += rng.normal(0.0, amplitude, atoms.positions.shape)
        frames.append(emt_label(atoms))
    return frames


@pytest.fixture(scope="module")
def data() -> dict[str, list[Atoms]]:
    """Training (8 slab + 2 cluster), validation (2 + 1) and held-out test (3 + 2) frames, disjoint seeds."""
    return {
        "train": rattled("slab", 8, 0) + rattled("cluster", 2, 1),
        "valid": rattled("slab", 2, 2) + rattled("cluster", 1, 3),
        "test": rattled("slab", 3, 4) + rattled("cluster", 2, 5),
    }


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def base_file(family: str):
    from aiida_reactmlip.models.registry import locate_model_file

    return locate_model_file(BASE[family])


@functools.cache
def calculator(family: str, model_file: str):
    """load_calculator(family, model_file), built once per file (building a SevenNet model takes seconds)."""
    from aiida_reactmlip.models.loading import load_calculator

    return load_calculator(family, model_file)


def predictions(family: str, model_file, frames) -> tuple[np.ndarray, np.ndarray]:
    """Total energies (eV) and all forces (eV/Å) of ``frames`` through load_calculator(family, model_file)."""
    calc = calculator(family, str(model_file))
    energies, forces = [], []
    for atoms in frames:
        frame = atoms.copy()
        frame.calc = calc
        calc.reset()
        energies.append(frame.get_potential_energy())
        forces.append(frame.get_forces())
    return np.array(energies), np.concatenate(forces)


def force_mae(frames, forces) -> float:
    return float(np.mean(np.abs(np.concatenate([a.calc.results["forces"] for a in frames]) - forces)))


_RUNS: dict = {}


def run(family: str, data, tmp_path_factory):
    """The main fine-tuning of ``family`` (10 frames, 6 epochs), shared by the tests of this module."""
    if family not in _RUNS:
        workdir = tmp_path_factory.mktemp(f"{family}-main")
        _RUNS[family] = finetune(family, base_file(family), data["train"], data["valid"], workdir, **RUN)
    return _RUNS[family]


# ------------------------------------------------------------------------------- pure helpers


def test_fit_elemental_shift_recovers_offsets_and_takes_min_norm():
    # two compositions determine both per-element offsets exactly
    numbers = [[29] * 8 + [1], [29] * 13 + [1], [29] * 4]
    true = {29: -3.25, 1: 1.5}
    residuals = [sum(true[z] for z in frame) for frame in numbers]
    fitted = fit_elemental_shift(numbers, residuals)
    assert fitted == pytest.approx(true, abs=1e-10)
    # one composition: the minimum-norm solution still reproduces the residual of that composition
    single = fit_elemental_shift([[29, 29, 29, 1]], [-9.0])
    assert 3 * single[29] + single[1] == pytest.approx(-9.0)
    assert single[29] / single[1] == pytest.approx(3.0)  # min-norm: proportional to the counts


def test_read_labels_rejects_frames_without_forces_or_with_nan():
    good = emt_label(_relaxed("slab"))
    labels = read_labels([good])
    assert labels[0].forces.shape == (9, 3) and labels[0].energy == good.calc.results["energy"]

    no_forces = good.copy()
    no_forces.calc = SinglePointCalculator(no_forces, energy=1.0)
    with pytest.raises(TrainingError, match=r"training frame 1 .* has no forces"):
        read_labels([good, no_forces])
    unlabelled = good.copy()
    with pytest.raises(TrainingError, match="frame 0 .* has no energy"):
        read_labels([unlabelled], "validation")
    nan = good.copy()
    forces = good.calc.results["forces"].copy()
    forces[3, 1] = np.nan
    nan.calc = SinglePointCalculator(nan, energy=1.0, forces=forces)
    with pytest.raises(TrainingError, match=r"non-finite forces \(atom 3\)"):
        read_labels([nan])
    inf = good.copy()
    inf.calc = SinglePointCalculator(inf, energy=math.inf, forces=good.calc.results["forces"])
    with pytest.raises(TrainingError, match="non-finite energy"):
        read_labels([inf])


def test_apply_freeze_presets_and_prefixes():
    import torch

    model = torch.nn.Sequential()
    model.add_module("embed", torch.nn.Linear(2, 2))
    model.add_module("readout", torch.nn.Linear(2, 1))
    assert apply_freeze(model, "none", {}) == []
    assert apply_freeze(model, "graph", {"graph": ["embed"]}) == ["embed.weight", "embed.bias"]
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    with pytest.raises(TrainingError, match="'nonsense' matches no parameter"):
        apply_freeze(model, ["nonsense"], {})
    with pytest.raises(TrainingError, match="leaves no trainable parameter"):
        apply_freeze(model, ["embed", "readout"], {})


# ------------------------------------------------------------------------ errors before work


@pytest.mark.mlip
@pytest.mark.parametrize("family", ["chgnet", "sevenn"])
def test_bad_input_is_refused_before_training(family, data, tmp_path):
    from ase.data import chemical_symbols

    from aiida_reactmlip.models.loading import describe_model_file

    with pytest.raises(TrainingError, match="training set is empty"):
        finetune(family, base_file(family), [], data["valid"], tmp_path)
    with pytest.raises(TrainingError, match="unknown .* hyperparameter.*learnign_rate"):
        finetune(family, base_file(family), data["train"], [], tmp_path, learnign_rate=1e-3)
    with pytest.raises(TrainingError, match="epochs must be a positive integer"):
        finetune(family, base_file(family), data["train"], [], tmp_path, epochs=0)
    no_forces = data["train"][0].copy()
    no_forces.calc = SinglePointCalculator(no_forces, energy=data["train"][0].calc.results["energy"])
    with pytest.raises(TrainingError, match="validation frame 0 .* has no forces"):
        finetune(family, base_file(family), data["train"], [no_forces], tmp_path)

    # an element the base model was not trained on: named, with the frames it is in
    covered = describe_model_file(family, base_file(family))["elements"]
    alien = next(s for s in chemical_symbols[1:] if s not in covered)
    frame = data["train"][0].copy()
    frame[0].symbol = alien
    frame.calc = SinglePointCalculator(frame, energy=-1.0, forces=np.zeros((len(frame), 3)))
    with pytest.raises(UnknownElementError, match=rf"does not know element\(s\) {alien}: {alien} \(in the training"):
        finetune(family, base_file(family), [*data["train"][:2], frame], [], tmp_path, epochs=1)
    assert not any(tmp_path.glob("*finetuned*")), "no model file may be written for refused input"


# --------------------------------------------------------------------------- real fine-tuning


@pytest.mark.mlip
@pytest.mark.parametrize("family", ["chgnet", "sevenn"])
def test_finetune_writes_a_loadable_changed_model(family, data, tmp_path_factory):
    result = run(family, data, tmp_path_factory)
    assert result.model_file.is_file() and result.log_file.is_file()
    assert [row["epoch"] for row in result.history] == list(range(1, RUN["epochs"] + 1))
    for row in result.history:
        assert set(row) == {"epoch", "train_loss", "learning_rate", "valid_energy_mae", "valid_force_mae"}
        assert all(math.isfinite(v) for v in row.values())
    assert result.hyperparameters["seed"] == RUN["seed"]
    assert set(result.hyperparameters) >= set(default_hyperparameters(family))
    assert result.hyperparameters["targets"] == "ef"  # EMT frames without stress

    # the saved file loads like any model file; its validation errors are those the history reports
    # for the last epoch (the file is the final model, and the history numbers are in eV/atom, eV/Å)
    energies, forces = predictions(family, result.model_file, data["valid"])
    n_atoms = np.array([len(a) for a in data["valid"]])
    labels = np.array([a.calc.results["energy"] for a in data["valid"]])
    assert np.mean(np.abs(energies - labels) / n_atoms) == pytest.approx(result.history[-1]["valid_energy_mae"], abs=1e-5)
    assert force_mae(data["valid"], forces) == pytest.approx(result.history[-1]["valid_force_mae"], abs=1e-5)

    # the model changed: forces differ from the base model's on held-out frames
    _, base_forces = predictions(family, base_file(family), data["test"])
    _, tuned_forces = predictions(family, result.model_file, data["test"])
    assert np.max(np.abs(tuned_forces - base_forces)) > 0.02


@pytest.mark.mlip
@pytest.mark.parametrize("family", ["chgnet", "sevenn"])
def test_finetune_lowers_held_out_force_error(family, data, tmp_path_factory):
    """10 EMT frames, 6 epochs: the held-out force MAE drops by at least a quarter, the energy error too."""
    result = run(family, data, tmp_path_factory)
    test = data["test"]
    zero_e, zero_f = predictions(family, base_file(family), test)
    tuned_e, tuned_f = predictions(family, result.model_file, test)
    zero_mae, tuned_mae = force_mae(test, zero_f), force_mae(test, tuned_f)
    print(f"{family}: held-out force MAE {zero_mae:.4f} -> {tuned_mae:.4f} eV/Å "
          f"({100 * (1 - tuned_mae / zero_mae):.0f}% lower)")
    assert tuned_mae < 0.75 * zero_mae

    # energies relative to the lowest-energy slab frame (raw totals differ by a reference offset)
    labels = np.array([a.calc.results["energy"] for a in test])
    slab = [i for i, a in enumerate(test) if a.pbc.any()]
    ref = slab[int(np.argmin(labels[slab]))]

    def rel_error(pred):
        return np.mean([abs((pred[i] - pred[ref]) - (labels[i] - labels[ref])) for i in slab if i != ref])

    print(f"{family}: held-out relative energy MAE {rel_error(zero_e):.4f} -> {rel_error(tuned_e):.4f} eV")
    assert rel_error(tuned_e) < rel_error(zero_e)


@pytest.mark.mlip
@pytest.mark.parametrize("family", ["chgnet", "sevenn"])
def test_same_seed_gives_the_same_model_file(family, data, tmp_path_factory):
    """Two runs with the same seed (4 frames, 2 epochs, CPU, one thread): byte-identical model files."""
    import torch

    small = {"epochs": 2, "batch_size": 2, "seed": 3}
    runs = [
        finetune(family, base_file(family), data["train"][:4], [], tmp_path_factory.mktemp(f"{family}-seed-{i}"),
                 **{**RUN, **small})
        for i in range(2)
    ]
    assert runs[0].model_file != runs[1].model_file
    assert [r["train_loss"] for r in runs[0].history] == [r["train_loss"] for r in runs[1].history]
    # identical weights (hence identical predictions) and identical bytes
    states = [torch.load(r.model_file, map_location="cpu", weights_only=False) for r in runs]
    weights = [st["model_state_dict"] if family == "sevenn" else st["model"]["state_dict"] for st in states]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert sha256_file(runs[0].model_file) == sha256_file(runs[1].model_file)


@pytest.mark.mlip
def test_chgnet_without_validation_frames_and_frozen_graph(data, tmp_path):
    """No validation frames: the history has no validation columns. freeze="graph": only the readout moves."""
    import torch

    result = finetune("chgnet", base_file("chgnet"), data["train"][:3], [], tmp_path, epochs=2, freeze="graph",
                      seed=1, num_threads=1)
    assert [sorted(row) for row in result.history] == [["epoch", "learning_rate", "train_loss"]] * 2
    base = torch.load(base_file("chgnet"), map_location="cpu", weights_only=False)["model"]["state_dict"]
    tuned = torch.load(result.model_file, map_location="cpu", weights_only=False)["model"]["state_dict"]
    changed = {k.split(".")[0] for k in base if not torch.equal(base[k], tuned[k])}
    # the readout and the refitted elemental references moved, nothing of the graph layers
    assert changed == {"mlp", "readout_norm", "composition_model"}


@pytest.mark.mlip
def test_sevenn_frozen_graph_trains_only_the_readout(data, tmp_path):
    """freeze="graph" on SevenNet-0 (5 interaction blocks; the preset names up to 10): only the readout moves."""
    import torch

    result = finetune("sevenn", base_file("sevenn"), data["train"][:2], [], tmp_path, epochs=1, freeze="graph",
                      energy_reference="keep", seed=1, num_threads=1)
    base = torch.load(base_file("sevenn"), map_location="cpu", weights_only=False)["model_state_dict"]
    tuned = torch.load(result.model_file, map_location="cpu", weights_only=False)["model_state_dict"]
    changed = {k.split(".")[0] for k in base if not torch.equal(base[k], tuned[k])}
    assert changed == {"reduce_input_to_hidden", "reduce_hidden_to_energy"}


@pytest.mark.mlip
def test_chgnet_020_base_keeps_its_output_bias(data, tmp_path):
    """CHGNet 0.2.0 was trained with a bias in its output MLPs; the fine-tuned file must keep it."""
    import torch

    from aiida_reactmlip.models.registry import locate_model_file

    result = finetune("chgnet", locate_model_file("chgnet-0.2.0"), data["train"][:2], data["valid"][:1], tmp_path,
                      epochs=1, num_threads=1)
    saved = torch.load(result.model_file, map_location="cpu", weights_only=False)["model"]
    assert saved["model_args"]["mlp_out_bias"] is True
    assert any(".mlp_out.layers.1.bias" in key for key in saved["state_dict"])
    _, forces = predictions("chgnet", result.model_file, data["valid"][:1])
    assert force_mae(data["valid"][:1], forces) == pytest.approx(result.history[-1]["valid_force_mae"], abs=1e-5)


@pytest.mark.mlip
def test_chgnet_divergence_is_reported_as_such(data, tmp_path):
    from aiida_reactmlip.training import TrainingDivergedError

    with pytest.raises(TrainingDivergedError, match=r"training loss became (nan|inf) at epoch \d"):
        finetune("chgnet", base_file("chgnet"), data["train"][:2], [], tmp_path, epochs=3, learning_rate=1e8,
                 batch_size=1, num_threads=1)
    assert not (tmp_path / "chgnet_finetuned.pth.tar").exists()
