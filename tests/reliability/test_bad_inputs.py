"""Bad input across the CLI, the Python API and the OPTIMADE API: refused with a clear message, no traceback,
nothing stored (the catalogue: ``tests/reliability/bad_inputs_catalogue.py``; the docs table:
``tests/reliability/make_bad_inputs_table.py``)."""

import json
import os
import pathlib

import pytest

from aiida_reactmlip.report.docs_blocks import read_block

from . import bad_inputs_catalogue as catalogue
from . import make_bad_inputs_table as table

CASES = catalogue.catalogue()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, codes, pseudo_family):
    """The bad files, a StructureData, a dataset, an H-only model, SevenNet-0 stored, the OPTIMADE app."""
    from fastapi.testclient import TestClient

    from aiida_reactmlip import provision
    from aiida_reactmlip.optimade.app import create_reactmlip_app

    provision.ensure_registry_models(["sevennet-0"])
    with TestClient(create_reactmlip_app(), base_url="http://example.org") as client:
        yield catalogue.make_workspace(tmp_path_factory.mktemp("bad-inputs"), client)


@pytest.fixture(scope="module")
def rows(workspace):
    """Every case run once, by id."""
    return {case.id: catalogue.run_case(case, workspace) for case in CASES}


def test_catalogue_covers_every_class():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) >= 25
    assert {case.surface for case in CASES} == {"cli", "api", "optimade"}
    words = " ".join(ids)
    for word in ("missing-file", "empty", "garbage", "overlapping", "zero-volume", "no-cell", "not-covered",
                 "no-pseudopotential", "wrong-shape", "nan-energy", "unknown-key", "string-for-number",
                 "list-for-mapping", "over-pool", "corrupt", "structure-pk", "missing-folder", "zero-mpiprocs",
                 "optimade-malformed", "optimade-huge-page-limit", "optimade-negative-offset", "optimade-long-filter"):
        assert word in words, word


@pytest.mark.parametrize("case_id", [case.id for case in CASES])
def test_bad_input_is_refused(rows, case_id):
    row = rows[case_id]
    assert not row["traceback"], row["message"]
    assert row["nodes_after"] == row["nodes_before"], f"{case_id} stored {row['nodes_after'] - row['nodes_before']} node(s)"
    if row["surface"] == "cli":
        assert row["exit_code"] not in (0, None), row["message"]
    elif row["surface"] == "optimade":
        assert 400 <= row["exit_code"] < 500, row
    else:
        assert row["exit_code"] is None, row["message"]
    assert row["expected_fragment"].lower() in row["message"].lower(), row["message"]
    assert row["refused"]


@pytest.fixture(scope="module", autouse=True)
def write_results_when_asked(request):
    """``make_bad_inputs_table`` sets REACTMLIP_BAD_INPUTS_WRITE: that run writes the JSON and the docs block
    from the rows the tests check. A fixture, not a test: a normal run has nothing to skip."""
    if os.environ.get(table.WRITE_ENV):
        rows = request.getfixturevalue("rows")
        table.write([rows[case.id] for case in CASES])
    yield


def test_docs_block_is_the_rendering_of_the_json():
    result = json.loads(table.RESULT_JSON.read_text())
    assert len(result["rows"]) >= 25
    assert all(row["refused"] for row in result["rows"]), [r["id"] for r in result["rows"] if not r["refused"]]
    page = pathlib.Path(table.DOCS_PAGE).read_text()
    assert read_block(page, table.BLOCK) == table.render(result)
