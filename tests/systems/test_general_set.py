"""The general reference set (forgetting set): contents, groups, geometry, parameters."""

from collections import Counter

import numpy as np
import pytest

from aiida_reactmlip.systems import (
    CATEGORIES,
    LATTICE_CONSTANTS_PBE,
    describe_system,
    get_system,
    list_systems,
    validate_configurations,
)
from aiida_reactmlip.systems.general import GENERAL_SET_NAME

EXPECTED_GROUPS = {
    "cu-bulk": ("Cu", 3),
    "pt-bulk": ("Pt", 3),
    "h2-gas": ("H2", 3),
    "n2-gas": ("N2", 3),
    "co-gas": ("CO", 3),
    "h2o-gas": ("H2O", 3),
    "cu111-slab": ("Cu8", 3),
}


@pytest.fixture(scope="module")
def general():
    return get_system(GENERAL_SET_NAME)


def test_registered_with_a_library_category():
    assert GENERAL_SET_NAME in list_systems()
    about = describe_system(GENERAL_SET_NAME)
    assert about["category"] in CATEGORIES
    assert GENERAL_SET_NAME in list_systems(about["category"])
    assert about["parameters"]["n_rattle"] == 2


def test_counts_elements_and_groups(general):
    frames = general.configurations
    assert len(frames) == 21
    assert sorted({s for a in frames for s in a.get_chemical_symbols()}) == ["C", "Cu", "H", "N", "O", "Pt"]
    counts = Counter(a.info["group"] for a in frames)
    assert counts == {group: n for group, (_, n) in EXPECTED_GROUPS.items()}
    for atoms in frames:
        formula, _ = EXPECTED_GROUPS[atoms.info["group"]]
        assert atoms.get_chemical_formula() == formula, atoms.info["name"]
        assert atoms.info["system"] == GENERAL_SET_NAME
    roles = Counter(a.info["role"] for a in frames)
    assert roles == {"reference": 7, "strain": 4, "rattle": 10}
    assert len(set(general.names)) == 21


def test_no_overlapping_atoms_and_the_slab_has_vacuum(general):
    validate_configurations(general.configurations)  # raises on overlap (< 0.5 Å) or a slab without vacuum
    for atoms in general.configurations:
        distances = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)]
        if distances.size:
            assert distances.min() > 0.6, atoms.info["name"]
    slab = next(a for a in general.configurations if a.info["name"] == "cu111-slab")
    assert not slab.constraints  # every atom moves in the rattled copies
    z = slab.positions[:, 2]
    assert slab.cell[2, 2] - (z.max() - z.min()) == pytest.approx(10.0)  # 5 Å on each side


def test_bulk_cells_and_strains(general):
    by_name = {a.info["name"]: a for a in general.configurations}
    for metal in ("Cu", "Pt"):
        ref = by_name[f"{metal.lower()}-bulk"]
        assert len(ref) == 1 and ref.pbc.all()
        # fcc primitive cell: volume a^3 / 4 at the PBE lattice constant
        assert ref.get_volume() == pytest.approx(LATTICE_CONSTANTS_PBE[metal] ** 3 / 4)
        for strain in (-0.02, 0.02):
            strained = by_name[f"{metal.lower()}-bulk-strain-{strain:+.3f}"]
            assert strained.get_volume() / ref.get_volume() == pytest.approx((1 + strain) ** 3)
            assert strained.info["role"] == "strain" and strained.info["group"] == f"{metal.lower()}-bulk"


def test_rattled_copies_are_seeded_displacements(general):
    by_group = {}
    for atoms in general.configurations:
        by_group.setdefault(atoms.info["group"], []).append(atoms)
    for group in ("h2o-gas", "cu111-slab"):
        base, *copies = by_group[group]
        assert len(copies) == 2
        for copy in copies:
            d = copy.positions - base.positions
            rms = np.sqrt((d**2).mean())
            assert 0.01 < rms < 0.12, (group, rms)  # Gaussian of 0.05 Å per component
            np.testing.assert_allclose(copy.cell, base.cell)
        assert not np.allclose(copies[0].positions, copies[1].positions)
    again = get_system(GENERAL_SET_NAME)
    for a, b in zip(general.configurations, again.configurations):
        np.testing.assert_array_equal(a.positions, b.positions)
    other = get_system(GENERAL_SET_NAME, seed=7)
    moved = [a.info["name"] for a, b in zip(general.configurations, other.configurations)
             if not np.array_equal(a.positions, b.positions)]
    assert len(moved) == 10  # exactly the rattled copies depend on the seed


def test_parameters_and_bad_input():
    small = get_system(GENERAL_SET_NAME, metals=("Cu",), molecules=("H2O",), n_rattle=0, strains=(), slab_metal="")
    assert [a.info["name"] for a in small.configurations] == ["cu-bulk", "h2o-gas"]
    bigger = get_system(GENERAL_SET_NAME, n_rattle=3, slab_size=(2, 2, 3))
    assert len(bigger.configurations) == 6 + 4 * 4 + 4
    assert max(len(a) for a in bigger.configurations) == 12
    with pytest.raises(ValueError, match="unknown gas molecule"):
        get_system(GENERAL_SET_NAME, molecules=("XeF6",))
    with pytest.raises(ValueError, match="magnetic"):
        get_system(GENERAL_SET_NAME, metals=("Ni",))
    with pytest.raises(ValueError, match="n_rattle"):
        get_system(GENERAL_SET_NAME, n_rattle=-1)
