"""The DFT-labelled fixture datasets (fixtures/datasets): labels, groups, provenance, and that pw.x reproduces them."""

import importlib.util
import pathlib
import re
from collections import Counter

import numpy as np
import pytest

from aiida_reactmlip.fixture_data import (
    GENERAL_FIXTURE,
    POOL_FIXTURE,
    fixture_metadata,
    fixture_path,
    list_fixture_datasets,
    load_fixture_dataset,
)
from aiida_reactmlip.splits import split_by_group

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "make_dft_pools.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_dft_pools", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pool():
    return load_fixture_dataset(POOL_FIXTURE)


@pytest.fixture(scope="module")
def general():
    return load_fixture_dataset(GENERAL_FIXTURE)


def _check_labels(images):
    for atoms in images:
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        assert np.isfinite(energy), atoms.info["name"]
        assert forces.shape == (len(atoms), 3)
        assert np.all(np.isfinite(forces))
        for key in ("system", "group", "name", "source_uuid"):
            assert atoms.info.get(key), (atoms.info.get("name"), key)


def test_both_fixtures_are_present_and_unknown_names_are_explained():
    assert {POOL_FIXTURE, GENERAL_FIXTURE} <= set(list_fixture_datasets())
    with pytest.raises(FileNotFoundError, match="make_dft_pools.py"):
        fixture_path("no-such-pool")


def test_pool_labels_and_groups(pool):
    _check_labels(pool)
    assert len(pool) == 60
    assert all(a.get_chemical_formula() == "CH4" for a in pool)
    assert {a.info["system"] for a in pool} == {"ch4-dissociation"}
    assert len({a.info["name"] for a in pool}) == 60
    counts = Counter(a.info["group"] for a in pool)
    assert counts["scan-ch4-h1"] == 9 and counts["scan-ch4-h3-distorted"] == 7
    rattle_min = {g: n for g, n in counts.items() if g.startswith("rattle-min-")}
    stretch = {g: n for g, n in counts.items() if g.startswith("rattle-stretch-")}
    assert len(rattle_min) == 5 and set(rattle_min.values()) == {4}
    assert len(stretch) == 6 and set(stretch.values()) == {4}
    assert len(counts) == 13
    # frames of a group are contiguous in the file
    order = [a.info["group"] for a in pool]
    assert [g for k, g in enumerate(order) if k == 0 or order[k - 1] != g] == list(dict.fromkeys(order))


def test_pool_geometry_is_what_the_script_builds(pool):
    """The labelled structures are exactly the script's configurations (same order, positions to 1e-12 Å)."""
    built = _script().pool_configurations()
    assert [a.info["name"] for a in built] == [a.info["name"] for a in pool]
    for a, b in zip(built, pool):
        assert a.info["group"] == b.info["group"]
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-12)
        np.testing.assert_allclose(b.cell[:], a.cell[:], atol=1e-12)


def test_pool_labels_are_physical(pool):
    """DFT labels that belong to their geometry: scan minimum near 1.1 Å, forces along the stretched bond."""
    scan = [a for a in pool if a.info["group"] == "scan-ch4-h1"]
    d = np.array([a.get_distance(0, 1) for a in scan])
    energies = np.array([a.get_potential_energy() for a in scan])
    assert 1.05 <= d[np.argmin(energies)] <= 1.13
    assert energies[-1] - energies.min() > 1.5  # C-H stretched to 2 Å costs eV, not meV
    for atoms, distance in zip(scan, d):
        bond = atoms.positions[1] - atoms.positions[0]
        along = float(atoms.get_forces()[1] @ bond / np.linalg.norm(bond))
        if distance < 1.0:
            assert along > 1.0  # compressed: H pushed out
        if distance > 1.3:
            assert along < -1.0  # stretched: H pulled back
    for atoms in pool:
        # an isolated molecule: the forces sum to (nearly) zero
        assert np.abs(atoms.get_forces().sum(axis=0)).max() < 0.05, atoms.info["name"]


def test_pool_splits_by_group_without_leakage(pool):
    groups = [a.info["group"] for a in pool]
    split = split_by_group(groups, test_fraction=0.25, validation_fraction=0.1, seed=0)
    seen = {name: {groups[i] for i in split[name]} for name in ("train", "validation", "test")}
    assert not seen["train"] & seen["test"] and not seen["train"] & seen["validation"]
    assert sorted(split["train"] + split["validation"] + split["test"]) == list(range(60))
    assert 10 <= len(split["test"]) <= 20


def test_general_set_labels_groups_and_families(general):
    _check_labels(general)
    counts = Counter(a.info["group"] for a in general)
    assert counts == {"cu-bulk": 3, "pt-bulk": 3, "h2-gas": 3, "n2-gas": 3, "co-gas": 3, "h2o-gas": 3,
                      "cu111-slab": 3}
    family_of = {}
    for atoms in general:
        for symbol in set(atoms.get_chemical_symbols()):
            family_of.setdefault(symbol, set()).add(atoms.info["pseudo_family"])
    # every element labelled with one family only; Pt needs PseudoDojo (Debian has no scalar-relativistic PBE Pt)
    assert all(len(f) == 1 for f in family_of.values())
    assert family_of["Pt"] == {"reactmlip/pseudodojo-pbe-sr-standard"}
    assert family_of["Cu"] == {"reactmlip/debian-pbe"}
    # bulk carries stress, ordered with the strain (ASE sign: compressed cells have negative stress)
    for metal in ("cu", "pt"):
        by_name = {a.info["name"]: a for a in general if a.info["group"] == f"{metal}-bulk"}
        xx = [by_name[f"{metal}-bulk-strain--0.020"].get_stress()[0], by_name[f"{metal}-bulk"].get_stress()[0],
              by_name[f"{metal}-bulk-strain-+0.020"].get_stress()[0]]
        assert xx[0] < xx[1] < xx[2], (metal, xx)
        assert np.abs(by_name[f"{metal}-bulk"].get_forces()).max() < 1e-6  # one atom per cell: no force
    for atoms in general:
        if atoms.info["role"] == "rattle":
            assert np.abs(atoms.get_forces()).max() > 0.05, atoms.info["name"]


def test_general_set_is_the_library_system(general):
    from aiida_reactmlip.systems import get_system

    built = {a.info["name"]: a for a in get_system(GENERAL_FIXTURE).configurations}
    assert set(built) == {a.info["name"] for a in general}
    for atoms in general:
        np.testing.assert_allclose(atoms.positions, built[atoms.info["name"]].positions, atol=1e-12)


#: The reaction pools of the evidence protocol: fixture -> library system.
REACTION_POOLS = {"h-h2-exchange-pool": "h-h2-exchange", "nh3-inversion-pool": "nh3-inversion"}


@pytest.mark.parametrize("name", sorted(REACTION_POOLS))
def test_reaction_pool_holds_200_frames_in_parent_geometry_groups(name):
    images = load_fixture_dataset(name)
    _check_labels(images)
    assert len(images) >= 200 and len({a.info["name"] for a in images}) == len(images)
    assert {a.info["system"] for a in images} == {REACTION_POOLS[name]}
    assert len({a.get_chemical_formula() for a in images}) == 1
    counts = Counter(a.info["group"] for a in images)
    kinds = Counter(group.split("-")[0] for group in counts)
    # the library band, the explorer's NEB band, bond scans, MD from 5 images at 2 temperatures, rattles of 11 images
    assert counts["band"] == 13 and counts["mlip-neb"] == 7
    assert kinds["md"] == 10 and all(n == 10 for g, n in counts.items() if g.startswith("md-"))
    assert kinds["rattle"] == 11 and kinds["scan"] >= 4
    order = [a.info["group"] for a in images]  # frames of a group are contiguous
    assert [g for k, g in enumerate(order) if k == 0 or order[k - 1] != g] == list(dict.fromkeys(order))
    # whole groups to each side: band, MD trajectories and rattle batches never straddle a split
    groups = [a.info["group"] for a in images]
    split = split_by_group(groups, test_fraction=0.2, validation_fraction=0.2, seed=3)
    seen = {key: {groups[i] for i in split[key]} for key in ("train", "validation", "test")}
    assert not seen["train"] & seen["test"] and not seen["validation"] & seen["test"]


@pytest.mark.parametrize("name", sorted(REACTION_POOLS))
def test_reaction_pool_geometry_is_what_the_script_builds(name):
    """The pure-geometry part of the pool (band, scans, rattles) is exactly the script's; the explored part (CHGNet
    NEB band and MD) sits in its own groups, every MD frame a different geometry."""
    images = load_fixture_dataset(name)
    built = {a.info["name"]: a for a in _script().reaction_pool_configurations(REACTION_POOLS[name], explore=False)}
    stored = {a.info["name"]: a for a in images}
    assert set(built) <= set(stored)
    for key, atoms in built.items():
        assert stored[key].info["group"] == atoms.info["group"]
        np.testing.assert_allclose(stored[key].positions, atoms.positions, atol=1e-12)
    explored = [a for a in images if a.info["name"] not in built]
    assert {a.info["group"].split("-")[0] for a in explored} == {"md", "mlip"}
    md = np.array([a.positions.ravel() for a in explored if a.info["role"] == "mlip_md"])
    assert len(md) == 100 and len(np.unique(np.round(md, 6), axis=0)) == 100


def test_reaction_pool_labels_are_physical():
    """The DFT labels belong to their reaction: a barrier in the middle of each band (H3: PBE's small collinear
    barrier; NH3: the inversion barrier, experiment ~0.25 eV), the N-H scan's minimum at its grid point nearest 1.02 Å, and no force
    left on an isolated molecule."""
    for name in REACTION_POOLS:
        images = load_fixture_dataset(name)
        band = [a for a in images if a.info["group"] == "band"]
        energies = np.array([a.get_potential_energy() for a in band])
        barrier = energies.max() - energies[0]
        assert 0.05 < barrier < 0.40, (name, barrier)
        assert 3 <= int(np.argmax(energies)) <= 9, (name, energies)  # the top is inside the band, not an end
        assert abs(energies[-1] - energies[0]) < 0.02  # symmetric reactions: the end states are mirror images
        for atoms in images:
            assert np.abs(atoms.get_forces().sum(axis=0)).max() < 0.05, atoms.info["name"]
    scan = [a for a in load_fixture_dataset("nh3-inversion-pool") if a.info["group"] == "scan-nh-pyramid"]
    d = np.array([a.get_distance(0, 1) for a in scan])
    assert 0.96 <= d[np.argmin([a.get_potential_energy() for a in scan])] <= 1.11  # grid 0.90, 0.97, 1.10 Å


@pytest.mark.parametrize("name", [POOL_FIXTURE, GENERAL_FIXTURE, *sorted(REACTION_POOLS)])
def test_sidecar_records_how_the_labels_were_made(name):
    meta = fixture_metadata(name)
    images = load_fixture_dataset(name)
    assert meta["n_frames"] == len(images)
    assert meta["protocol"]["name"] == "fast"
    assert all(re.match(r"\d+\.\d+", v) for v in meta["pw_x_version"]) and meta["pw_x_version"]
    uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    assert uuid.match(meta["dataset_uuid"])
    assert meta["label_workchains"] and all(uuid.match(w["uuid"]) for w in meta["label_workchains"])
    assert sum(w["n_frames"] for w in meta["label_workchains"]) == len(images)
    assert Counter(a.info["group"] for a in images) == meta["groups"]
    assert [f["name"] for f in meta["frames"]] == [a.info["name"] for a in images]
    # each frame's label came from the pw.x calculation named in the sidecar
    assert [f["pw_uuid"] for f in meta["frames"]] == [a.info["source_uuid"] for a in images]
    assert all(f["pw_wall_s"] > 0 for f in meta["frames"])
    families = meta["pseudo_families"]
    elements = sorted({s for a in images for s in a.get_chemical_symbols()})
    assert sorted(el for record in families.values() for el in record) == elements
    for setting in meta["pw_settings"]:
        assert setting["ecutrho_Ry"] >= 4 * setting["ecutwfc_Ry"] > 0


@pytest.mark.pwx
def test_relabelling_a_pool_frame_with_pw_reproduces_the_fixture(codes, pseudo_family, pool):
    """pw.x, run again on one stored frame (a distorted CH4, one C-H at 1.32 Å) through reactmlip.label, gives its
    label: energy within 1 meV, every force component within 1 meV/Å."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.specs.builders import structures_from_atoms
    from aiida_reactmlip.workflows.label import LabelWorkChain

    meta = fixture_metadata(POOL_FIXTURE)
    atoms = next(a for a in pool if a.info["name"] == "ch4-h3-distorted-scan-1.32")  # among the cheapest (~5 s CPU)
    assert meta["pseudo_families"].keys() == {pseudo_family.label}
    frame = atoms.copy()
    frame.info = {k: v for k, v in atoms.info.items() if k not in ("source_uuid", "key")}
    _, node = run_get_node(
        LabelWorkChain,
        structures=structures_from_atoms([frame], ["frame"]),
        pw_code=codes["pw"],
        pseudo_family=orm.Str(pseudo_family.label),
        protocol=orm.Str(meta["protocol"]["name"]),
        options=orm.Dict(meta["pw_options"]),
    )
    assert node.is_finished_ok, node.exit_message
    (again,) = node.outputs.dataset.to_atoms()
    d_energy = abs(again.get_potential_energy() - atoms.get_potential_energy())
    d_forces = np.abs(again.get_forces() - atoms.get_forces()).max()
    print(f"re-labelled {atoms.info['name']}: |dE| = {d_energy:.2e} eV, max |dF| = {d_forces:.2e} eV/Å")
    assert d_energy < 1e-3
    assert d_forces < 1e-3
    assert np.abs(atoms.get_forces()).max() > 0.5  # a frame with forces worth reproducing
