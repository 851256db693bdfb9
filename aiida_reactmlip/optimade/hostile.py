"""Hostile and malformed requests against the OPTIMADE app: the catalogue, a runner, and the read-only checks.

Shared by ``tests/optimade/test_hostile.py`` and ``python -m benchmarks optimade_hostile`` (which writes
``docs/results/optimade-hostile.json`` and the table of ``docs/optimade.md`` from it):

- :func:`catalogue`: every hostile request tried (deep nesting, 100 kB filters, long OR chains, bad paging,
  unknown fields, wrong types, hostile strings, id injection, write methods) with the answers allowed.
- :func:`send`: one request through a Starlette ``TestClient``, or straight through the ASGI interface
  when the URL is longer than httpx accepts (64 kB).
- :func:`run_catalogue`: each request's status, error detail, wall and CPU time (ms).
- :func:`database_fingerprint`: node, link, group, comment and log counts, the latest node ``mtime`` and a
  SHA-256 of every ``LabelledDatasetData`` (attributes, extras, repository metadata): equal before and
  after means that nothing was written.
- :func:`flood`: many requests in a row, with the process RSS (MiB) and the open database connections.
- :func:`markdown_table`: the docs table from a result JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import hashlib
import json
import os
import time
import urllib.parse
from typing import Any

__all__ = ('HostileRequest', 'catalogue', 'database_fingerprint', 'db_connections', 'flood', 'markdown_table',
           'rss_mib', 'run_catalogue', 'send')

#: httpx refuses URLs longer than this; longer requests go straight to the ASGI app.
_HTTPX_MAX_URL = 60_000


@dataclasses.dataclass(frozen=True)
class HostileRequest:
    """One request: ``query`` is the encoded query string; ``expect`` the allowed status codes; ``words`` a
    text the error detail must hold (case-insensitive; '' for none)."""

    name: str
    method: str
    path: str
    query: str
    expect: tuple[int, ...]
    words: str = ''

    @property
    def url(self) -> str:
        return self.path + ('?' + self.query if self.query else '')


def _q(**params: Any) -> str:
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def _or_chain(n: int) -> str:
    return ' OR '.join(f'nsites={i}' for i in range(n))


def catalogue(sample_id: str, dataset_uuid: str) -> list[HostileRequest]:
    """The hostile requests tried; ``sample_id``/``dataset_uuid``: an existing structure id and dataset UUID."""
    s = '/v1/structures'
    big = 10**23
    requests = [
        # --- filters: size and nesting
        HostileRequest('1,000 nested parentheses', 'GET', s, _q(filter='(' * 1000 + 'nsites=1' + ')' * 1000),
                       (400,), 'nested too deeply'),
        HostileRequest('500 nested NOT (...)', 'GET', s, _q(filter='NOT (' * 500 + 'nsites=1' + ')' * 500),
                       (400,), 'nested too deeply'),
        HostileRequest('1,000 NOT without parentheses', 'GET', s, _q(filter='NOT ' * 1000 + 'nsites=1'),
                       (400,), 'unable to parse'),
        HostileRequest('21 nested parentheses (limit + 1)', 'GET', s, _q(filter='(' * 21 + 'nsites=1' + ')' * 21),
                       (400,), '20 levels'),
        HostileRequest('20 nested parentheses (at the limit)', 'GET', s, _q(filter='(' * 20 + 'nsites=1' + ')' * 20),
                       (200,)),
        HostileRequest('100 kB filter (one string literal)', 'GET', s,
                       _q(filter='chemical_formula_reduced="' + 'x' * 100_000 + '"'), (400,), 'too long'),
        HostileRequest('100 kB filter of garbage', 'GET', s, _q(filter='))((' * 25_000), (400,), 'too long'),
        HostileRequest('OR chain of 2,000 terms', 'GET', s, _q(filter=_or_chain(2000)), (400,), 'too long'),
        HostileRequest('OR chain of 257 terms (limit + 1)', 'GET', s, _q(filter=_or_chain(257)), (400,), '256 terms'),
        HostileRequest('OR chain of 256 terms (at the limit)', 'GET', s, _q(filter=_or_chain(256), page_limit=5),
                       (200, 400), 'too expensive'),
        HostileRequest('AND chain of 256 terms', 'GET', s,
                       _q(filter=' AND '.join(f'nsites>{-i}' for i in range(256)), page_limit=5),
                       (200, 400), 'too expensive'),
        HostileRequest('HAS ANY with 256 values', 'GET', s,
                       _q(filter='elements HAS ANY ' + ','.join(f'"X{i}"' for i in range(256)), page_limit=5),
                       (200, 400), 'too expensive'),
        HostileRequest('HAS ANY with 600 values', 'GET', s,
                       _q(filter='elements HAS ANY ' + ','.join(f'"E{i}"' for i in range(600))), (400,), 'terms'),
        # --- filters: malformed, unknown, ill-typed
        HostileRequest('unbalanced parentheses', 'GET', s, _q(filter='((nsites=1'), (400,), 'unable to parse'),
        HostileRequest('truncated comparison', 'GET', s, _q(filter='elements HAS'), (400,), 'unable to parse'),
        HostileRequest('two expressions side by side', 'GET', s, _q(filter='nsites=1 nsites=2'), (400,), 'AND or OR'),
        HostileRequest('unknown field', 'GET', s, _q(filter='crazyfield = 2'), (400,), 'crazyfield'),
        HostileRequest('unknown field with our prefix', 'GET', s, _q(filter='_reactmlip_bogus = 1'), (400,),
                       '_reactmlip_bogus'),
        HostileRequest('number field vs string', 'GET', s, _q(filter='nsites > "a"'), (400,), 'nsites'),
        HostileRequest('list field vs number', 'GET', s, _q(filter='elements = 3'), (400,), 'elements'),
        HostileRequest('timestamp vs non-date', 'GET', s, _q(filter='last_modified > "yesterday"'), (400,),
                       'timestamp'),
        HostileRequest('4,400-digit integer', 'GET', s, _q(filter='nsites=' + '9' * 4400), (400,), 'cannot be read'),
        HostileRequest('1e999 (float overflow)', 'GET', s, _q(filter='_reactmlip_energy < 1e999', page_limit=5), (200,)),
        # --- filters: hostile strings
        HostileRequest('SQL-looking string', 'GET', s,
                       _q(filter='chemical_formula_reduced="\'; DROP TABLE db_dbnode; --"'), (200,)),
        HostileRequest('escaped quotes and backslashes', 'GET', s, _q(filter=r'_reactmlip_name="a\"b\\c"'), (200,)),
        HostileRequest('unterminated string', 'GET', s, _q(filter='_reactmlip_name="abc'), (400,), 'unable to parse'),
        HostileRequest('unicode and emoji in a string', 'GET', s,
                       _q(filter='_reactmlip_name="h\u00e9llo \u2603 \U0001f600"'), (200,)),
        HostileRequest('unicode operator outside a string', 'GET', s, _q(filter='nsites\uff1d1'), (400,),
                       'unable to parse'),
        HostileRequest('NUL byte in a string', 'GET', s, _q(filter='_reactmlip_name="a\x00b"'), (200,)),
        # --- filters: grammar not implemented (501, as the specification asks)
        HostileRequest('correlated HAS (elements:elements)', 'GET', s, _q(filter='elements:elements HAS "Cu":"O"'),
                       (501,), 'correlated'),
        HostileRequest('property = property', 'GET', s, _q(filter='nsites = nelements'), (501,), 'two properties'),
        # --- paging
        HostileRequest('page_limit=-1', 'GET', s, _q(page_limit=-1), (400,), 'page_limit'),
        HostileRequest('page_limit=10^23', 'GET', s, _q(page_limit=big), (403,), 'page_limit'),
        HostileRequest('page_limit=1.5', 'GET', s, _q(page_limit=1.5), (400,), 'page_limit'),
        HostileRequest('page_limit=abc', 'GET', s, _q(page_limit='abc'), (400,), 'page_limit'),
        HostileRequest('page_offset=-5', 'GET', s, _q(page_offset=-5), (400,), 'page_offset'),
        HostileRequest('page_offset=10^23', 'GET', s, _q(page_offset=big), (200,)),
        HostileRequest('page_offset=1e3', 'GET', s, _q(page_offset='1e3'), (400,), 'page_offset'),
        HostileRequest('page_number=-3 (1-based: warning, page 1)', 'GET', s, _q(page_number=-3, page_limit=5), (200,)),
        HostileRequest('page_number=10^21', 'GET', s, _q(page_number=10**21), (200,)),
        HostileRequest('page_cursor=-1', 'GET', s, _q(page_cursor=-1), (400,), 'page_cursor'),
        HostileRequest('page_above=5 (not supported)', 'GET', s, _q(page_above=5), (501,), 'page_above'),
        HostileRequest('largest page: page_limit=500, sorted', 'GET', s, _q(page_limit=500, sort='-_reactmlip_energy'),
                       (200,)),
        # --- other parameters
        HostileRequest('sort on one field 5,000 times', 'GET', s, _q(sort=','.join(['nsites'] * 5000), page_limit=5),
                       (200,)),
        HostileRequest('sort on an unknown field', 'GET', s, _q(sort='crazy'), (400,), 'crazy'),
        HostileRequest('response_fields: 3,000 unknown', 'GET', s, _q(response_fields=','.join(f'f{i}' for i in range(3000))),
                       (400,), 'response_fields'),
        HostileRequest('include=foo', 'GET', s, _q(include='foo'), (400,), 'foo'),
        # --- single entries and other endpoints
        HostileRequest('id injection: /structures/x" OR nsites>0 OR id="y', 'GET',
                       s + '/' + urllib.parse.quote('x" OR nsites>0 OR id="y'), '', (404,), 'no structures entry'),
        HostileRequest('100 kB id', 'GET', s + '/' + 'a' * 100_000, '', (404,), 'no structures entry'),
        HostileRequest('sort on a list field', 'GET', s, _q(sort='cartesian_site_positions'), (400,), 'not sortable'),
        HostileRequest('/references: 1,000 nested parentheses', 'GET', '/v1/references',
                       _q(filter='(' * 1000 + 'id="x"' + ')' * 1000), (400,), 'nested too deeply'),
        HostileRequest('/links: 1,000 nested parentheses', 'GET', '/v1/links',
                       _q(filter='(' * 1000 + 'id="x"' + ')' * 1000), (400,), 'nested too deeply'),
        HostileRequest('/links: OR chain of 2,000 terms', 'GET', '/v1/links',
                       _q(filter=' OR '.join(f'id="{i}"' for i in range(2000))), (400,), 'too long'),
        HostileRequest('/info/structures?page_limit=-1', 'GET', '/v1/info/structures', _q(page_limit=-1), (200,)),
        # --- writes: the API is read-only
        HostileRequest('POST /structures (an entry)', 'POST', s, '', (405,)),
        HostileRequest('PUT /structures/<id>', 'PUT', f'{s}/{sample_id}', '', (405,)),
        HostileRequest('PATCH /structures/<id>', 'PATCH', f'{s}/{sample_id}', '', (405,)),
        HostileRequest('DELETE /structures/<id>', 'DELETE', f'{s}/{sample_id}', '', (405,)),
        HostileRequest('DELETE /references/<dataset uuid>', 'DELETE', f'/v1/references/{dataset_uuid}', '', (405,)),
        HostileRequest('POST /links', 'POST', '/v1/links', '', (405,)),
        HostileRequest('POST /v1/nodes (no such endpoint)', 'POST', '/v1/nodes', '', (404,)),
    ]
    return requests


# ------------------------------------------------------------------------------------------------ sending
def _asgi(app, method: str, path: str, query: str, body: bytes = b'') -> tuple[int, bytes]:
    """One request straight through the ASGI interface (no URL length limit): (status, body)."""
    scope = {
        'type': 'http', 'asgi': {'version': '3.0'}, 'http_version': '1.1', 'method': method, 'scheme': 'http',
        'path': urllib.parse.unquote(path), 'raw_path': path.encode(), 'query_string': query.encode(),
        'root_path': '', 'headers': [(b'host', b'example.org')], 'client': ('127.0.0.1', 1), 'server': ('example.org', 80),
    }
    sent = {'status': 0, 'body': b''}
    messages = [{'type': 'http.request', 'body': body, 'more_body': False}]

    async def call():
        done = asyncio.Event()

        async def receive():
            if messages:
                return messages.pop(0)
            await done.wait()  # the client stays connected until the whole response is read
            return {'type': 'http.disconnect'}

        async def reply(message):
            if message['type'] == 'http.response.start':
                sent['status'] = message['status']
            elif message['type'] == 'http.response.body':
                sent['body'] += message.get('body', b'')
                if not message.get('more_body', False):
                    done.set()

        await app(scope, receive, reply)
        done.set()

    asyncio.run(call())
    return sent['status'], sent['body']


def send(client, request: HostileRequest) -> tuple[int, Any]:
    """Send ``request`` (through ``client``, or the ASGI app ``client.app`` for long URLs): (status, JSON or text)."""
    body = json.dumps({'data': {'type': 'structures', 'id': 'x', 'attributes': {}}}).encode() \
        if request.method in ('POST', 'PUT', 'PATCH') else b''
    if len(request.url) > _HTTPX_MAX_URL:
        status, raw = _asgi(client.app, request.method, request.path, request.query, body)
        text = raw.decode('utf-8', 'replace')
    else:
        response = client.request(request.method, request.url, content=body or None,
                                  headers={'content-type': 'application/json'} if body else None)
        status, text = response.status_code, response.text
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def _detail(body: Any) -> str:
    if isinstance(body, dict) and body.get('errors'):
        return str(body['errors'][0].get('detail') or body['errors'][0].get('title') or '')
    return ''


def check_answer(request: HostileRequest, status: int, body: Any) -> list[str]:
    """What is wrong with an answer (empty when it is right): status allowed, JSON:API error body naming it."""
    problems = []
    if status not in request.expect:
        problems.append(f'status {status}, expected {request.expect}')
    if status >= 400:
        errors = body.get('errors') if isinstance(body, dict) else None
        if not errors:
            problems.append('no JSON:API errors list in the body')
        else:
            if str(errors[0].get('status')) != str(status):
                problems.append(f"errors[0].status {errors[0].get('status')!r} is not {status}")
            if not errors[0].get('detail') and not errors[0].get('title'):
                problems.append('the error names nothing')
            if request.words and request.words.lower() not in _detail(body).lower():
                problems.append(f'detail lacks {request.words!r}: {_detail(body)[:200]!r}')
        if isinstance(body, dict) and 'meta' not in body:
            problems.append('no meta in the error body')
    return problems


def run_catalogue(client, requests: list[HostileRequest], repeat: int = 1) -> list[dict[str, Any]]:
    """Send each request ``repeat`` times; one row per request with the slowest wall and CPU time (ms).

    CPU time is this process's (``time.process_time``: all its threads, client included).
    """
    rows = []
    for request in requests:
        wall = cpu = 0.0
        for _ in range(repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            status, body = send(client, request)
            wall = max(wall, time.perf_counter() - w0)
            cpu = max(cpu, time.process_time() - c0)
        rows.append({
            'name': request.name, 'method': request.method, 'url_chars': len(request.url), 'status': status,
            'expected': list(request.expect), 'wall_ms': round(wall * 1e3, 1), 'cpu_ms': round(cpu * 1e3, 1),
            'detail': _detail(body)[:160], 'problems': check_answer(request, status, body),
        })
    return rows


# ------------------------------------------------------------------------------------------------ database
def database_fingerprint() -> dict[str, Any]:
    """Counts of what a request could write and a SHA-256 of every stored ``LabelledDatasetData``."""
    from aiida import orm

    from aiida_reactmlip.data.dataset import LabelledDatasetData

    if True:  # the caller's session stays open: closing it would detach the nodes the caller holds
        counts = {name: orm.QueryBuilder().append(cls).count() for name, cls in (
            ('nodes', orm.Node), ('groups', orm.Group), ('comments', orm.Comment), ('logs', orm.Log),
            ('computers', orm.Computer), ('users', orm.User), ('authinfos', orm.AuthInfo))}
        counts['links'] = orm.QueryBuilder().append(orm.Node, tag='a').append(orm.Node, with_incoming='a').count()
        counts['group_members'] = orm.QueryBuilder().append(orm.Group, tag='g').append(orm.Node, with_group='g').count()
        latest = orm.QueryBuilder().append(orm.Node, project=['mtime']).order_by({orm.Node: {'mtime': 'desc'}}).first()
        digest = hashlib.sha256()
        qb = orm.QueryBuilder().append(LabelledDatasetData, project=[
            'uuid', 'label', 'description', 'attributes', 'extras', 'repository_metadata', 'mtime'])
        qb.order_by({LabelledDatasetData: {'id': 'asc'}})
        datasets = 0
        for row in qb.iterall():
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
            datasets += 1
        return {**counts, 'datasets': datasets, 'latest_mtime': str(latest[0]) if latest else None,
                'datasets_sha256': digest.hexdigest()}


def _engine():
    from aiida.manage import get_manager

    storage = get_manager().get_profile_storage()
    factory = getattr(storage, '_session_factory', None)
    return getattr(getattr(factory, 'session_factory', None), 'kw', {}).get('bind')


def db_connections(count_sessions: bool = True) -> dict[str, Any]:
    """Database connections of this process: the SQLAlchemy pool's checked-out and idle ones, the SQLAlchemy
    sessions still alive (a request that does not close its session leaves one per worker thread), and for
    SQLite the file descriptors open on the database file."""
    from sqlalchemy.orm import Session

    engine = _engine()
    pool = getattr(engine, 'pool', None)
    out: dict[str, Any] = {
        'checked_out': pool.checkedout() if hasattr(pool, 'checkedout') else None,
        'idle': pool.checkedin() if hasattr(pool, 'checkedin') else None,
    }
    if count_sessions:  # a scan of every Python object: tens of ms
        gc.collect()
        out['sessions_alive'] = sum(1 for obj in gc.get_objects() if isinstance(obj, Session))
    database = getattr(getattr(engine, 'url', None), 'database', None)
    if database and os.path.isdir('/proc/self/fd'):
        target = os.path.realpath(database)
        count = 0
        for fd in os.listdir('/proc/self/fd'):
            try:
                if os.readlink(f'/proc/self/fd/{fd}') == target:
                    count += 1
            except OSError:
                continue
        out['sqlite_fds'] = count
    return out


def rss_mib() -> float:
    """Resident memory of this process, MiB (after a garbage collection)."""
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def flood(client, requests: list[HostileRequest], count: int, warmup: int = 200, samples: int = 10) -> dict[str, Any]:
    """``warmup`` then ``count`` requests cycling through ``requests``; RSS (MiB) and DB connections along the way.

    Returns the status counts, the seconds taken, ``rss_mib`` sampled ``samples`` times after the warm-up
    (first = baseline), the growth over the flood, and the connections before and after.
    """
    for i in range(warmup):
        send(client, requests[i % len(requests)])
    connections_before = db_connections()
    rss = [rss_mib()]
    statuses: dict[str, int] = {}
    step = max(1, count // samples)
    t0 = time.perf_counter()
    for i in range(count):
        status, _ = send(client, requests[i % len(requests)])
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if (i + 1) % step == 0:
            rss.append(rss_mib())
    seconds = time.perf_counter() - t0
    return {
        'requests': count, 'warmup': warmup, 'seconds': round(seconds, 1),
        'requests_per_second': round(count / seconds, 1), 'statuses': dict(sorted(statuses.items())),
        'rss_mib': [round(r, 1) for r in rss], 'rss_growth_mib': round(rss[-1] - rss[0], 1),
        'connections_before': connections_before, 'connections_after': db_connections(),
    }


def flood_requests(sample_id: str) -> list[HostileRequest]:
    """A cheap mix for :func:`flood`: answers 200, 400, 403, 404, 405 and 501 (each path of the server)."""
    s = '/v1/structures'
    return [
        HostileRequest('listing', 'GET', s, _q(page_limit=5), (200,)),
        HostileRequest('filter', 'GET', s, _q(filter='elements HAS "H" AND nsites < 4', page_limit=5), (200,)),
        HostileRequest('single', 'GET', f'{s}/{sample_id}', '', (200,)),
        HostileRequest('include', 'GET', f'{s}/{sample_id}', _q(include='references'), (200,)),
        HostileRequest('nested', 'GET', s, _q(filter='(' * 50 + 'nsites=1' + ')' * 50), (400,)),
        HostileRequest('or chain', 'GET', s, _q(filter=_or_chain(300)), (400,)),
        HostileRequest('bad paging', 'GET', s, _q(page_offset=-1), (400,)),
        HostileRequest('huge limit', 'GET', s, _q(page_limit=10**9), (403,)),
        HostileRequest('injection', 'GET', s + '/' + urllib.parse.quote('x" OR id="y'), '', (404,)),
        HostileRequest('delete', 'DELETE', f'{s}/{sample_id}', '', (405,)),
        HostileRequest('correlated', 'GET', s, _q(filter='elements:elements HAS "Cu":"O"'), (501,)),
        HostileRequest('references', 'GET', '/v1/references', _q(page_limit=5), (200,)),
    ]


# ------------------------------------------------------------------------------------------------ docs
TABLE_START = '<!-- optimade-hostile-table: generated from docs/results/optimade-hostile.json; do not edit -->'
TABLE_END = '<!-- optimade-hostile-table: end -->'


def _cell(text: str) -> str:
    return text.replace('|', '\\|').replace('\n', ' ')


def markdown_table(result: dict[str, Any]) -> str:
    """The docs table (markdown) of a ``optimade_hostile`` result: request (GET /v1/structures unless named),
    answer, wall and CPU ms, the start of the error detail."""
    lines = ['| request | answer | wall (ms) | CPU (ms) | error detail (start) |', '| --- | --- | --- | --- | --- |']
    for row in result['rows']:
        detail = row['detail'] if len(row['detail']) <= 70 else row['detail'][:70] + '...'
        label = row['name'] if row['method'] == 'GET' or row['name'].startswith(row['method']) \
            else f"{row['method']} {row['name']}"
        lines.append(f"| {_cell(label)} | {row['status']} | {row['wall_ms']:,.1f} | "
                     f"{row['cpu_ms']:,.1f} | {_cell(detail)} |")
    return '\n'.join(lines)


def summary(result: dict[str, Any]) -> tuple[str, str]:
    """(what was measured, the figures) of a ``optimade_hostile`` result, as markdown."""
    machine = result.get('machine', {})
    load = machine.get('load_average_at_start')
    intro = (f"Measured by `python -m benchmarks optimade_hostile` on {str(machine.get('date', '?'))[:10]}: "
             f"{result['frames']:,} labelled frames in {result['datasets']} datasets (SQLite profile), the app "
             f"in-process, frame cache warm; each request sent {result['repeat']} times, the slowest kept. "
             f"{machine.get('cpu_count', '?')} cores, load average {load[0]:.1f} at the start."
             if load else f"Measured by `python -m benchmarks optimade_hostile` over {result['frames']:,} frames.")
    worst, flood, readonly = result['worst'], result['flood'], result['readonly']
    before, after = flood['connections_before'], flood['connections_after']
    statuses = ', '.join(f'{count} x {code}' for code, count in flood['statuses'].items())
    counts = readonly['after']
    worst_line = (f"- Worst request: {worst['name']} ({worst['status']}): {worst['wall_ms']:,.0f} ms wall, "
                  f"{worst['cpu_ms']:,.0f} ms CPU. Answers 500: {result['answers_500']}.")
    flood_line = (
        f"- Flood: {flood['requests']:,} requests after {flood['warmup']} warm-up ({statuses}) in "
        f"{flood['seconds']:,.0f} s; RSS {flood['rss_mib'][0]:.1f} -> {flood['rss_mib'][-1]:.1f} MiB "
        f"(growth {flood['rss_growth_mib']:.1f} MiB, sampled {len(flood['rss_mib'])} times); database connections "
        f"checked out {before['checked_out']} -> {after['checked_out']}, idle {before['idle']} -> {after['idle']}, "
        f"live sessions {before.get('sessions_alive')} -> {after.get('sessions_alive')}, SQLite file descriptors "
        f"{before.get('sqlite_fds')} -> {after.get('sqlite_fds')}.")
    readonly_line = (
        f"- Read-only: {counts['nodes']} nodes, {counts['links']} links, {counts['groups']} groups, "
        f"{counts['comments']} comments, {counts['logs']} logs, the latest node mtime and the SHA-256 of the "
        f"{counts['datasets']} datasets (attributes, extras, repository metadata) "
        f"{'identical' if readonly['unchanged'] else 'DIFFERENT'} before and after all the requests above.")
    figures = f'{worst_line}\n{flood_line}\n{readonly_line}'
    return intro, figures


def docs_block(result: dict[str, Any]) -> str:
    """The generated block of docs/optimade.md (markers included): what was measured, the table, the figures."""
    intro, figures = summary(result)
    return f'{TABLE_START}\n{intro}\n\n{markdown_table(result)}\n\n{figures}\n{TABLE_END}'


def replace_docs_block(text: str, result: dict[str, Any]) -> str:
    """``text`` (docs/optimade.md) with its generated block replaced by the one of ``result``."""
    start, end = text.index(TABLE_START), text.index(TABLE_END) + len(TABLE_END)
    return text[:start] + docs_block(result) + text[end:]
