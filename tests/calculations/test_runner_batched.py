"""Batched inference of the runner (CHGNet ``predict_structure``, SevenNet graph batches) against its ASE loop."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111

from aiida_reactmlip import runner
from aiida_reactmlip.frames import Frames, write_extxyz
from aiida_reactmlip.models import is_periodic_3d, load_calculator, locate_model_file

#: Agreement required between the batched path and the per-frame calculator loop.
ENERGY_PER_ATOM = 1e-5  # eV/atom
FORCE = 1e-4  # eV/Å
STRESS = 1e-6  # eV/Å^3


def frames() -> list:
    """A molecule without cell, a Cu(111)+O slab (pbc T,T,F), a compressed crystal and two periodic slabs:
    batches that mix sizes, kinds and cells."""
    molecule = Atoms("H2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, "O", 1.3, "fcc")
    slab.rattle(0.03, seed=3)
    crystal = bulk("Cu", "fcc", a=3.50, cubic=True)
    crystal.rattle(0.02, seed=4)
    periodic_slab = slab.copy()
    periodic_slab.pbc = True
    other = periodic_slab.copy()
    other.rattle(0.05, seed=5)
    return [molecule, slab, crystal, periodic_slab, other]


def split(forces: np.ndarray, images) -> list[np.ndarray]:
    return np.split(forces, np.cumsum([len(a) for a in images])[:-1])


def write_inputs(directory: pathlib.Path, images, **params) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_extxyz(Frames.from_atoms(images), directory / "frames.extxyz")
    path = directory / "input.json"
    path.write_text(json.dumps({"frames_file": "frames.extxyz", "device": "cpu", **params}))
    return path


@pytest.fixture(scope="module", params=["chgnet-0.3.0", "sevennet-0"])
def model(request):
    name = request.param
    family = "chgnet" if name.startswith("chgnet") else "sevenn"
    return name, family, load_calculator(family, locate_model_file(name))


def assert_agree(batched, loop, images):
    n_atoms = np.array([len(a) for a in images])
    e_b, f_b, s_b = batched
    e_l, f_l, s_l = loop
    assert np.abs((e_b - e_l) / n_atoms).max() < ENERGY_PER_ATOM
    assert np.abs(np.concatenate(f_b) - np.concatenate(f_l)).max() < FORCE
    assert np.array_equal(np.isnan(s_b), np.isnan(s_l))
    periodic = ~np.isnan(s_l[:, 0])
    assert np.abs(s_b[periodic] - s_l[periodic]).max() < STRESS


@pytest.mark.mlip
def test_batched_matches_the_calculator_loop(model):
    batch_size = 3  # a full batch and a partial one
    _, family, calc = model
    images = frames()
    loop = runner.evaluate_ase(calc, images, True)
    if family == "chgnet":
        batched = runner.evaluate_chgnet_batched(calc.model, images, batch_size, True)
    else:
        batched = runner.evaluate_sevenn_batched(calc.model, images, float(calc.cutoff), batch_size, True)
    assert_agree(batched, loop, images)
    # stress only where the frame is periodic in 3D (the bulk and the periodic slabs), as the loop does
    assert [not np.isnan(s[0]) for s in batched[2]] == [is_periodic_3d(a) for a in images]
    # the batched path leaves the model as its calculator needs it: frame by frame
    if family == "sevenn":
        atoms = images[1].copy()
        atoms.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(loop[0][1], abs=1e-5)


@pytest.mark.mlip
def test_runner_sevennet_batched_on_cpu_end_to_end(tmp_path, capsys):
    """``mode: batched`` on CPU for SevenNet through the runner (``auto`` picks its ASE loop on CPU, which
    measured faster): 5 frames in batches of 4, a full and a partial batch."""
    images = frames()
    input_file = write_inputs(tmp_path, images, family="sevenn", model_name="sevennet-0", mode="batched",
                              batch_size=4)
    assert runner.main(["evaluate", "--input", str(input_file)]) == runner.EXIT_OK
    out = capsys.readouterr().out
    assert "mode=batched" in out and "progress: 5/5 frames (100%)" in out
    predictions = np.load(tmp_path / "predictions.npz")
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert predictions["n_atoms"].tolist() == [len(a) for a in images]
    assert timing["mode"] == "batched" and timing["mode_requested"] == "batched"
    assert timing["batch_size"] == 4 and timing["n_frames"] == 5
    assert timing["peak_memory_mb"] > 100  # torch and the model alone take more
    calc = load_calculator("sevenn", locate_model_file("sevennet-0"))
    loop = runner.evaluate_ase(calc, images, True)
    assert_agree((predictions["energies"], split(predictions["forces"], images), predictions["stress"]), loop, images)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["exit_code"] == 0


def test_auto_mode_on_cpu_and_accelerators():
    assert set(runner.BATCHED_FAMILIES) == {"chgnet", "sevenn"}
    for family in runner.BATCHED_FAMILIES:
        assert runner.choose_mode("auto", family, "cuda") == "batched"
        assert runner.choose_mode("auto", family, "cuda:1") == "batched"
        assert runner.choose_mode("batched", family, "cpu") == "batched"
        assert runner.choose_mode("ase", family, "cuda") == "ase"
        expected = "batched" if family in runner.BATCHED_ON_CPU else "ase"
        assert runner.choose_mode("auto", family, "cpu") == expected
    assert runner.choose_mode("batched", "mace", "cuda") == "ase"
    assert runner.choose_mode("auto", "mace", "cuda") == "ase"
    assert runner.choose_mode("auto", "mace", "cpu") == "ase"
    # auto on CPU: small batches; an explicit batched keeps its size; on a GPU the size asked for
    assert runner.batch_size_for("auto", "batched", "cpu", 16) == runner.CPU_AUTO_BATCH_SIZE == 4
    assert runner.batch_size_for("auto", "batched", "cpu", 2) == 2
    assert runner.batch_size_for("batched", "batched", "cpu", 16) == 16
    assert runner.batch_size_for("auto", "batched", "cuda", 16) == 16
    assert runner.batch_size_for("auto", "ase", "cpu", 16) == 1
