"""Tests of ``reactmlip.neb``: the runner's ``neb`` sub-command (no AiiDA) and the CalcJob (real CHGNet)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from ase import Atoms
from ase.build import add_adsorbate, fcc111

from aiida_reactmlip import runner
from aiida_reactmlip.frames import Frames, read_extxyz, write_extxyz


def h_on_cu111(site: str) -> Atoms:
    """H at the ``site`` (fcc or hcp) hollow of a 2-layer Cu(111) 2x2 slab (9 atoms, pbc T,T,F)."""
    slab = fcc111("Cu", size=(2, 2, 2), vacuum=6.0)
    add_adsorbate(slab, "H", 1.0, site)
    return slab


BOTTOM = [0, 1, 2, 3]  # fcc111 builds the bottom layer (tag 2) first


def write_neb_input(directory: pathlib.Path, images, **params) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_extxyz(Frames.from_atoms(images), directory / "frames.extxyz")
    path = directory / "input.json"
    path.write_text(json.dumps({"family": "chgnet", "model_name": "chgnet-0.3.0", "frames_file": "frames.extxyz",
                                **params}))
    return path


def test_bottom_layer_indices():
    assert [int(i) for i in np.flatnonzero(h_on_cu111("fcc").get_tags() == 2)] == BOTTOM


# -------------------------------------------------------------------------- runner


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_images": 0}, "n_images (images between the end states) must be >= 1"),
        ({"interpolation": "spline"}, "interpolation must be one of"),
        ({"nimages": 3}, "unknown key(s) nimages"),
        ({"fixed_atoms": {"0": [1]}}, "fixed_atoms must be a list of atom indices"),
    ],
)
def test_runner_neb_invalid_input(tmp_path, capsys, params, message):
    path = write_neb_input(tmp_path, [h_on_cu111("fcc"), h_on_cu111("hcp")], model_file="m.pth", **params)
    assert runner.main(["neb", "--input", str(path)]) == runner.EXIT_INPUT
    assert message in capsys.readouterr().err


@pytest.mark.mlip
def test_runner_neb_needs_two_like_end_states(tmp_path, capsys):
    path = write_neb_input(tmp_path, [h_on_cu111("fcc")])
    assert runner.main(["neb", "--input", str(path)]) == runner.EXIT_INPUT
    assert "at least the two end states" in capsys.readouterr().err
    other = h_on_cu111("hcp")
    other.numbers[8] = 8  # O instead of H
    path = write_neb_input(tmp_path, [h_on_cu111("fcc"), other])
    assert runner.main(["neb", "--input", str(path)]) == runner.EXIT_INPUT
    assert "frame 1 has other atoms than frame 0" in capsys.readouterr().err


@pytest.mark.mlip
def test_runner_neb_not_converged_writes_band(tmp_path, capsys):
    """Two optimiser steps: exit 14, yet band.extxyz (2 + n_images frames) and profile.json are written."""
    initial, final = h_on_cu111("fcc"), h_on_cu111("hcp")
    path = write_neb_input(tmp_path, [initial, final], n_images=2, max_steps=2, interpolation="linear",
                           fixed_atoms=BOTTOM)
    assert runner.main(["neb", "--input", str(path)]) == runner.EXIT_NOT_CONVERGED
    assert "the band did not reach fmax" in capsys.readouterr().err
    profile = json.loads((tmp_path / "profile.json").read_text())
    band = read_extxyz(tmp_path / "band.extxyz")
    assert len(band) == 4 == profile["n_images"] and profile["steps"] == 2 and not profile["converged"]
    np.testing.assert_allclose(band.energies, profile["energies"])
    images = band.to_atoms()
    # end states are not moved (relax_endpoints false), the fixed layer is identical in every image
    np.testing.assert_array_equal(images[0].positions, initial.positions)
    np.testing.assert_array_equal(images[-1].positions, final.positions)
    for atoms in images:
        np.testing.assert_array_equal(atoms.positions[BOTTOM], initial.positions[BOTTOM])
    assert [info["image"] for info in band.info] == [0, 1, 2, 3]
    assert all(info["role"] == "mlip_neb_image" for info in band.info)


# -------------------------------------------------------------------------- CalcJob


@pytest.fixture
def neb_entry_points(entry_points):
    from aiida.plugins.entry_point import get_entry_point_names

    from aiida_reactmlip.calculations.mlip_neb import MlipNebCalculation
    from aiida_reactmlip.parsers.mlip_neb import MlipNebParser

    # registered by pyproject.toml once the package is reinstalled; until then, only for these tests
    if "reactmlip.neb" not in get_entry_point_names("aiida.calculations"):
        entry_points.add(MlipNebCalculation, "aiida.calculations:reactmlip.neb")
    if "reactmlip.neb" not in get_entry_point_names("aiida.parsers"):
        entry_points.add(MlipNebParser, "aiida.parsers:reactmlip.neb")
    return entry_points


def count_calcjobs() -> int:
    from aiida import orm

    return orm.QueryBuilder().append(orm.CalcJobNode).count()


@pytest.mark.mlip
def test_neb_calcjob_h_hop_fcc_hcp(neb_entry_points, registry_models, codes):
    """H fcc -> hcp on Cu(111), 3 images, climbing image, end states relaxed first, bottom layer fixed."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.calculations.mlip_neb import MlipNebCalculation
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    initial, final = h_on_cu111("fcc"), h_on_cu111("hcp")
    initial.info["fixed_atoms"] = json.dumps(BOTTOM)  # carried by the frame's info
    images = LabelledDatasetData.from_atoms([initial, final]).store()
    results, node = run_get_node(
        MlipNebCalculation,
        model=registry_models["chgnet-0.3.0"],
        images=images,
        settings=orm.Dict({"n_images": 3, "climb": True, "fmax": 0.05, "max_steps": 300, "relax_endpoints": True}),
        code=codes["runner"],
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    profile = results["profile"].get_dict()
    band = results["band"]
    energies = np.array(profile["energies"])
    assert len(energies) == 5 == band.n_frames and profile["converged"] and profile["fmax"] < 0.05
    np.testing.assert_allclose(band.get_array("energies"), energies)
    assert 0 < profile["highest_image"] < 4  # the saddle lies inside the band
    assert profile["barrier"] > 0.02 and profile["reverse_barrier"] > 0.02
    assert profile["barrier"] == pytest.approx(energies.max() - energies[0])
    assert profile["reaction_energy"] == pytest.approx(energies[-1] - energies[0])
    np.testing.assert_allclose(profile["relative_energies"], energies - energies[0])
    assert all(end["relaxed"] and end["converged"] for end in profile["end_states"])
    assert profile["fixed_atoms"] == BOTTOM
    positions = [atoms.positions for atoms in band.to_atoms()]
    for pos in positions:
        np.testing.assert_array_equal(pos[BOTTOM], initial.positions[BOTTOM])
    # the H atom goes from the fcc to the hcp hollow: its lateral position ends at the hcp site
    np.testing.assert_allclose(positions[-1][8, :2], final.positions[8, :2], atol=0.1)
    assert band.frame_info[0]["model_uuid"] == registry_models["chgnet-0.3.0"].uuid


@pytest.mark.parametrize(
    ("n_frames", "settings", "message"),
    [
        (1, {}, "NEB needs at least the two end states"),
        (2, {"interpolation": "spline"}, "interpolation must be one of idpp, linear"),
        (2, {"n_images": 0}, "n_images (images between the end states) must be >= 1"),
        (2, {"fixed_atoms": [12]}, "atom index(es) [12] out of range for frame 0 (9 atoms)"),
        (2, {"images": 3}, "unknown neb setting(s) images"),
    ],
)
def test_neb_refuses_bad_input(neb_entry_points, registry_models, codes, n_frames, settings, message):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.calculations.mlip_neb import MlipNebCalculation
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    images = LabelledDatasetData.from_atoms([h_on_cu111("fcc"), h_on_cu111("hcp")][:n_frames]).store()
    before = count_calcjobs()
    with pytest.raises(ValueError) as excinfo:
        run_get_node(MlipNebCalculation, model=registry_models["chgnet-0.3.0"], images=images,
                     settings=orm.Dict(settings), code=codes["runner"])
    assert message in str(excinfo.value)
    assert count_calcjobs() == before


def test_neb_refuses_uncovered_element_and_unlike_images(neb_entry_points, registry_models, codes):
    from aiida.engine import run_get_node

    from aiida_reactmlip.calculations.mlip_neb import MlipNebCalculation
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    model = registry_models["chgnet-0.3.0"]
    og = Atoms("OgH", positions=[[0, 0, 0], [0, 0, 2.0]])
    before = count_calcjobs()
    with pytest.raises(ValueError, match=r"does not cover element\(s\) Og"):
        run_get_node(MlipNebCalculation, model=model, images=LabelledDatasetData.from_atoms([og, og]).store(),
                     code=codes["runner"])
    other = h_on_cu111("hcp")
    other.numbers[8] = 8
    with pytest.raises(ValueError, match=r"image\(s\) \[1\] .* have other atoms than image 0"):
        run_get_node(MlipNebCalculation, model=model,
                     images=LabelledDatasetData.from_atoms([h_on_cu111("fcc"), other]).store(), code=codes["runner"])
    assert count_calcjobs() == before
