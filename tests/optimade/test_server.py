"""The OPTIMADE server over the AiiDA profile: filters, provider fields, links, bad input."""

import concurrent.futures

import numpy as np
import pytest


def ids(client, datasets, query):
    """Ids of this module's entries matching ``query``, following ``links.next`` over every page.

    The profile is shared with the rest of the suite, so a broad filter (``IS UNKNOWN``) can match
    more entries than one page holds; ours may sit on any page.
    """
    uuids = {node.uuid for node in datasets.values()}
    found, url = [], f"/v1/structures?{query}&page_limit=100"
    for _ in range(1000):
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        found += [e["id"] for e in body["data"] if e["attributes"]["_reactmlip_dataset_uuid"] in uuids]
        url = (body.get("links") or {}).get("next")
        if not url:
            return sorted(found)
        url = url["href"] if isinstance(url, dict) else url
    raise AssertionError("more than 1000 pages")


def sid(node, index):
    return f"{node.uuid}:{index}"


@pytest.fixture(scope="module")
def crowd(datasets):
    """150 more unlabelled-stress H2 frames in another dataset: broad filters then span several pages."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    from aiida_reactmlip.data.dataset import LabelledDatasetData

    frames = []
    for i in range(150):
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.001 * i]], pbc=False)
        atoms.calc = SinglePointCalculator(atoms, energy=-31.0, forces=np.zeros((2, 3)))
        frames.append(atoms)
    node = LabelledDatasetData.from_atoms(frames)
    node.label = "optimade crowd"
    return node.store()


@pytest.mark.parametrize(
    "filter_, expected",
    [
        ('elements HAS "Cu"', [("cu", 0), ("cu", 1), ("cu", 2)]),
        ('elements HAS ALL "Cu","O"', [("cu", 1), ("cu", 2)]),
        ('elements HAS ONLY "Cu"', [("cu", 0)]),
        ('elements HAS ANY "H","O"', [("h2", 0), ("h2", 1), ("h2", 2), ("cu", 1), ("cu", 2)]),
        ("nelements=2 AND nsites>=9", [("cu", 1)]),
        ("NOT nsites > 3", [("h2", 0), ("h2", 1), ("h2", 2), ("cu", 2)]),
        ('chemical_formula_reduced="Cu2O"', [("cu", 2)]),
        ('chemical_formula_anonymous="A8B"', [("cu", 1)]),
        ("nperiodic_dimensions=2", [("cu", 0), ("cu", 1)]),
        ("elements LENGTH 1", [("h2", 0), ("h2", 1), ("h2", 2), ("cu", 0)]),
        # integer literal against float energies (eV): numeric comparison, on SQLite too
        ("_reactmlip_energy < -31", [("h2", 0), ("h2", 1), ("cu", 0), ("cu", 1), ("cu", 2)]),
        ("_reactmlip_energy > -31", [("h2", 2)]),
        ("-31 < _reactmlip_energy", [("h2", 2)]),
        ("_reactmlip_energy = -120", [("cu", 0)]),
        ("_reactmlip_energy <= -125.5", [("cu", 1)]),
        # three-valued logic: no stress is unknown, NOT keeps it unknown
        ("_reactmlip_stress IS UNKNOWN", [("h2", 0), ("h2", 1), ("h2", 2), ("cu", 2)]),
        ('_reactmlip_role="final" OR _reactmlip_name ENDS "_2"', [("h2", 2), ("cu", 1)]),
        ('_reactmlip_system STARTS "cu" AND NOT _reactmlip_role="md"', [("cu", 0), ("cu", 1)]),
    ],
)
def test_filters(client, datasets, crowd, filter_, expected):
    assert ids(client, datasets, f"filter={filter_}") == sorted(sid(datasets[d], i) for d, i in expected)


def test_id_and_dataset_filters(client, datasets):
    cu = datasets["cu"]
    assert ids(client, datasets, f'filter=id="{sid(cu, 1)}"') == [sid(cu, 1)]
    assert ids(client, datasets, f'filter=_reactmlip_dataset_uuid="{cu.uuid}"') == [sid(cu, i) for i in range(3)]
    assert ids(client, datasets, 'filter=id="not-a-reactmlip-id"') == []


def test_single_entry_carries_exact_labels(client, datasets):
    node = datasets["cu"]
    frames = node.frames
    response = client.get(f"/v1/structures/{sid(node, 1)}")
    assert response.status_code == 200, response.text
    entry = response.json()["data"]
    attributes = entry["attributes"]
    start, stop = frames.offsets[1], frames.offsets[1] + frames.n_atoms[1]
    assert attributes["_reactmlip_energy"] == -125.5
    np.testing.assert_array_equal(np.array(attributes["_reactmlip_forces"]), frames.forces[start:stop])
    np.testing.assert_array_equal(np.array(attributes["cartesian_site_positions"]), frames.positions[start:stop])
    assert attributes["_reactmlip_stress"] == pytest.approx(list(np.arange(6) * 2e-3), abs=0)
    assert attributes["nsites"] == 9 and attributes["elements"] == ["Cu", "O"]
    assert attributes["chemical_formula_reduced"] == "Cu8O"
    assert attributes["_reactmlip_source_uuid"] is None  # built from ASE atoms, no DFT calculation
    assert attributes["_reactmlip_dft_code"] is None
    assert attributes["_reactmlip_name"] == "slab_o"
    # a molecule without a box: null lattice vectors for its aperiodic directions
    h2 = client.get(f"/v1/structures/{sid(datasets['h2'], 0)}").json()["data"]["attributes"]
    assert h2["lattice_vectors"] == [[None, None, None]] * 3 and h2["dimension_types"] == [0, 0, 0]


def test_link_from_structure_to_dataset(client, datasets):
    node = datasets["h2"]
    response = client.get(f"/v1/structures/{sid(node, 2)}?include=references")
    body = response.json()
    assert body["data"]["relationships"]["references"]["data"] == [{"type": "references", "id": node.uuid}]
    assert [i["id"] for i in body["included"]] == [node.uuid]
    reference = client.get(f"/v1/references/{node.uuid}").json()["data"]
    assert reference["attributes"]["title"] == "h2 optimade test"
    assert "3 labelled frames of H" in reference["attributes"]["note"]


def test_pagination_and_counts(client, datasets):
    first = client.get('/v1/structures?filter=elements HAS ANY "H","Cu"&page_limit=2&sort=_reactmlip_energy').json()
    assert first["meta"]["data_returned"] >= 6 and first["meta"]["more_data_available"] is True
    energies = [e["attributes"]["_reactmlip_energy"] for e in first["data"]]
    assert energies == sorted(energies)
    assert "page_offset=2" in first["links"]["next"]
    assert first["meta"]["data_available"] >= 6


def test_new_dataset_is_served_on_next_request(client, datasets, h2_images):
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    make_h2_images = h2_images

    before = client.get("/v1/structures?filter=_reactmlip_energy=-30.9").json()["meta"]["data_returned"]
    extra = LabelledDatasetData.from_atoms(make_h2_images()[2:]).store()
    after = client.get("/v1/structures?filter=_reactmlip_energy=-30.9").json()
    assert after["meta"]["data_returned"] == before + 1
    assert f"{extra.uuid}:0" in {e["id"] for e in after["data"]}


def test_concurrent_requests_close_sessions(client, datasets, monkeypatch):
    from aiida_reactmlip.optimade import backend

    calls = []
    original = backend.close_session
    monkeypatch.setattr(backend, "close_session", lambda: (calls.append(1), original()))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: client.get('/v1/structures?filter=elements HAS "Cu"').status_code, range(24)))
    assert codes == [200] * 24
    assert len(calls) >= 48  # every request closes its session after the query and after the count


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "query, status, words",
    [
        ("filter=elements HAS", 400, "Unable to parse filter"),
        ('filter=nsites > "a"', 400, "nsites"),
        ("filter=crazyfield = 2", 400, "crazyfield"),
        ("filter=_reactmlip_nonexistent = 1", 400, "_reactmlip_nonexistent"),
        ('filter=chemical_formula_reduced CONTAINS 3', 400, "CONTAINS"),
        ('filter=elements:elements HAS "Cu":"O"', 501, "correlated"),
        ('filter=last_modified > "yesterday"', 400, "timestamp"),
        ("page_limit=100000", 403, "Max allowed page_limit is 500"),
        ("sort=cartesian_site_positions", 400, "not sortable"),
    ],
)
def test_bad_input_gets_optimade_error(client, datasets, query, status, words):
    response = client.get(f"/v1/structures?{query}")
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errors"] and words in body["errors"][0]["detail"]
    assert "meta" in body


def test_unknown_provider_fields_give_warnings(client, datasets):
    body = client.get("/v1/structures?response_fields=nsites,_reactmlip_bogus&page_limit=1").json()
    assert any("_reactmlip_bogus" in w["detail"] for w in body["meta"]["warnings"])
    body = client.get("/v1/structures?filter=_crazyprovider_x=2").json()
    assert body["data"] == [] and any("_crazyprovider_x" in w["detail"] for w in body["meta"]["warnings"])


def test_cli_serve_help():
    from click.testing import CliRunner

    from aiida_reactmlip.cli.cmd_optimade import cmd_optimade

    result = CliRunner().invoke(cmd_optimade, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "uvicorn" in result.output
