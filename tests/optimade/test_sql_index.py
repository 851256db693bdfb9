"""The per-frame SQL index: every supported filter runs as SQL and gives the answers of the Python evaluator.

Two apps over the same profile: the normal one (filters become SQL on ``reactmlip_optimade_frames``) and
one whose transformer has no SQL builders, so every filter runs in the former Python evaluator. For each
filter both must answer the same ids in the same order, and the normal app must really have used SQL.
"""

import urllib.parse

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def sql_app(datasets):
    from aiida_reactmlip.optimade.app import create_reactmlip_app

    return create_reactmlip_app()


@pytest.fixture(scope="module")
def clients(sql_app):
    """(SQL client, Python-evaluator client, the SQL app's structures collection)."""
    from fastapi.testclient import TestClient

    from aiida_reactmlip.optimade.app import create_reactmlip_app

    python_app = create_reactmlip_app()
    python_app.state.entry_collections["structures"].transformer.sql_fields = None
    with TestClient(sql_app, base_url="http://example.org") as sql_client, \
            TestClient(python_app, base_url="http://example.org") as python_client:
        yield sql_client, python_client, sql_app.state.entry_collections["structures"]


def _all_ids(client, query: str) -> tuple[int, list[str]]:
    """Status and every id over all pages (ordered as served)."""
    url, found = f"/v1/structures?{query}&page_limit=37", []
    for _ in range(200):
        response = client.get(url)
        if response.status_code != 200:
            return response.status_code, []
        body = response.json()
        found += [entry["id"] for entry in body["data"]]
        link = (body.get("links") or {}).get("next")
        if not link:
            assert body["meta"]["data_returned"] == len(found)
            return 200, found
        url = link["href"] if isinstance(link, dict) else link
    raise AssertionError("more than 200 pages")


def _condition(collection, text):
    return collection.transformer.transform(collection.parser.parse(text))


SQL_FILTERS = [
    'elements HAS "Cu"', 'elements HAS ALL "Cu","O"', 'elements HAS ANY "H","O"', 'elements HAS ONLY "Cu"',
    'elements HAS ONLY "Cu","O"', 'elements HAS ALL "Cu","Cu"', "elements HAS 1", 'elements HAS ANY 1,"H"',
    'elements HAS ALL "Cu",1', 'species_at_sites HAS "O"', 'species_at_sites HAS ONLY "H"', 'NOT elements HAS "Cu"',
    "elements LENGTH 2", "elements LENGTH >= 2", "species_at_sites LENGTH > 8", "cartesian_site_positions LENGTH 3",
    "nelements=2 AND nsites>=9", "NOT nsites > 3", "nsites > 99999999999999999999999", "nsites < 1e400",
    "_reactmlip_energy < -31", "_reactmlip_energy > -31 OR _reactmlip_stress IS KNOWN",
    "NOT _reactmlip_stress IS KNOWN", "_reactmlip_stress LENGTH 6", "NOT _reactmlip_stress LENGTH 6",
    "_reactmlip_forces IS KNOWN", "_reactmlip_forces LENGTH 2", "NOT _reactmlip_forces LENGTH < 3",
    'chemical_formula_reduced="Cu2O"', 'chemical_formula_reduced < "Cu"', 'chemical_formula_anonymous STARTS "A8"',
    'chemical_formula_hill CONTAINS "u8"', 'chemical_formula_reduced ENDS WITH "O"',
    'NOT chemical_formula_descriptive = "H2"',
    "nperiodic_dimensions=2", "dimension_types HAS 1", "dimension_types HAS ONLY 0", "dimension_types HAS ALL 0,1",
    "dimension_types LENGTH 3", "structure_features LENGTH 0", 'structure_features HAS "disorder"',
    'NOT structure_features HAS ONLY "disorder"', "lattice_vectors LENGTH 3",
    '_reactmlip_role="final" OR _reactmlip_name ENDS "_2"', '_reactmlip_system STARTS "cu" AND NOT _reactmlip_role="md"',
    'NOT _reactmlip_name = "slab"', '_reactmlip_name > "h"', '_reactmlip_functional = "PBE"',
    'NOT _reactmlip_functional = "PBE"', "_reactmlip_ecutwfc > 10", "_reactmlip_dft_code IS UNKNOWN",
    'NOT _reactmlip_pseudopotentials IS KNOWN', "_reactmlip_kpoints LENGTH 3",
    '_reactmlip_name CONTAINS "%"', '_reactmlip_name CONTAINS "_"', '_reactmlip_name CONTAINS "SLAB"',
    '_reactmlip_name = "a\u0000b"', 'NOT _reactmlip_name < "h\u0000"', '_reactmlip_name >= "slab\u0000x"',
    "_reactmlip_frame_index >= 1", 'last_modified > "2000-01-01T00:00:00Z"', 'last_modified < "2000-01-01T00:00:00Z"',
    "_crazyprovider_x = 2", "NOT _crazyprovider_x = 2", "_crazyprovider_x IS UNKNOWN", "_crazyprovider_x HAS 1",
    "1 < 2", "1 > 2 OR nsites = 2", 'NOT "a" = 1 OR nsites = 3',
    "_reactmlip_stress IS UNKNOWN OR NOT _reactmlip_stress LENGTH 6",
    '(nsites > 5 AND _reactmlip_name = "slab") OR NOT _reactmlip_functional = "x"',
    "NOT (NOT (_reactmlip_energy < -40 AND nsites < 9))",
]
#: Need a frame's arrays: the Python evaluator runs them on the frames the SQL part keeps.
FALLBACK_FILTERS = ["elements_ratios HAS 0.5", "_reactmlip_forces HAS 1", "nsites > 1 AND lattice_vectors HAS 8"]


def _with_ids(text, datasets):
    cu, h2 = datasets["cu"].uuid, datasets["h2"].uuid
    return text.replace("<cu>", cu).replace("<h2>", h2)


ID_FILTERS = ['id = "<cu>:1"', 'id STARTS "<cu>"', 'id > "<cu>:1"', 'NOT id = "<cu>:1"', 'immutable_id ENDS ":2"',
              '_reactmlip_dataset_uuid = "<h2>"', '_reactmlip_dataset_uuid != "<h2>"', 'id = "<cu>:99"',
              'id = "junk"', 'id = "<cu>:1" OR _reactmlip_dataset_uuid = "<h2>"']


@pytest.mark.parametrize("text", SQL_FILTERS + ID_FILTERS + FALLBACK_FILTERS)
def test_sql_and_python_evaluator_agree(clients, datasets, text):
    sql_client, python_client, collection = clients
    text = _with_ids(text, datasets)
    condition = _condition(collection, text)
    assert (condition.sql is None) == (text in FALLBACK_FILTERS), text
    query = "filter=" + urllib.parse.quote(text)
    sql_status, sql_ids = _all_ids(sql_client, query)
    python_status, python_ids = _all_ids(python_client, query)
    assert sql_status == python_status == 200
    assert sql_ids == python_ids


def test_three_valued_logic_in_sql(clients, datasets):
    """No stress is unknown: neither ``LENGTH 6`` nor ``NOT LENGTH 6`` holds for the molecule frames."""
    sql_client = clients[0]
    h2 = f'_reactmlip_dataset_uuid="{datasets["h2"].uuid}"'
    for text in ("_reactmlip_stress LENGTH 6", "NOT _reactmlip_stress LENGTH 6", "NOT _reactmlip_functional = \"x\""):
        assert _all_ids(sql_client, "filter=" + urllib.parse.quote(f"{h2} AND {text}")) == (200, [])
    assert len(_all_ids(sql_client, "filter=" + urllib.parse.quote(f"{h2} AND _reactmlip_stress IS UNKNOWN"))[1]) == 3


@pytest.mark.parametrize("sort", ["_reactmlip_energy", "-nsites", "chemical_formula_reduced", "-id",
                                  "-_reactmlip_name", "last_modified,-_reactmlip_frame_index", "elements"])
def test_sorted_pages_agree(clients, datasets, sort):
    sql_client, python_client, collection = clients
    query = "filter=" + urllib.parse.quote('elements HAS ANY "H","Cu"') + f"&sort={sort}"
    sql_status, sql_ids = _all_ids(sql_client, query)
    assert sql_status == 200 and len(sql_ids) >= 6
    assert (sql_status, sql_ids) == _all_ids(python_client, query)
    field = sort.split(",")[0].lstrip("-")
    assert (collection.sql_fields.sort_key(field) is None) == (field == "elements")  # a list: Python sorts it


# hypothesis: generated filters, both paths answer the same status and ids
PROPERTIES = ["elements", "nelements", "nsites", "chemical_formula_reduced", "species_at_sites", "_reactmlip_energy",
              "_reactmlip_stress", "_reactmlip_role", "_reactmlip_name", "dimension_types", "_other_field",
              "structure_features", "nperiodic_dimensions", "chemical_formula_anonymous"]
VALUES = st.one_of(st.integers(-200, 200).map(str), st.sampled_from(['"Cu"', '"H"', '"O"', '"Cu2O"', '"slab"', '""',
                                                                     "1e400", "-31.2", "0", "1", "2", '"A8B"']))
OPERATORS = st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "HAS", "HAS ALL", "HAS ANY", "HAS ONLY", "LENGTH",
                             "LENGTH >", "CONTAINS", "STARTS", "ENDS", "IS KNOWN", "IS UNKNOWN"])


@st.composite
def _comparison(draw):
    prop, op = draw(st.sampled_from(PROPERTIES)), draw(OPERATORS)
    if op.startswith("IS"):
        return f"{prop} {op}"
    count = 1 if op in ("HAS", "LENGTH", "LENGTH >") or op[0] in "=!<>" or op[0] in "CSE" else 3
    return f"{prop} {op} {','.join(draw(st.lists(VALUES, min_size=1, max_size=count)))}"


GENERATED = st.recursive(_comparison(), lambda children: st.one_of(
    st.tuples(children, st.sampled_from(["AND", "OR"]), children).map(" ".join),
    children.map(lambda c: f"NOT ({c})")), max_leaves=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=GENERATED)
def test_generated_filters_agree(clients, text):
    sql_client, python_client, _ = clients
    query = "filter=" + urllib.parse.quote(text)
    assert _all_ids(sql_client, query) == _all_ids(python_client, query), text


# ---------------------------------------------------------------------------- the index itself
def test_index_tables_live_in_the_profile_database(clients):
    from aiida_reactmlip.optimade.index import profile_engine

    engine = profile_engine()
    names = set(sa.inspect(engine).get_table_names())
    assert {"reactmlip_optimade_frames", "reactmlip_optimade_datasets", "reactmlip_optimade_compositions",
            "reactmlip_optimade_composition_elements", "db_dbnode"} <= names


def test_elements_has_is_an_index_lookup(clients):
    """``elements HAS "Cu"``: the composition ids come from a key search of the composition-elements table, and
    the frames are then found through the composition index (a literal ``IN`` list the planner can estimate)."""
    from aiida_reactmlip.optimade.index import frames_table, profile_engine

    collection = clients[2]
    where = _condition(collection, 'elements HAS "Cu"').sql
    engine = profile_engine()
    query = sa.select(frames_table.c.id).where(where).limit(20)
    compiled = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    assert "composition_elements" not in compiled and "composition_id IN (" in compiled, compiled
    resolve = sa.text("EXPLAIN QUERY PLAN SELECT DISTINCT composition_id FROM reactmlip_optimade_composition_elements "
                      "WHERE element IN ('Cu')")
    with engine.connect() as conn:
        plan = " | ".join(str(row[-1]) for row in conn.execute(resolve))
        frames_plan = " | ".join(str(row[-1]) for row in conn.execute(sa.text("EXPLAIN QUERY PLAN " + compiled)))
    assert "SEARCH reactmlip_optimade_composition_elements" in plan, plan
    assert "reactmlip_optimade_frames_composition" in frames_plan or "SCAN reactmlip_optimade_frames" in frames_plan


def test_index_follows_stored_and_deleted_datasets(clients, datasets, h2_images):
    from aiida.tools.graph.deletions import delete_nodes

    from aiida_reactmlip.data.dataset import LabelledDatasetData
    from aiida_reactmlip.optimade.index import frames_table

    sql_client, _, collection = clients
    node = LabelledDatasetData.from_atoms(h2_images()).store()
    query = f'filter=_reactmlip_dataset_uuid="{node.uuid}"'
    assert _all_ids(sql_client, query) == (200, [f"{node.uuid}:{i}" for i in range(3)])
    pk = node.pk
    delete_nodes([pk], dry_run=False)
    assert _all_ids(sql_client, query) == (200, [])
    with collection.index.engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).where(frames_table.c.dataset_pk == pk)).scalar()
    assert left == 0 and pk not in collection.index.datasets


def test_cli_index_rebuilds_every_frame(clients):
    from aiida import orm
    from click.testing import CliRunner

    from aiida_reactmlip.cli.cmd_optimade import cmd_optimade
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    result = CliRunner().invoke(cmd_optimade, ["index", "--rebuild"])
    assert result.exit_code == 0, result.output
    stored = orm.QueryBuilder().append(LabelledDatasetData, project="attributes.n_frames").all(flat=True)
    assert f"{len(stored):,} datasets, {sum(stored):,} frames" in result.output
    assert clients[0].get("/v1/structures?page_limit=1").json()["meta"]["data_available"] == sum(stored)


def test_sql_budget_refuses_a_costly_filter(datasets):
    from fastapi.testclient import TestClient

    from aiida_reactmlip.optimade.app import create_reactmlip_app
    from aiida_reactmlip.optimade.guard import FilterLimits

    limits = FilterLimits(max_sql_evaluations=12)  # 3 terms x >= 6 frames > 12 >= 2 terms x 3 frames
    with TestClient(create_reactmlip_app(filter_limits=limits), base_url="http://example.org") as client:
        response = client.get('/v1/structures?filter=nsites=1 OR nsites=2 OR nsites=3')
        assert response.status_code == 400
        assert "filter too expensive: 3 terms on" in response.json()["errors"][0]["detail"]
        narrowed = client.get(f'/v1/structures?filter=_reactmlip_dataset_uuid="{datasets["cu"].uuid}" AND nsites=9')
        assert narrowed.status_code == 200 and narrowed.json()["meta"]["data_returned"] == 1


def test_add_indexes_a_stored_dataset_from_its_frames(clients, h2_images):
    """The store-path hook: rows written from the frames in hand; the catch-up then finds nothing to do."""
    from aiida_reactmlip.data.dataset import LabelledDatasetData
    from aiida_reactmlip.optimade.index import FrameIndex

    images = h2_images()
    node = LabelledDatasetData.from_atoms(images).store()
    index = FrameIndex()
    assert index.add(node, node.frames) is True
    assert index.add(node) is False  # already indexed: nothing written twice
    assert index.catch_up() == 0 and index.datasets[node.pk] == (node.uuid, 3)
    body = clients[0].get(f'/v1/structures?filter=_reactmlip_dataset_uuid="{node.uuid}" AND nsites=2').json()
    assert [e["attributes"]["_reactmlip_energy"] for e in body["data"]] == [-31.2, -31.5, -30.9]
