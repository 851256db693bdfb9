"""Tests of ``reactmlip.md``: the MD loop (ASE EMT, no model), the runner's ``md`` sub-command and the CalcJob (CHGNet)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from aiida_reactmlip import runner
from aiida_reactmlip.frames import Frames, read_extxyz, write_extxyz
from aiida_reactmlip.models import ensure_cell
from aiida_reactmlip.runner import contract
from aiida_reactmlip.runner import md as runner_md


def h2() -> Atoms:
    atoms = Atoms("H2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]])
    atoms.info["name"] = "h2"
    return atoms


def cu4() -> Atoms:
    """A Cu4 tetrahedron (2.5 Å edges), no cell: boxed by the runner."""
    atoms = Atoms("Cu4", positions=[[0, 0, 0], [2.5, 0, 0], [1.25, 2.165, 0], [1.25, 0.722, 2.041]])
    atoms.info["name"] = "cu4"
    return atoms


def settings(**overrides):
    return contract.check_md_settings({"n_steps": 20, "save_every": 5, "temperature_K": 600.0, **overrides})


# -------------------------------------------------------------------------- the MD loop, no model


class Exploding(Calculator):
    """EMT until ``after`` evaluations, then a 1000 eV/Å force on atom 0."""

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, after: int):
        super().__init__()
        self.after, self.calls, self.emt = after, 0, EMT()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        probe = self.atoms.copy()
        probe.constraints = []
        probe.calc = self.emt
        forces = probe.get_forces()
        self.calls += 1
        if self.calls > self.after:
            forces[0] = [1000.0, 0.0, 0.0]
        self.results = {"energy": probe.get_potential_energy(), "free_energy": 0.0, "forces": forces}


def run_emt(atoms, fixed=(), seed=0, calc=None, **overrides):
    saved = []
    atoms = ensure_cell(atoms)
    record = runner_md.run_trajectory(
        atoms, calc or EMT(), settings(**overrides), fixed=list(fixed), rng=np.random.default_rng([seed, 0]),
        on_save=lambda a, step, t: saved.append((step, a.positions.copy(), t)),
    )
    return record, saved


@pytest.mark.parametrize("ensemble", ["langevin", "nvt_berendsen"])
def test_md_loop_saves_every_n_keeps_fixed_atoms_and_is_seeded(ensemble):
    start = ensure_cell(cu4())
    record, saved = run_emt(cu4(), fixed=[0, 2], ensemble=ensemble)
    assert [s for s, _, _ in saved] == [5, 10, 15, 20] == record["saved_steps"]
    assert record["steps_done"] == 20 and not record["blew_up"]
    assert len(record["epot"]) == len(record["temperature"]) == 21  # steps 0 .. 20
    # the initial velocities are at exactly 600 K over the free degrees of freedom (2 free atoms: 6)
    assert record["temperature"][0] == pytest.approx(600.0, rel=1e-9)
    for _, positions, _ in saved:
        np.testing.assert_array_equal(positions[[0, 2]], start.positions[[0, 2]])
        assert np.abs(positions[[1, 3]] - start.positions[[1, 3]]).max() > 1e-3
    again = run_emt(cu4(), fixed=[0, 2], ensemble=ensemble)[1]
    other = run_emt(cu4(), fixed=[0, 2], ensemble=ensemble, seed=1)[1]
    for (_, a, _), (_, b, _), (_, c, _) in zip(saved, again, other, strict=True):
        np.testing.assert_array_equal(a, b)
        assert np.abs(a - c).max() > 1e-4


def test_md_loop_without_fixed_atoms_keeps_the_centre_of_mass():
    start = ensure_cell(cu4())
    _, saved = run_emt(cu4())
    for _, positions, _ in saved:
        np.testing.assert_allclose(positions.mean(axis=0), start.positions.mean(axis=0), atol=1e-10)  # equal masses


def test_md_loop_blow_up_keeps_frames_before():
    record, saved = run_emt(cu4(), calc=Exploding(after=12))  # evaluation 13 is step 12
    assert record["blew_up"] and record["blow_up_step"] == 12
    assert "force 1e+03 eV/Å above max_force 50 eV/Å" in record["blow_up_reason"]
    assert [s for s, _, _ in saved] == [5, 10]
    assert record["steps_done"] == 11 and len(record["epot"]) == 12


def test_md_loop_too_close_atoms_blow_up_at_step_zero():
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 0.4]])
    record, saved = run_emt(atoms, save_start=True)
    assert record["blew_up"] and record["blow_up_step"] == 0 and saved == []
    assert "atoms 0.400 Å apart, closer than min_distance 0.5 Å" in record["blow_up_reason"]


def test_min_interatomic_distance_sees_periodic_images():
    atoms = Atoms("Cu2", positions=[[0.1, 0, 0], [4.6, 0, 0]], cell=[4.9, 10, 10], pbc=True)
    assert runner_md.min_interatomic_distance(atoms, 1.0) == pytest.approx(0.4)
    atoms.pbc = False
    assert runner_md.min_interatomic_distance(atoms, 1.0) == np.inf


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ensemble": "npt"}, "ensemble must be one of langevin, nvt_berendsen"),
        ({"save_every": 0}, "save_every must be >= 1"),
        ({"n_steps": 4, "save_every": 5}, "no frame would be saved: n_steps 4 < save_every 5"),
        ({"timestep_fs": 0}, "timestep_fs must be > 0 fs"),
        ({"temperature_K": -5}, "temperature_K must be >= 0 K"),
        ({"n_steps": 2.5}, "n_steps must be an integer"),
        ({"fixed_atoms": [-1]}, "fixed_atoms must be a list of atom indices"),
        ({"fixed_atoms": {"a": [0]}}, "fixed_atoms keys must be frame indices"),
        ({"steps": 5}, "unknown md setting(s) steps"),
    ],
)
def test_check_settings_refuses(overrides, message):
    with pytest.raises(ValueError) as excinfo:
        settings(**overrides)
    assert message in str(excinfo.value)


# -------------------------------------------------------------------------- runner


def write_md_input(directory: pathlib.Path, images, **params) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_extxyz(Frames.from_atoms(images), directory / "frames.extxyz")
    path = directory / "input.json"
    path.write_text(json.dumps({"family": "chgnet", "model_name": "chgnet-0.3.0", "frames_file": "frames.extxyz",
                                "n_steps": 20, "save_every": 5, "temperature_K": 600, "num_threads": 1, **params}))
    return path


def test_runner_md_invalid_input(tmp_path, capsys):
    path = write_md_input(tmp_path, [h2()], model_file="m.pth", ensemble="nve")
    assert runner.main(["md", "--input", str(path)]) == runner.EXIT_INPUT
    assert "ensemble must be one of langevin, nvt_berendsen" in capsys.readouterr().err
    assert json.loads((tmp_path / "status.json").read_text())["exit_code"] == runner.EXIT_INPUT


@pytest.fixture(scope="module")
def chgnet_calculator():
    """CHGNet 0.3.0's own ASE calculator; torch on 1 thread (2 threads on a busy 2-core machine are ~20x slower)."""
    import torch
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    from aiida_reactmlip.models import locate_model_file

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield CHGNetCalculator(model=CHGNet.from_file(str(locate_model_file("chgnet-0.3.0"))), use_device="cpu")
    torch.set_num_threads(threads)


def run_runner(directory, images, **params) -> tuple[Frames, dict]:
    path = write_md_input(directory, images, **params)
    assert runner.main(["md", "--input", str(path)]) == runner.EXIT_OK
    return read_extxyz(directory / "trajectory.extxyz"), json.loads((directory / "report.json").read_text())


@pytest.mark.mlip
def test_runner_md_chgnet_seeded_fixed_and_labelled(tmp_path, chgnet_calculator):
    cluster = cu4()
    cluster.info["fixed_atoms"] = json.dumps([1])  # through the frame's info, plus atom 0 from the parameters
    frames, report = run_runner(tmp_path / "a", [h2(), cluster], fixed_atoms={"1": [0]}, seed=3)
    assert len(frames) == 8 and report["n_frames"] == 8 and report["steps_done"] == 40 and not report["blew_up"]
    assert [i["group"] for i in frames.info] == ["md-h2"] * 4 + ["md-cu4"] * 4
    assert [i["md_step"] for i in frames.info] == [5, 10, 15, 20] * 2
    assert all(i["role"] == "mlip_md" and i["model_name"] == "chgnet-0.3.0" for i in frames.info)
    assert report["starts"][1]["fixed_atoms"] == [0, 1] and frames.info[4]["fixed_atoms"] == "[0, 1]"
    assert all(frames.pbc.all(axis=1))  # molecules were boxed
    images = frames.to_atoms()
    start = ensure_cell(cluster)
    for atoms in images[4:]:
        np.testing.assert_array_equal(atoms.positions[[0, 1]], start.positions[[0, 1]])
        assert np.abs(atoms.positions[[2, 3]] - start.positions[[2, 3]]).max() > 1e-3
    # labels are CHGNet's own energies and forces of the saved frames
    for atoms, energy, forces in zip(images, frames.energies, np.split(frames.forces, np.cumsum(frames.n_atoms)[:-1]),
                                     strict=True):
        fresh = atoms.copy()
        fresh.calc = chgnet_calculator
        assert abs(fresh.get_potential_energy() - energy) < 1e-5
        np.testing.assert_allclose(fresh.get_forces(), forces, atol=1e-4)
    thermo = np.load(tmp_path / "a" / "thermo.npz")
    assert len(thermo["epot_0"]) == 21 and thermo["temperature_1"][0] == pytest.approx(600.0, rel=1e-6)
    assert report["max_temperature_K"] == pytest.approx(max(thermo["temperature_0"].max(), thermo["temperature_1"].max()))
    assert report["steps_per_second"] > 0

    # start frame i draws from default_rng([seed, i]): H2 alone (start 0) repeats the first 4 frames exactly
    h2_frames = slice(0, int(frames.n_atoms[:4].sum()))
    same, _ = run_runner(tmp_path / "b", [h2()], seed=3)
    np.testing.assert_array_equal(same.positions, frames.positions[h2_frames])
    other, _ = run_runner(tmp_path / "c", [h2()], seed=4)
    assert np.abs(other.positions - frames.positions[h2_frames]).max() > 1e-3


# -------------------------------------------------------------------------- CalcJob


@pytest.fixture
def md_entry_points(entry_points):
    from aiida.plugins.entry_point import get_entry_point_names

    from aiida_reactmlip.calculations.md import MdCalculation
    from aiida_reactmlip.parsers.md import MdParser

    if "reactmlip.md" not in get_entry_point_names("aiida.calculations"):
        entry_points.add(MdCalculation, "aiida.calculations:reactmlip.md")
    if "reactmlip.md" not in get_entry_point_names("aiida.parsers"):
        entry_points.add(MdParser, "aiida.parsers:reactmlip.md")
    return entry_points


def count_calcjobs() -> int:
    from aiida import orm

    return orm.QueryBuilder().append(orm.CalcJobNode).count()


@pytest.mark.mlip
def test_md_calcjob(md_entry_points, registry_models, codes):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.calculations.md import MdCalculation
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    dataset = LabelledDatasetData.from_atoms([h2(), cu4()]).store()
    model = registry_models["chgnet-0.3.0"]
    results, node = run_get_node(
        MdCalculation, code=codes["runner"], model=model, structures=dataset,
        parameters=orm.Dict({"ensemble": "nvt_berendsen", "temperature_K": 500, "n_steps": 12, "save_every": 4,
                             "fixed_atoms": {"1": [0]}, "seed": 1, "num_threads": 1}),
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    trajectory, report = results["trajectory"], results["report"].get_dict()
    assert trajectory.n_frames == 6 == report["n_frames"]
    info = trajectory.frame_info
    assert [i["group"] for i in info] == ["md-h2"] * 3 + ["md-cu4"] * 3
    assert [i["md_step"] for i in info] == [4, 8, 12] * 2
    assert all(i["model_uuid"] == model.uuid and i["ensemble"] == "nvt_berendsen" for i in info)
    assert report["steps_done"] == 24 and report["blew_up"] is False and report["seconds"] > 0
    assert report["max_temperature_K"] >= max(i["temperature_K"] for i in info)
    assert trajectory.base.attributes.get("has_forces") == 6 and np.isfinite(trajectory.get_array("energies")).all()
    positions = [a.positions for a in trajectory.to_atoms()[3:]]
    for p in positions[1:]:
        np.testing.assert_array_equal(p[0], positions[0][0])  # the fixed Cu atom
    assert set(results["thermo"].get_arraynames()) == {f"{k}_{i}" for k in ("epot", "temperature", "fmax") for i in (0, 1)}
    assert trajectory.base.links.get_incoming().one().node.pk == node.pk


@pytest.mark.mlip
def test_md_calcjob_blow_up_keeps_frames_and_can_fail(md_entry_points, registry_models, codes):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.calculations.md import MdCalculation
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    dataset = LabelledDatasetData.from_atoms([h2(), cu4()]).store()  # H2 at 0.74 Å is "too close" for 0.8 Å
    results, node = run_get_node(
        MdCalculation, code=codes["runner"], model=registry_models["chgnet-0.3.0"], structures=dataset,
        parameters=orm.Dict({"n_steps": 6, "save_every": 3, "min_distance": 0.8, "fail_on_blowup": True,
                             "num_threads": 1}),
    )
    assert node.exit_status == MdCalculation.exit_codes.ERROR_MD_BLEW_UP.status
    assert "start 0 at step 0: atoms 0.740 Å apart" in node.exit_message
    report = results["report"].get_dict()
    assert report["blew_up"] and report["blown_up_starts"] == [0] and report["starts"][0]["n_saved"] == 0
    assert [i["group"] for i in results["trajectory"].frame_info] == ["md-cu4", "md-cu4"]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"ensemble": "npt"}, "reactmlip.md parameters: ensemble must be one of langevin, nvt_berendsen"),
        ({"n_step": 10}, "unknown md setting(s) n_step"),
        ({"fixed_atoms": [3]}, "atom index(es) [3] out of range for frame 0 (2 atoms)"),
        ({"fixed_atoms": {"2": [0]}}, "names frame 2, but there are 1 frame(s)"),
    ],
)
def test_md_refuses_bad_parameters(md_entry_points, registry_models, codes, parameters, message):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.calculations.md import MdCalculation
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    dataset = LabelledDatasetData.from_atoms([h2()]).store()
    before = count_calcjobs()
    with pytest.raises(ValueError) as excinfo:
        run_get_node(MdCalculation, code=codes["runner"], model=registry_models["chgnet-0.3.0"], structures=dataset,
                     parameters=orm.Dict(parameters))
    assert message in str(excinfo.value)
    assert count_calcjobs() == before
