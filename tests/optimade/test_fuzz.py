"""Fuzz the filter endpoint: any filter string gets 200, or 400/501 with an OPTIMADE error body; never a 500."""

import urllib.parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PROPERTIES = ["elements", "nelements", "nsites", "chemical_formula_reduced", "id", "last_modified", "species_at_sites",
              "_reactmlip_energy", "_reactmlip_forces", "_reactmlip_role", "_reactmlip_unknown", "_other_field",
              "cartesian_site_positions", "lattice_vectors", "crazy"]
VALUES = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.sampled_from(['"Cu"', '"H"', '"O2"', '"2024-01-01T00:00:00Z"', '"x\\"y"', '""', "1e400", "-0.0"]),
)
OPERATORS = st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "HAS", "HAS ALL", "HAS ANY", "HAS ONLY", "LENGTH",
                             "CONTAINS", "STARTS WITH", "ENDS", "IS KNOWN", "IS UNKNOWN", "HAS <", ":"])


@st.composite
def comparison(draw):
    prop, op = draw(st.sampled_from(PROPERTIES)), draw(OPERATORS)
    if op.startswith("IS"):
        return f"{prop} {op}"
    values = draw(st.lists(VALUES, min_size=1, max_size=3))
    return f"{prop} {op} {','.join(values)}"


def _expression(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(["AND", "OR"]), children).map(" ".join),
        children.map(lambda c: f"NOT {c}"),
        children.map(lambda c: f"({c})"),
    )


FILTERS = st.one_of(
    st.recursive(comparison(), _expression, max_leaves=4),
    st.text(max_size=40),  # arbitrary text, most of it malformed
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filter_=FILTERS)
def test_fuzz_filter_never_500(client, filter_):
    response = client.get("/v1/structures?" + urllib.parse.urlencode({"filter": filter_, "page_limit": 5}))
    assert response.status_code in (200, 400, 501), (filter_, response.status_code, response.text[:500])
    body = response.json()
    if response.status_code == 200:
        assert isinstance(body["data"], list) and body["meta"]["data_returned"] >= len(body["data"])
    else:
        assert body["errors"][0]["status"] == str(response.status_code)
        assert body["errors"][0]["detail"]


def _assert_optimade_answer(response, context):
    assert response.status_code in (200, 400, 403, 404, 501), (context, response.status_code, response.text[:500])
    body = response.json()
    if response.status_code >= 400:
        assert body["errors"][0]["status"] == str(response.status_code)
        assert body["errors"][0]["detail"]


PAGING_VALUES = st.one_of(
    st.integers(-10**30, 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
    st.sampled_from(["", "-0", "0x10", "1e3", " 5", "5 ", "+5", "١٢", "None", "[]"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["page_limit", "page_offset", "page_number", "page_cursor"]),
                              PAGING_VALUES, min_size=1, max_size=3))
def test_fuzz_paging_never_500(client, params):
    """Any value of any paging parameter: 200, 400 (wrong type or range) or 403 (above page_limit_max)."""
    response = client.get("/v1/structures?" + urllib.parse.urlencode(params))
    _assert_optimade_answer(response, params)


HOSTILE_FILTERS = st.one_of(
    st.integers(0, 3000).map(lambda n: "(" * n + "nsites=1" + ")" * n),
    st.integers(0, 1500).map(lambda n: "NOT (" * n + "nsites=1" + ")" * n),
    st.integers(1, 3000).map(lambda n: " OR ".join(["nsites=1"] * n)),
    st.integers(1, 3000).map(lambda n: "elements HAS ANY " + ",".join(['"Cu"'] * n)),
    st.tuples(st.integers(0, 40), st.integers(0, 40)).map(lambda t: "(" * t[0] + "nsites=1" + ")" * t[1]),
    st.text(min_size=1, max_size=200).map(lambda t: '_reactmlip_name="' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.text(alphabet=st.sampled_from('()"\\ ANDORT=<>!,:.'), max_size=300),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filter_=HOSTILE_FILTERS)
def test_fuzz_hostile_filters_never_500(client, filter_):
    """Deep nesting, long chains and lists, any text in a string literal: 200, 400 or 501, never 500."""
    response = client.get("/v1/structures?" + urllib.parse.urlencode({"filter": filter_, "page_limit": 5}))
    _assert_optimade_answer(response, filter_[:200])
