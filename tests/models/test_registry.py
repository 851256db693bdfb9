"""Tests of the offline model registry (no AiiDA). Tests marked ``mlip`` load real pretrained models."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111

from aiida_reactmlip import models
from aiida_reactmlip.models import (
    ElementNotCoveredError,
    ModelLoadError,
    ModelNotAvailableError,
    UnknownModelError,
    check_elements,
    describe_model_file,
    ensure_cell,
    get_model_spec,
    is_periodic_3d,
    list_models,
    load_calculator,
    locate_model_file,
)

MODELS_DIR = pathlib.Path(models.__file__).parent
ALL_NAMES = [
    "chgnet-0.3.0",
    "chgnet-0.2.0",
    "chgnet-r2scan",
    "sevennet-0",
    "sevennet-0-22may2024",
    "sevennet-l3i5",
    "mace-mp-0",
    "mace-mp-0b3",
    "mace-mpa-0",
    "mace-omat-0",
]


@pytest.fixture
def empty_mace_cache(tmp_path, monkeypatch):
    """MACE looks for downloaded files in $XDG_CACHE_HOME/mace: make that an empty folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mace"


def h2(bond: float = 1.0) -> Atoms:
    return Atoms("H2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, bond]])


def cu_slab() -> Atoms:
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)  # pbc (True, True, False), 12 atoms
    slab.rattle(0.03, seed=1)
    return slab


# ------------------------------------------------------------------------------ pure registry


def test_registry_names_and_fields():
    names = [spec.name for spec in list_models()]
    assert names == ALL_NAMES
    assert {spec.family for spec in list_models()} == {"chgnet", "sevenn", "mace"}
    assert [s.name for s in list_models("mace")] == ALL_NAMES[6:]
    for spec in list_models():
        assert spec.description and spec.version and spec.reference and spec.training_data
        assert spec.is_bundled == (spec.family != "mace")
        assert spec.is_bundled == (spec.bundled_in is not None)
    spec = get_model_spec("SevenNet-0")  # case-insensitive
    assert spec.name == "sevennet-0" and spec.family == "sevenn"
    assert "11Jul2024" in spec.package_path
    assert spec.bundled_in == "sevenn==0.10.4 wheel"
    assert "MPtrj" in get_model_spec("chgnet-0.3.0").training_data
    with pytest.raises(AttributeError):
        spec.name = "other"  # frozen


def test_unknown_model_lists_available_names():
    with pytest.raises(UnknownModelError) as excinfo:
        get_model_spec("mace-mp-1000")
    assert isinstance(excinfo.value, KeyError)
    message = str(excinfo.value)
    assert "mace-mp-1000" in message
    for name in ALL_NAMES:
        assert name in message
    with pytest.raises(KeyError):
        locate_model_file("no-such-model")
    with pytest.raises(ValueError, match="known families"):
        list_models("orb")


def test_locate_bundled_files():
    expected = {
        "chgnet-0.3.0": "chgnet/pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
        "chgnet-0.2.0": "chgnet/pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar",
        "chgnet-r2scan": "chgnet/pretrained/r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
        "sevennet-0": "sevenn/pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
        "sevennet-0-22may2024": (
            "sevenn/pretrained_potentials/SevenNet_0__22May2024/checkpoint_sevennet_0.pth"
        ),
        "sevennet-l3i5": "sevenn/pretrained_potentials/SevenNet_l3i5/checkpoint_l3i5.pth",
    }
    for name, tail in expected.items():
        path = locate_model_file(name)
        assert isinstance(path, pathlib.Path)
        assert path.is_file() and path.stat().st_size > 1_000_000
        assert path.as_posix().endswith(tail)


@pytest.mark.parametrize("name", ["mace-mp-0", "mace-mp-0b3", "mace-mpa-0", "mace-omat-0"])
def test_mace_foundation_models_explain_how_to_supply_them(name, empty_mace_cache):
    with pytest.raises(ModelNotAvailableError) as excinfo:
        locate_model_file(name)
    message = str(excinfo.value)
    assert isinstance(excinfo.value, FileNotFoundError)
    assert "not bundled in any PyPI package and cannot be downloaded here" in message
    assert models.MACE_UPSTREAM_FILES[name] in message
    assert f"reactmlip models add FILE --family mace --name {name}" in message


def test_mace_mp_0_message_is_exact(empty_mace_cache):
    with pytest.raises(ModelNotAvailableError) as excinfo:
        locate_model_file("mace-mp-0")
    message = str(excinfo.value)
    assert message.startswith(
        "MACE-MP-0 weights are not bundled in any PyPI package and cannot be downloaded here. "
        "Download 2023-12-03-mace-128-L1_epoch-199.model on a machine with internet"
    )
    assert message.endswith("then register it: reactmlip models add FILE --family mace --name mace-mp-0")


def test_mace_file_found_in_mace_download_cache(empty_mace_cache):
    """A file that mace_mp() downloaded on this machine before is used, never fetched."""
    empty_mace_cache.mkdir(parents=True)
    cached = empty_mace_cache / "20231203mace128L1_epoch199model"  # mace's cache naming
    cached.write_bytes(b"placeholder")
    assert locate_model_file("mace-mp-0") == cached
    with pytest.raises(ModelNotAvailableError):
        locate_model_file("mace-mpa-0")


def test_check_elements_names_element_and_model():
    covered = ["H", "C", "O", "Cu"]
    check_elements("toy", covered, ["Cu", "O", "H"])  # no error
    check_elements("toy", covered, [1, 29])  # atomic numbers too
    with pytest.raises(ElementNotCoveredError) as excinfo:
        check_elements("sevennet-0", covered, ["Cu", "Og", "Po", "O"])
    error = excinfo.value
    assert isinstance(error, ValueError)
    assert str(error) == (
        "model sevennet-0 does not cover element(s) Po, Og; it covers 4 elements: H, C, O, Cu"
    )
    assert error.model == "sevennet-0" and error.elements == ("Po", "Og")
    with pytest.raises(ElementNotCoveredError, match="element\\(s\\) Og"):
        check_elements("toy", covered, [118])


def test_normalize_family():
    assert models.normalize_family("SevenNet") == "sevenn"
    assert models.normalize_family("7net") == "sevenn"
    assert models.normalize_family("chgnet") == "chgnet"
    with pytest.raises(ValueError, match="unknown model family 'orb'"):
        models.normalize_family("orb")


def test_ensure_cell_boxes_molecules_and_slabs():
    molecule = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    boxed = ensure_cell(molecule, vacuum=10.0)
    assert is_periodic_3d(boxed) and not is_periodic_3d(molecule)
    lengths = boxed.cell.lengths()
    assert np.allclose(lengths, lengths[0]) and np.allclose(boxed.cell.angles(), 90.0)  # cubic
    pos = boxed.get_positions()
    assert pos.min() >= 10.0 - 1e-9 and (lengths[0] - pos.max(axis=0)).min() >= 10.0 - 1e-9
    assert np.allclose(boxed.get_all_distances(), molecule.get_all_distances())
    assert molecule.cell.rank == 0  # input untouched

    slab = fcc111("Cu", size=(2, 2, 2))  # pbc (T, T, F), no cell vector along z
    assert slab.cell.lengths()[2] == 0.0
    boxed_slab = ensure_cell(slab, vacuum=10.0)
    assert is_periodic_3d(boxed_slab)
    assert np.allclose(boxed_slab.cell[:2], slab.cell[:2])
    assert boxed_slab.cell.lengths()[2] > 20.0

    with_vacuum = fcc111("Cu", size=(2, 2, 2), vacuum=7.0)  # an existing cell vector is kept
    assert np.allclose(ensure_cell(with_vacuum).cell, with_vacuum.cell)
    crystal = bulk("Cu", cubic=True)
    assert np.allclose(ensure_cell(crystal).positions, crystal.positions)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        describe_model_file("chgnet", tmp_path / "nothing.pth")
    with pytest.raises(FileNotFoundError):
        load_calculator("sevenn", tmp_path / "nothing.pth")
    with pytest.raises(ValueError, match="dtype"):
        load_calculator("chgnet", locate_model_file("chgnet-0.3.0"), dtype="float64")


def test_models_package_import_is_light_and_aiida_free():
    code = (
        "import sys, aiida_reactmlip.models\n"
        "heavy = [m for m in ('torch', 'chgnet', 'sevenn', 'mace', 'e3nn', 'aiida') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    for path in MODELS_DIR.glob("*.py"):
        text = path.read_text()
        assert "import aiida\n" not in text and "from aiida " not in text and "from aiida." not in text, path


# ------------------------------------------------------------------------------ real models


@pytest.fixture(scope="module")
def chgnet_calc():
    return load_calculator("chgnet", locate_model_file("chgnet-0.3.0"))


@pytest.fixture(scope="module")
def sevennet_calc():
    return load_calculator("sevenn", locate_model_file("sevennet-0"))


@pytest.mark.mlip
def test_describe_sevennet_0():
    path = locate_model_file("sevennet-0")
    info = describe_model_file("sevenn", path)
    assert info["n_elements"] == 89 and len(info["elements"]) == 89
    assert info["elements"][:3] == ["H", "He", "Li"] and info["elements"][-1] == "Pu"
    assert not {"Po", "At", "Rn", "Fr", "Ra"} & set(info["elements"])  # the five it lacks in 1..94
    assert info["cutoff"] == 5.0
    assert info["dtype"] == "float32"
    assert info["n_parameters"] == 842_623
    assert len(info["sha256"]) == 64
    # cached in-process: the second call does not rebuild the model, and returns a fresh copy
    start = time.perf_counter()
    again = describe_model_file("sevennet", str(path))
    assert time.perf_counter() - start < 0.5
    assert again == info and again is not info
    again["elements"].append("Og")
    assert "Og" not in describe_model_file("sevenn", path)["elements"]
    with pytest.raises(ElementNotCoveredError, match="model sevennet-0 does not cover element\\(s\\) Po"):
        check_elements("sevennet-0", info["elements"], ["Cu", "Po"])


@pytest.mark.mlip
def test_describe_chgnet_models():
    info = describe_model_file("chgnet", locate_model_file("chgnet-0.3.0"))
    assert info["n_elements"] == 94 and info["elements"][0] == "H" and info["elements"][-1] == "Pu"
    assert info["cutoff"] == 6.0 and info["bond_graph_cutoff"] == 3.0
    assert info["dtype"] == "float32" and info["n_parameters"] == 412_525
    # 0.2.0 has a 5 A cutoff and output-MLP biases that CHGNet only builds when asked
    old = describe_model_file("chgnet", locate_model_file("chgnet-0.2.0"))
    assert old["cutoff"] == 5.0 and old["n_parameters"] == 400_438
    with pytest.raises(ElementNotCoveredError, match="model chgnet-0.3.0 does not cover element\\(s\\) Og"):
        check_elements("chgnet-0.3.0", info["elements"], ["H", "Og"])


@pytest.mark.mlip
def test_corrupt_model_file_raises_model_load_error(tmp_path):
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ModelLoadError, match="could not load"):
        describe_model_file("chgnet", bad)


def _check_h2_and_slab(calc, force_sum_tol):
    molecule = h2(1.0)  # stretched from ~0.74 A: the bond pulls the atoms together
    molecule.calc = calc
    energy = molecule.get_potential_energy()
    forces = molecule.get_forces()
    assert np.isfinite(energy) and np.all(np.isfinite(forces))
    assert np.abs(forces.sum(axis=0)).max() < force_sum_tol
    assert np.abs(forces[:, :2]).max() < 1e-4  # along the bond (z)
    assert forces[0, 2] > 0.5 and forces[1, 2] < -0.5  # inward

    slab = cu_slab()
    slab.calc = calc
    energy = slab.get_potential_energy()
    forces = slab.get_forces()
    assert np.isfinite(energy) and np.all(np.isfinite(forces))
    assert -4.5 < energy / len(slab) < -3.0  # Cu cohesive-energy scale of MPtrj (PBE)
    assert np.abs(forces.sum(axis=0)).max() < force_sum_tol


@pytest.mark.mlip
def test_sevennet_0_h2_and_cu_slab(sevennet_calc):
    _check_h2_and_slab(sevennet_calc, 1e-3)


@pytest.mark.mlip
def test_chgnet_h2_and_cu_slab(chgnet_calc):
    _check_h2_and_slab(chgnet_calc, 1e-3)


@pytest.mark.mlip
def test_chgnet_molecule_in_box_matches_explicit_box(chgnet_calc):
    """The boxing calculator gives the energy of the molecule in a big box, and no stress."""
    molecule = h2(0.8)
    molecule.calc = chgnet_calc
    energy = molecule.get_potential_energy()
    assert "stress" not in chgnet_calc.results
    explicit = molecule.copy()
    explicit.set_cell([25.0, 25.0, 25.0])
    explicit.center()
    explicit.pbc = True
    explicit.calc = chgnet_calc
    assert explicit.get_potential_energy() == pytest.approx(energy, abs=1e-4)


@pytest.mark.mlip
def test_load_calculator_by_name(chgnet_calc):
    calc = models.load_calculator_by_name("chgnet-0.3.0")
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = calc
    reference = atoms.copy()
    reference.calc = chgnet_calc
    assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(), abs=1e-5)


# ------------------------------------------------------------------------------ MACE (tiny model)


@pytest.fixture(scope="module")
def tiny_mace_file(tmp_path_factory):
    """A randomly initialised 3-element MACE model saved like the foundation models (torch.save(model))."""
    models.allow_e3nn_constants()
    import torch
    from e3nn import o3
    from mace import modules

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        model = modules.ScaleShiftMACE(
            r_max=4.5, num_bessel=4, num_polynomial_cutoff=5, max_ell=1,
            interaction_cls=block, interaction_cls_first=block, num_interactions=1, num_elements=3,
            hidden_irreps=o3.Irreps("8x0e"), MLP_irreps=o3.Irreps("4x0e"),
            atomic_energies=np.array([-1.0, -2.0, -3.0]), avg_num_neighbors=8.0, atomic_numbers=[1, 8, 29],
            correlation=2, gate=torch.nn.functional.silu, atomic_inter_scale=1.0, atomic_inter_shift=0.0,
        )
        path = tmp_path_factory.mktemp("mace") / "tiny.model"
        torch.save(model, path)
    finally:
        torch.set_default_dtype(previous)
    return path


@pytest.mark.mlip
def test_mace_model_file(tiny_mace_file):
    info = describe_model_file("mace", tiny_mace_file)
    assert info["elements"] == ["H", "O", "Cu"]
    assert info["cutoff"] == 4.5 and info["dtype"] == "float64" and info["n_parameters"] > 0
    calc = load_calculator("mace", tiny_mace_file)
    slab = cu_slab()
    slab.calc = calc
    assert np.isfinite(slab.get_potential_energy())
    assert np.abs(slab.get_forces().sum(axis=0)).max() < 1e-8
    with pytest.raises(ElementNotCoveredError, match="does not cover element\\(s\\) Pt"):
        check_elements("tiny-mace", info["elements"], ["Cu", "Pt"])
