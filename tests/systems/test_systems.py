"""Reactive-system library: registry, tags and geometry of the shipped systems."""

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from aiida_reactmlip.systems import (
    ROLES,
    ReactiveSystem,
    get_system,
    list_systems,
    load_structure_file,
    system_from_file,
)

DISSOCIATION = {
    "h2-dissociation": 0.74,
    "o2-dissociation": 1.21,
    "n2-dissociation": 1.10,
    "co-dissociation": 1.13,
}


def test_registry_lists_shipped_systems():
    assert set(DISSOCIATION) <= set(list_systems())
    with pytest.raises(KeyError, match="h2-dissociation"):
        get_system("nope")
    with pytest.raises(TypeError, match="distances"):
        get_system("h2-dissociation", spacing=0.1)


def test_h2_dissociation_has_seven_frames_at_the_asked_distances():
    system = get_system("h2-dissociation")
    assert isinstance(system, ReactiveSystem)
    assert system.category == "dissociation"
    assert len(system.configurations) == 7
    expected = [0.55, 0.65, 0.70, 0.75, 0.80, 0.90, 1.10]
    for d, atoms in zip(expected, system.configurations):
        assert abs(atoms.get_distance(0, 1) - d) < 1e-12
        assert atoms.get_chemical_symbols() == ["H", "H"]
        assert atoms.pbc.all()
        np.testing.assert_allclose(atoms.cell.lengths(), [8.0, 8.0, 8.0])
        np.testing.assert_allclose(atoms.positions.mean(axis=0), [4.0, 4.0, 4.0], atol=1e-12)
        assert atoms.info["role"] == "scan"
        assert atoms.info["system"] == "h2-dissociation"
    assert system.names[4] == "h2-scan-0.80"


def test_parameters_change_the_scan_and_box():
    system = get_system("h2-dissociation", distances=[0.6, 1.5], box=10.0)
    assert [round(a.get_distance(0, 1), 12) for a in system.configurations] == [0.6, 1.5]
    np.testing.assert_allclose(system.configurations[0].cell.lengths(), [10.0] * 3)
    assert system.parameters == {"distances": [0.6, 1.5], "box": 10.0}


@pytest.mark.parametrize("name,r0", DISSOCIATION.items())
def test_diatomic_scans_bracket_the_equilibrium(name, r0):
    system = get_system(name)
    d = [a.get_distance(0, 1) for a in system.configurations]
    assert len(d) == 7
    assert min(d) < r0 < max(d)
    assert all(a.info["role"] in ROLES for a in system.configurations)
    assert len(set(system.names)) == 7


def test_o2_is_set_up_as_triplet():
    (o2, *_) = get_system("o2-dissociation").configurations
    assert o2.info["multiplicity"] == 3
    assert o2.get_initial_magnetic_moments().sum() == pytest.approx(2.0)


def test_reactive_system_checks_tags():
    atoms = bulk("Cu")
    atoms.info.update(name="cu", role="reference", system="x")
    ReactiveSystem("x", "user", "", [atoms])
    with pytest.raises(ValueError, match="category"):
        ReactiveSystem("x", "weird", "", [atoms])
    bad = atoms.copy()
    bad.info = {"name": "cu", "role": "md", "system": "x"}
    with pytest.raises(ValueError, match="role"):
        ReactiveSystem("x", "user", "", [bad])


def test_load_structure_file(tmp_path):
    path = tmp_path / "frames.extxyz"
    write(path, [bulk("Cu"), bulk("Cu", a=3.7)])
    frames = load_structure_file(path)
    assert len(frames) == 2
    system = system_from_file(path, "mine", role="reference")
    assert system.names == ["mine-0", "mine-1"] and system.category == "user"
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("this is not\na structure\n")
    with pytest.raises(ValueError, match="garbage.xyz"):
        load_structure_file(garbage)
    with pytest.raises(FileNotFoundError, match="missing.cif"):
        load_structure_file(tmp_path / "missing.cif")
