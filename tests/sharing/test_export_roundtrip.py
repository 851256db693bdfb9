"""Static export (extxyz, OPTIMADE JSONL, MACE) and the OPTIMADE round trip through a stock server."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from aiida import orm

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.frames import read_extxyz

from .conftest import invoke, make_frames, stock_server

BIN = pathlib.Path(sys.executable).parent


def _count():
    return orm.QueryBuilder().append(LabelledDatasetData).count()


def test_export_formats_via_cli(stored_dataset, tmp_path):
    out = tmp_path / "default.extxyz"
    result = invoke("dataset", "export", stored_dataset.pk, out)
    assert result.exit_code == 0, result.output
    assert read_extxyz(out).identical(make_frames())

    jsonl = tmp_path / "d.jsonl"
    result = invoke("dataset", "export", stored_dataset.pk, jsonl, "--format", "optimade-jsonl")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert "x-optimade" in lines[0] and lines[1]["type"] == "info"
    entries = lines[2:]
    assert [e["id"] for e in entries] == [f"{stored_dataset.uuid}:{i}" for i in range(4)]
    frames = make_frames()
    for i, entry in enumerate(entries):
        attributes = entry["attributes"]
        assert attributes["_reactmlip_energy"] == frames.energies[i]
        assert attributes["_reactmlip_dataset_uuid"] == stored_dataset.uuid
        assert np.array_equal(attributes["_reactmlip_forces"], frames.forces[frames.atoms_slice(i)])
    assert entries[0]["attributes"]["_reactmlip_stress"] == frames.stress[0].tolist()
    assert entries[3]["attributes"]["_reactmlip_stress"] is None  # water: no stress label
    assert entries[3]["attributes"]["lattice_vectors"] == [[None] * 3] * 3  # no cell, not periodic
    assert entries[3]["attributes"]["chemical_formula_reduced"] == "H2O"
    assert entries[3]["attributes"]["chemical_formula_anonymous"] == "A2B"

    bad = invoke("dataset", "export", stored_dataset.pk, tmp_path / "x", "--format", "npz")
    assert bad.exit_code != 0 and "npz" in bad.output


def test_mace_export_is_read_by_mace_with_default_keys(stored_dataset, tmp_path):
    from aiida_reactmlip.models._torch_compat import allow_e3nn_constants

    allow_e3nn_constants()
    from mace.data.utils import KeySpecification, load_from_xyz

    path = tmp_path / "train.xyz"
    assert invoke("dataset", "export", stored_dataset.pk, path, "--format", "mace").exit_code == 0
    text = path.read_text()
    assert "REF_energy=" in text and ":REF_forces:R:3" in text and "REF_stress=" in text
    assert " energy=" not in text and ":forces:R:3" not in text
    _, configs = load_from_xyz(str(path), key_specification=KeySpecification.from_defaults())
    frames = make_frames()
    assert len(configs) == 4
    for i, config in enumerate(configs):
        assert config.properties["energy"] == frames.energies[i]
        assert np.array_equal(config.properties["forces"], frames.forces[frames.atoms_slice(i)])
        assert config.config_type == ("scan" if i < 3 else "initial")
        assert config.property_weights["energy"] == 1.0 and config.property_weights["forces"] == 1.0
    # MACE reads REF_stress as a 3x3 tensor; compare with the Voigt label (xx yy zz yz xz xy)
    stress = np.asarray(configs[1].properties["stress"], dtype=float).reshape(3, 3)
    xx, yy, zz, yz, xz, xy = frames.stress[1]
    assert np.array_equal(stress, [[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    assert configs[3].property_weights["stress"] == 0.0  # water has no stress: MACE ignores it


@pytest.fixture(scope="module")
def served_export(tmp_path_factory, aiida_profile):
    """A stored dataset exported to JSONL and served by a stock optimade server (mongomock)."""
    node = LabelledDatasetData(frames=make_frames())
    node.label = "served"
    node.store()
    path = tmp_path_factory.mktemp("jsonl") / "served.jsonl"
    result = invoke("dataset", "export", node.pk, path, "--format", "optimade-jsonl")
    assert result.exit_code == 0, result.output
    with stock_server(path) as url:
        yield node, url


def test_jsonl_served_by_stock_server_passes_optimade_validator(served_export):
    _, url = served_export
    result = subprocess.run([str(BIN / "optimade-validator"), url, "--json"], capture_output=True, text=True,
                            timeout=300)
    report = json.loads(result.stdout)
    assert result.returncode == 0, report["failure_messages"]
    assert report["failure_count"] == 0 and report["internal_failure_count"] == 0
    assert report["success_count"] >= 40


def test_round_trip_through_stock_server(served_export):
    original, url = served_export
    query = f'_reactmlip_dataset_uuid="{original.uuid}"'
    before = _count()
    result = invoke("dataset", "import-optimade", url, query, "--label", "round-trip")
    assert result.exit_code == 0, result.output
    assert _count() == before + 1
    node = orm.load_node(int(result.output.split("LabelledDatasetData<")[1].split(">")[0]))
    back, frames = node.frames, original.frames
    # exact equality of every label and coordinate
    for name in ("energies", "forces", "stress", "positions", "cells", "numbers", "pbc", "n_atoms"):
        assert np.array_equal(getattr(back, name), getattr(frames, name), equal_nan=name in ("stress",)), name
    for i, info in enumerate(back.info):
        assert info.pop("optimade_id") == f"{original.uuid}:{i}"
        assert info == frames.info[i]
    source = node.base.attributes.get("optimade_source")
    assert source["url"] == url and source["filter"] == query
    assert source["ids"] == [f"{original.uuid}:{i}" for i in range(4)]
    assert source["dataset_uuids"] == [original.uuid] and source["provider"] == "reactmlip"


def test_import_subset_by_filter(served_export):
    original, url = served_export
    from aiida_reactmlip.sharing.optimade_import import import_optimade

    node = import_optimade(url, f'_reactmlip_dataset_uuid="{original.uuid}" AND elements HAS "O"', store=False)
    assert node.n_frames == 1 and node.frames.energies[0] == -466.0987654321
    assert not node.is_stored


def test_import_refuses_bad_filter_and_too_many(served_export):
    _, url = served_export
    before = _count()
    result = invoke("dataset", "import-optimade", url, "elements HAZ 'H'")
    assert result.exit_code != 0 and "not a valid OPTIMADE filter" in result.output
    result = invoke("dataset", "import-optimade", url, "_reactmlip_nonsense > 1")
    assert result.exit_code != 0 and "refused the filter" in result.output
    result = invoke("dataset", "import-optimade", url, 'elements HAS "H"', "--max-structures", "2")
    assert result.exit_code != 0 and "more than max_structures=2" in result.output
    result = invoke("dataset", "import-optimade", url, 'elements HAS "Xe"')
    assert result.exit_code != 0 and "matches no structure" in result.output
    assert _count() == before


def test_import_refuses_server_without_reactmlip_fields(aiida_profile):
    before = _count()
    with stock_server("--plain") as url:
        result = invoke("dataset", "import-optimade", url, 'elements HAS "Si"')
    assert result.exit_code != 0
    assert "does not serve the DFT label field(s) _reactmlip_energy, _reactmlip_forces" in result.output
    assert _count() == before
    unreachable = invoke("dataset", "import-optimade", "http://127.0.0.1:9", 'elements HAS "H"', "--timeout", "2")
    assert unreachable.exit_code != 0 and "cannot reach" in unreachable.output
