"""Tests of ``reactmlip-runner`` (no AiiDA). Tests marked ``mlip`` load real pretrained models."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111

from aiida_reactmlip import runner
from aiida_reactmlip.frames import Frames, write_extxyz
from aiida_reactmlip.models import is_periodic_3d, load_calculator, locate_model_file

RUNNER_SCRIPT = pathlib.Path(sys.executable).parent / "reactmlip-runner"


def make_images() -> list[Atoms]:
    """Frames of different kinds and sizes: molecule (no cell), slab (pbc T,T,F), bulk (3D, compressed)."""
    molecule = Atoms("H2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, "O", 1.3, "fcc")
    slab.rattle(0.03, seed=3)
    crystal = bulk("Cu", "fcc", a=3.50, cubic=True)  # compressed from ~3.63 A: positive pressure
    crystal.rattle(0.02, seed=4)
    periodic_slab = slab.copy()
    periodic_slab.pbc = True  # the way plane-wave DFT sees a slab: periodic, with vacuum
    return [molecule, slab, crystal, periodic_slab]


def write_inputs(directory: pathlib.Path, images, **params) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_extxyz(Frames.from_atoms(images), directory / "frames.extxyz")
    data = {"frames_file": "frames.extxyz", "device": "cpu", "batch_size": 16, "compute_stress": True,
            "output_file": "predictions.npz", **params}
    path = directory / "input.json"
    path.write_text(json.dumps(data))
    return path


def check_outputs(directory: pathlib.Path, images, mode: str):
    predictions = np.load(directory / "predictions.npz")
    n_total = sum(len(a) for a in images)
    assert predictions["energies"].shape == (len(images),)
    assert predictions["forces"].shape == (n_total, 3)
    assert predictions["stress"].shape == (len(images), 6)
    assert predictions["n_atoms"].tolist() == [len(a) for a in images]
    assert np.all(np.isfinite(predictions["energies"])) and np.all(np.isfinite(predictions["forces"]))
    periodic = np.array([is_periodic_3d(a) for a in images])
    assert np.all(np.isnan(predictions["stress"][~periodic]))
    assert np.all(np.isfinite(predictions["stress"][periodic]))
    timing = json.loads((directory / "timing.json").read_text())
    assert timing["mode"] == mode
    assert timing["n_frames"] == len(images) and timing["n_atoms_total"] == n_total
    for key in ("model_load_seconds", "evaluation_seconds", "seconds_per_frame"):
        assert timing[key] > 0
    assert timing["torch_threads"] >= 1
    return predictions, timing


def split(forces: np.ndarray, images) -> list[np.ndarray]:
    return np.split(forces, np.cumsum([len(a) for a in images])[:-1])


# -------------------------------------------------------------------------- no model needed


def test_runner_package_is_aiida_free():
    """Every module of the runner package imports without aiida (the package root of aiida_reactmlip is
    import-free): the executable runs on a node without an AiiDA installation."""
    package = pathlib.Path(runner.__file__).parent
    modules = sorted(f"aiida_reactmlip.runner.{path.stem}" for path in package.glob("*.py") if path.stem != "__init__")
    assert {"aiida_reactmlip.runner.contract", "aiida_reactmlip.runner.__main__", "aiida_reactmlip.runner.md"} <= set(modules)
    for path in package.glob("*.py"):
        text = path.read_text()
        assert "from aiida " not in text and "import aiida\n" not in text and "from aiida." not in text, path
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "found = sorted(m for m in sys.modules if m == 'aiida' or m.startswith('aiida.'))\n"
        "assert not found, found\n"
        "assert 'aiida_reactmlip.runner.evaluate' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_runner_runs_as_a_module(tmp_path):
    """``python -m aiida_reactmlip.runner`` is the console script: an invalid input gives exit 10 and status.json."""
    path = tmp_path / "input.json"
    path.write_text(json.dumps({"family": "chgnet", "frames_file": "f.extxyz", "model_file": "m", "mode": "x"}))
    done = subprocess.run([sys.executable, "-m", "aiida_reactmlip.runner", "evaluate", "--input", str(path)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == runner.EXIT_INPUT, done.stderr
    assert "mode must be one of" in done.stderr and "RuntimeWarning" not in done.stderr
    assert json.loads((tmp_path / "status.json").read_text())["exit_code"] == runner.EXIT_INPUT


def test_choose_mode():
    assert runner.choose_mode("auto", "chgnet", "cpu") == "ase"  # on CPU worker processes, not batches
    assert runner.choose_mode("auto", "sevenn", "cpu") == "ase"
    assert runner.choose_mode("auto", "chgnet", "cuda") == "batched"
    assert runner.choose_mode("batched", "chgnet", "cpu") == "batched"
    assert runner.choose_mode("batched", "sevenn", "cuda") == "batched"
    assert runner.choose_mode("batched", "mace", "cuda") == "ase"
    assert runner.choose_mode("auto", "mace", "cuda") == "ase"
    assert runner.choose_mode("ase", "chgnet", "cuda") == "ase"


def test_plan_workers():
    # auto on CPU: one process per core, once each gets 100 frames; one thread each
    assert runner.plan_workers(None, None, 500, "cpu", 2) == (2, 1)
    assert runner.plan_workers(None, None, 199, "cpu", 2) == (1, None)
    assert runner.plan_workers(None, None, 300, "cpu", 4) == (3, 1)
    assert runner.plan_workers(None, None, 100_000, "cpu", 64) == (runner.MAX_AUTO_WORKERS, 64 // runner.MAX_AUTO_WORKERS)
    assert runner.plan_workers(None, None, 500, "cpu", 1) == (1, None)
    # an accelerator: one process, batches instead
    assert runner.plan_workers(None, None, 5000, "cuda", 16) == (1, None)
    # explicit settings win; never more workers than frames
    assert runner.plan_workers(2, None, 10, "cpu", 2) == (2, 1)
    assert runner.plan_workers(4, None, 3, "cpu", 8) == (3, 2)
    assert runner.plan_workers(2, 3, 500, "cpu", 2) == (2, 3)
    assert runner.plan_workers(1, 2, 500, "cpu", 2) == (1, 2)


@pytest.mark.parametrize(("n_frames", "workers", "batch_size"), [(500, 2, 1), (10, 2, 1), (37, 3, 4), (1, 2, 1)])
def test_worker_chunks_cover_every_frame_once(n_frames, workers, batch_size):
    chunks = runner.worker_chunks(n_frames, workers, batch_size)
    assert [i for chunk in chunks for i in chunk] == list(range(n_frames))
    assert all(len(chunk) % batch_size == 0 for chunk in chunks[:-1]) and all(len(chunk) >= 1 for chunk in chunks)
    assert all(len(chunk) >= min(4, n_frames) for chunk in chunks[:-1])
    if n_frames == 500:
        assert len(chunks) == 63  # 8 frames each: ~32 per worker


@pytest.mark.parametrize(
    ("value", "message"), [(0, "workers must be >= 1"), (1.5, "workers must be an integer"), ("2", "workers must be an integer"),
                           (True, "workers must be an integer")],
)
def test_invalid_workers(tmp_path, capsys, value, message):
    path = tmp_path / "input.json"
    path.write_text(json.dumps({"family": "chgnet", "frames_file": "f.extxyz", "model_file": "m", "workers": value}))
    assert runner.main(["evaluate", "--input", str(path)]) == runner.EXIT_INPUT
    assert message in capsys.readouterr().err


def test_missing_input_file(tmp_path, capsys):
    assert runner.main(["evaluate", "--input", str(tmp_path / "nope.json")]) == runner.EXIT_INPUT
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "unreadable"),
        ('{"frames_file": "frames.extxyz", "model_file": "m.pth"}', "'family' is required"),
        ('{"family": "chgnet", "frames_file": "f", "model_file": "m", "mode": "x"}', "mode must be one of"),
        ('{"family": "orb", "frames_file": "f.extxyz", "model_file": "m"}', "unknown model family"),
        ('{"family": "chgnet", "frames_file": "f.extxyz", "model_file": "m", "batchsize": 3}', "unknown key"),
    ],
)
def test_invalid_input_file(tmp_path, capsys, content, message):
    path = tmp_path / "input.json"
    path.write_text(content)
    assert runner.main(["evaluate", "--input", str(path)]) == runner.EXIT_INPUT
    assert message in capsys.readouterr().err


def test_missing_frames_and_model_files(tmp_path, capsys):
    path = tmp_path / "input.json"
    path.write_text(json.dumps({"family": "chgnet", "model_file": "model.pth", "frames_file": "f.extxyz"}))
    assert runner.main(["evaluate", "--input", str(path)]) == runner.EXIT_INPUT
    assert "frames file" in capsys.readouterr().err
    write_inputs(tmp_path, make_images()[:1], family="chgnet", model_file="model.pth")
    assert runner.main(["evaluate", "--input", str(tmp_path / "input.json")]) == runner.EXIT_INPUT
    assert "model file" in capsys.readouterr().err
    (tmp_path / "frames.extxyz").write_text("3\nnot an extxyz header\nH 0 0\n")
    (tmp_path / "model.pth").write_bytes(b"x")
    assert runner.main(["evaluate", "--input", str(tmp_path / "input.json")]) == runner.EXIT_INPUT
    assert "unreadable" in capsys.readouterr().err


def test_corrupt_model_file_exit_12(tmp_path, capsys):
    path = write_inputs(tmp_path, make_images()[:1], family="chgnet", model_file="model.pth.tar")
    (tmp_path / "model.pth.tar").write_bytes(b"not a torch file")
    assert runner.main(["evaluate", "--input", str(path)]) == runner.EXIT_MODEL_LOAD
    assert "failed to load" in capsys.readouterr().err
    assert not (tmp_path / "predictions.npz").exists()


# -------------------------------------------------------------------------- real models


@pytest.fixture(scope="module")
def chgnet_file():
    return locate_model_file("chgnet-0.3.0")


@pytest.fixture(scope="module")
def chgnet_reference(chgnet_file):
    """Energies, forces, stress of make_images() through the CHGNet ASE calculator, frame by frame."""
    from chgnet.model.dynamics import CHGNetCalculator

    calc = load_calculator("chgnet", chgnet_file)
    plain = CHGNetCalculator(model=calc.model, use_device="cpu")  # chgnet's own calculator, unwrapped
    energies, forces, stress = [], [], []
    for atoms in make_images():
        atoms = atoms.copy()
        atoms.calc = plain if is_periodic_3d(atoms) or any(atoms.pbc) else calc
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
        stress.append(atoms.get_stress(voigt=True) if is_periodic_3d(atoms) else np.full(6, np.nan))
    return np.array(energies), forces, np.array(stress)


@pytest.mark.mlip
@pytest.mark.parametrize("mode", ["batched", "ase"])
def test_runner_chgnet_matches_ase_calculator(tmp_path, capsys, chgnet_file, chgnet_reference, mode):
    images = make_images()
    input_file = write_inputs(tmp_path, images, family="chgnet", model_file=str(chgnet_file), mode=mode,
                              batch_size=3, model_name="chgnet-0.3.0")
    assert runner.main(["evaluate", "--input", str(input_file)]) == runner.EXIT_OK
    out = capsys.readouterr().out
    assert "progress: 4/4 frames (100%)" in out and f"mode={mode}" in out
    predictions, timing = check_outputs(tmp_path, images, mode)
    assert timing["batch_size"] == (3 if mode == "batched" else 1)
    assert timing["model"]["cutoff"] == 6.0 and timing["model_name"] == "chgnet-0.3.0"

    ref_energies, ref_forces, ref_stress = chgnet_reference
    np.testing.assert_allclose(predictions["energies"], ref_energies, atol=1e-4, rtol=0)
    for got, want in zip(split(predictions["forces"], images), ref_forces, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)
    periodic = ~np.isnan(ref_stress[:, 0])
    np.testing.assert_allclose(predictions["stress"][periodic], ref_stress[periodic], atol=1e-5, rtol=0)
    # ASE sign convention: the compressed crystal (frame 2) is under positive pressure, negative stress
    assert np.all(predictions["stress"][2, :3] < 0)
    # energies are totals (eV), not CHGNet's eV/atom: the 4-atom bulk is near 4 x -4 eV
    assert -20.0 < predictions["energies"][2] < -12.0
    h2_forces = split(predictions["forces"], images)[0]
    assert h2_forces[0, 2] > 0.5 and h2_forces[1, 2] < -0.5
    for frame_forces in split(predictions["forces"], images):
        assert np.abs(frame_forces.sum(axis=0)).max() < 1e-3


@pytest.mark.mlip
def test_runner_worker_processes_agree_with_the_calculator(tmp_path, chgnet_file, chgnet_reference):
    """``workers: 2`` through the console script (spawned helpers re-enter it): same numbers, in frame order."""
    images = make_images() * 3  # 12 frames, chunks of 4: two to the helper, the last one to the runner itself
    input_file = write_inputs(tmp_path, images, family="chgnet", model_file=str(chgnet_file), mode="ase",
                              workers=2, model_name="chgnet-0.3.0")
    done = subprocess.run([str(RUNNER_SCRIPT), "evaluate", "--input", str(input_file)],
                          capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == runner.EXIT_OK, done.stderr[-3000:]
    assert "workers=2 (requested 2" in done.stdout and "progress: 12/12 frames (100%)" in done.stdout
    predictions, timing = check_outputs(tmp_path, images, "ase")
    assert timing["workers"] == 2 and timing["torch_threads"] == max(1, runner.available_cpus() // 2)
    assert timing["frames_by_helpers"] == 8 and timing["worker_load_seconds"] > 0
    assert timing["peak_memory_mb_helper"] > 100  # torch and the model alone take more

    ref_energies, ref_forces, ref_stress = chgnet_reference
    np.testing.assert_allclose(predictions["energies"], np.tile(ref_energies, 3), atol=1e-4, rtol=0)
    for got, want in zip(split(predictions["forces"], images), ref_forces * 3, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)
    np.testing.assert_allclose(predictions["stress"], np.tile(ref_stress, (3, 1)), atol=1e-5, rtol=0)


@pytest.mark.mlip
def test_runner_element_not_covered(tmp_path, capsys, chgnet_file):
    images = [Atoms("OgH", positions=[[0, 0, 0], [0, 0, 2.0]])]
    input_file = write_inputs(tmp_path, images, family="chgnet", model_file=str(chgnet_file),
                              model_name="chgnet-0.3.0")
    assert runner.main(["evaluate", "--input", str(input_file)]) == runner.EXIT_ELEMENTS
    err = capsys.readouterr().err
    assert "model chgnet-0.3.0 does not cover element(s) Og" in err
    assert not (tmp_path / "predictions.npz").exists()


@pytest.mark.mlip
def test_runner_console_script_sevennet(tmp_path):
    assert RUNNER_SCRIPT.exists(), f"console script not installed at {RUNNER_SCRIPT}: pip install -e ."
    images = make_images()
    input_file = write_inputs(tmp_path / "run", images, family="sevennet", model_name="sevennet-0",
                              mode="ase", num_threads=2)  # no model_file: the bundled one
    result = subprocess.run([str(RUNNER_SCRIPT), "evaluate", "--input", "input.json"], cwd=input_file.parent,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "progress: 4/4 frames (100%)" in result.stdout
    predictions, timing = check_outputs(input_file.parent, images, "ase")
    assert timing["mode_requested"] == "ase" and timing["torch_threads"] == 2
    assert timing["model"]["n_elements"] == 89 and timing["model"]["cutoff"] == 5.0
    for frame_forces in split(predictions["forces"], images):
        assert np.abs(frame_forces.sum(axis=0)).max() < 1e-3

    # an element outside SevenNet-0 (Po is in CHGNet's range but not in SevenNet-0's 89)
    bad = write_inputs(tmp_path / "bad", [Atoms("CuPo", positions=[[0, 0, 0], [0, 0, 2.5]])],
                       family="sevenn", model_name="sevennet-0")
    result = subprocess.run([str(RUNNER_SCRIPT), "evaluate", "--input", str(bad)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == runner.EXIT_ELEMENTS
    assert "model sevennet-0 does not cover element(s) Po; it covers 89 elements: H, He," in result.stderr


@pytest.mark.mlip
def test_runner_mace_model_file(tmp_path):
    """The MACE path end to end, with a tiny randomly initialised model (no foundation model here)."""
    from aiida_reactmlip.models import allow_e3nn_constants

    allow_e3nn_constants()
    import torch
    from e3nn import o3
    from mace import modules

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        model = modules.ScaleShiftMACE(
            r_max=4.0, num_bessel=4, num_polynomial_cutoff=5, max_ell=1,
            interaction_cls=block, interaction_cls_first=block, num_interactions=1, num_elements=3,
            hidden_irreps=o3.Irreps("8x0e"), MLP_irreps=o3.Irreps("4x0e"),
            atomic_energies=np.array([-1.0, -2.0, -3.0]), avg_num_neighbors=8.0, atomic_numbers=[1, 8, 29],
            correlation=2, gate=torch.nn.functional.silu, atomic_inter_scale=1.0, atomic_inter_shift=0.0,
        )
        torch.save(model, tmp_path / "tiny.model")
    finally:
        torch.set_default_dtype(previous)
    images = make_images()
    input_file = write_inputs(tmp_path, images, family="mace", model_file="tiny.model")
    assert runner.main(["evaluate", "--input", str(input_file)]) == runner.EXIT_OK
    _, timing = check_outputs(tmp_path, images, "ase")
    assert timing["model"]["dtype"] == "float64" and timing["model"]["n_elements"] == 3
