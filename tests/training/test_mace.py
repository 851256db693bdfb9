"""MACE fine-tuning and training from scratch (aiida_reactmlip.training.mace), on EMT labels.

The base model is the project's fixture fixtures/models/mace-emt-small.model (made by
fixtures/make_mace_fixture.py from EMT labels of H, C, N, O, Cu, Pt); new frames are labelled with EMT
too, so "ground truth" is exact and cheap.  The training runs are small (a few frames, a few epochs)
and use one torch thread.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from ase.build import add_adsorbate, bulk, fcc100
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_reactmlip.training import TrainingError, finetune
from aiida_reactmlip.training import mace as mace_training

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE_MODEL = ROOT / "fixtures" / "models" / "mace-emt-small.model"
FIXTURE_SIDECAR = ROOT / "fixtures" / "models" / "mace-emt-small.json"

FAST = {"num_threads": 1, "batch_size": 4}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Predictions in this process on one thread (the machine is shared; 2 threads are much slower here)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def base_model() -> pathlib.Path:
    assert FIXTURE_MODEL.is_file(), f"{FIXTURE_MODEL} is missing: run python fixtures/make_mace_fixture.py"
    return FIXTURE_MODEL


def emt(atoms):
    atoms.calc = EMT()
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def cu100_o_frames(n: int, seed: int) -> list:
    """Cu(100) 2x2x2 slab with O in the hollow site, rattled: a facet the fixture model never saw."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        slab = fcc100("Cu", size=(2, 2, 2), a=3.61, vacuum=5.0)
        add_adsorbate(slab, "O", float(rng.uniform(1.0, 1.6)), "hollow")
        slab.positions += rng.normal(0.0, 0.08, size=slab.positions.shape)
        frames.append(emt(slab))
    return frames


def predictions(model_file, frames):
    from aiida_reactmlip.models.loading import load_calculator

    calc = load_calculator("mace", model_file)
    energies, forces = [], []
    for atoms in frames:
        frame = atoms.copy()
        frame.calc = calc
        energies.append(frame.get_potential_energy())
        forces.append(frame.get_forces())
    return np.array(energies), forces


def force_mae(model_file, frames) -> float:
    _, forces = predictions(model_file, frames)
    return float(np.mean(np.concatenate([np.abs(f - a.get_forces()).ravel() for f, a in zip(forces, frames)])))


# ---------------------------------------------------------------------------------------------
# fast checks: no training
# ---------------------------------------------------------------------------------------------


def test_fixture_sidecar_matches_model(base_model):
    """The JSON sidecar describes the committed file (sha256, elements, cutoff) and the model covers H C N O Cu Pt."""
    from aiida_reactmlip.models.loading import describe_model_file

    sidecar = json.loads(FIXTURE_SIDECAR.read_text())
    info = describe_model_file("mace", base_model)
    assert info["sha256"] == sidecar["sha256"]
    assert info["elements"] == ["H", "C", "N", "O", "Cu", "Pt"] == sidecar["elements"]
    assert info["cutoff"] == pytest.approx(sidecar["cutoff"]) == pytest.approx(5.0)
    assert base_model.stat().st_size < 2_000_000
    assert sidecar["n_train"] > 50
    assert 0 < sidecar["errors_valid"]["force_mae_eV_per_A"] < 1.0


def test_uncovered_element_fails_before_training(base_model, tmp_path):
    """Ni is not in the fixture model: a clear TrainingError naming it, and mace_run_train never starts."""
    frames = cu100_o_frames(3, seed=1)
    alloy = bulk("Ni", "fcc", a=3.52, cubic=True)
    alloy[0].symbol = "Cu"
    frames.append(emt(alloy))
    with pytest.raises(TrainingError, match=r"does not know element\(s\) Ni") as info:
        finetune("mace", base_model, frames, [], tmp_path / "run", **FAST, epochs=1)
    assert "training" in str(info.value)
    assert not (tmp_path / "run" / "mace_run_train.log").exists()
    assert not (tmp_path / "run" / "train.xyz").exists()


def test_bad_hyperparameters_fail_before_training(base_model, tmp_path):
    frames = cu100_o_frames(2, seed=2)
    with pytest.raises(TrainingError, match="E0s must be one of"):
        finetune("mace", base_model, frames, [], tmp_path, E0s="guess")
    with pytest.raises(TrainingError, match="needs a base model"):
        finetune("mace", None, frames, [], tmp_path, E0s="foundation")
    with pytest.raises(TrainingError, match="no energy given for element"):
        finetune("mace", None, frames, [], tmp_path, E0s={"Cu": -1.0})
    with pytest.raises(TrainingError, match="leaves none to train on"):
        finetune("mace", None, frames[:1], [], tmp_path, valid_fraction=0.5)
    with pytest.raises(TrainingError, match="unknown mace hyperparameter"):
        finetune("mace", base_model, frames, [], tmp_path, hidden_irreps="8x0e")
    unlabelled = frames[0].copy()
    with pytest.raises(TrainingError, match="no energy label"):
        finetune("mace", base_model, [unlabelled], [], tmp_path)
    assert not (tmp_path / "mace_run_train.log").exists()


def test_e0s_resolution(base_model):
    """'foundation' copies the base E0s; 'average' refits the training elements only; a dict overrides."""
    from aiida_reactmlip.training.common import read_labels

    base = mace_training.base_model_info(base_model)
    frames = cu100_o_frames(4, seed=3)
    labels = read_labels(frames)
    hp = dict(mace_training.DEFAULTS)
    foundation, mode = mace_training._resolve_e0s({**hp, "E0s": "foundation"}, base_model, base, frames, labels)
    assert mode == "foundation" and foundation == base["E0s"] and sorted(foundation) == [1, 6, 7, 8, 29, 78]
    average, _ = mace_training._resolve_e0s({**hp, "E0s": "average"}, base_model, base, frames, labels)
    assert average[1] == base["E0s"][1] and average[78] == base["E0s"][78]  # not in the frames: kept
    counts = np.array([[np.sum(lab.numbers == 8), np.sum(lab.numbers == 29)] for lab in labels])
    fitted = counts @ np.array([average[8], average[29]])
    assert np.allclose(fitted, [lab.energy for lab in labels], atol=0.5)  # one composition: exact fit
    given, mode = mace_training._resolve_e0s({**hp, "E0s": {"Cu": -1.5, "8": -4.0}}, None, None, frames, labels)
    assert mode == "dict" and given == {29: -1.5, 8: -4.0}


def test_read_results_history(tmp_path):
    """MACE's results file (eV units) -> one entry per epoch, epochs counted from 1, train loss averaged."""
    lines = [
        {"loss": 9.0, "mae_e_per_atom": 0.5, "mae_f": 1.5, "mode": "eval", "epoch": None},
        {"loss": 4.0, "mode": "opt", "epoch": 0},
        {"loss": 2.0, "mode": "opt", "epoch": 0},
        {"loss": 5.0, "mae_e_per_atom": 0.25, "mae_f": 0.75, "rmse_e_per_atom": 0.3, "rmse_f": 1.0,
         "mode": "eval", "epoch": 0},
        {"loss": 1.0, "mode": "opt", "epoch": 1},
        {"loss": 6.0, "mae_e_per_atom": 0.125, "mae_f": 0.5, "mode": "eval", "epoch": 1},
    ]
    path = tmp_path / "mace_run-0_train.txt"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    history, before = mace_training._read_results(path)
    assert before == {"valid_loss": 9.0, "valid_energy_mae": 0.5, "valid_force_mae": 1.5}
    assert [h["epoch"] for h in history] == [1.0, 2.0]
    assert history[0]["train_loss"] == pytest.approx(3.0)
    assert history[0]["valid_energy_mae"] == 0.25 and history[0]["valid_force_mae"] == 0.75
    assert history[1]["train_loss"] == 1.0 and history[1]["valid_force_mae"] == 0.5
    log = "INFO: Loading checkpoint\nINFO: Loaded Stage one model from epoch 0 for evaluation\n"
    assert mace_training._selected_epoch(log) == 1


def test_network_guard_stops_downloads():
    """The training subprocess refuses any non-local connection at once, with the marker finetune looks for."""
    code = (
        "from aiida_reactmlip.training.mace import _block_network; _block_network()\n"
        "import urllib.request; urllib.request.urlopen('https://github.com/ACEsuit/mace-mp', timeout=5)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert f"{mace_training.NETWORK_BLOCKED_MARKER}: attempted network access to github.com" in proc.stderr


# ---------------------------------------------------------------------------------------------
# training runs
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def naive_runs(base_model, tmp_path_factory):
    """The same naive fine-tuning (12 Cu(100)+O frames, 8 epochs, seed 3) run twice in different folders.

    Cu(100)+O is a facet the fixture model never saw; 3 validation frames pick the epoch, 6 more frames
    are held out for the test errors.
    """
    train = cu100_o_frames(12, seed=20)
    valid = cu100_o_frames(3, seed=21)
    test = cu100_o_frames(6, seed=22)
    runs = []
    for name in ("a", "b"):
        runs.append(finetune("mace", base_model, train, valid, tmp_path_factory.mktemp(f"naive-{name}"),
                             **FAST, epochs=8, seed=3, learning_rate=0.005))
    return runs, valid, test


def test_naive_finetune_gives_loadable_model_that_differs(base_model, naive_runs):
    from aiida_reactmlip.models.loading import describe_model_file

    (result, _), valid, _ = naive_runs
    assert result.model_file.is_file() and result.model_file.name == "mace.model"
    assert [h["epoch"] for h in result.history] == [float(e) for e in range(1, 9)]
    for entry in result.history:
        assert np.isfinite(entry["train_loss"]) and entry["train_loss"] > 0
        assert 0 < entry["valid_force_mae"] < 10 and 0 <= entry["valid_energy_mae"] < 10
    assert sum(h["selected"] for h in result.history) == 1.0
    assert result.hyperparameters["E0s_mode"] == "estimated" and result.hyperparameters["from_scratch"] is False
    assert result.hyperparameters["n_train"] == 12 and result.hyperparameters["n_valid"] == 3
    info = describe_model_file("mace", result.model_file)
    assert info["elements"] == ["H", "C", "N", "O", "Cu", "Pt"]  # keep_all_elements: nothing dropped
    assert info["cutoff"] == pytest.approx(5.0)
    base_e, base_f = predictions(base_model, valid)
    new_e, new_f = predictions(result.model_file, valid)
    assert np.max(np.abs(new_e - base_e)) > 1e-4
    assert max(np.max(np.abs(a - b)) for a, b in zip(new_f, base_f)) > 1e-4
    # the history's validation errors are the model's errors on the validation frames (selected epoch)
    selected = next(h for h in result.history if h["selected"])
    assert selected["valid_force_mae"] == pytest.approx(force_mae(result.model_file, valid), rel=1e-6)
    history_file = json.loads((result.model_file.parent / "history.json").read_text())
    assert history_file["before_training"]["valid_force_mae"] == pytest.approx(force_mae(base_model, valid), rel=1e-6)


def test_same_seed_same_model(naive_runs):
    """Two runs with the same inputs and seed (one thread, CPU): identical predictions and identical files."""
    (first, second), _, test = naive_runs
    e1, f1 = predictions(first.model_file, test)
    e2, f2 = predictions(second.model_file, test)
    assert np.array_equal(e1, e2)
    assert all(np.array_equal(a, b) for a, b in zip(f1, f2))
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in second.history]
    assert first.model_file.read_bytes() == second.model_file.read_bytes()


def test_finetune_lowers_heldout_force_mae(base_model, naive_runs):
    """On Cu(100)+O (a facet the fixture never saw) 12 labels lower the held-out force MAE by more than 30%."""
    (result, _), _, test = naive_runs
    before = force_mae(base_model, test)
    after = force_mae(result.model_file, test)
    print(f"held-out force MAE: base {before:.4f} eV/A, fine-tuned {after:.4f} eV/A ({after / before - 1:+.0%})")
    assert after < 0.7 * before


def test_from_scratch(tmp_path):
    """A MACE model trained from scratch covers exactly the training elements, with the asked cutoff."""
    from aiida_reactmlip.models.loading import describe_model_file

    rng = np.random.default_rng(5)
    frames = []
    for _ in range(6):
        atoms = bulk("Cu", "fcc", a=3.61 * rng.uniform(0.97, 1.03), cubic=True)
        atoms.positions += rng.normal(0.0, 0.05, size=atoms.positions.shape)
        frames.append(emt(atoms))
    result = finetune("mace", None, frames[:4], frames[4:], tmp_path, **FAST, epochs=2, r_max=4.0,
                      num_channels=8, max_L=0, max_ell=1, correlation=2, learning_rate=0.01)
    info = describe_model_file("mace", result.model_file)
    assert info["elements"] == ["Cu"] and info["cutoff"] == pytest.approx(4.0)
    assert result.hyperparameters["E0s_mode"] == "average" and result.hyperparameters["from_scratch"] is True
    assert len(result.history) == 2 and all(np.isfinite(h["valid_force_mae"]) for h in result.history)
    energies, _ = predictions(result.model_file, frames[4:])
    assert np.all(np.isfinite(energies))
