"""OPTIMADE entry collections over the AiiDA database (optimade 1.5 ``EntryCollection`` subclasses).

- :class:`StructureCollection`: every frame of every stored ``LabelledDatasetData`` is one
  ``structures`` entry, id ``"<dataset uuid>:<frame index>"``, attributes from
  :func:`aiida_reactmlip.optimade.mapping.frame_to_structure_attributes`, a ``references``
  relationship to its dataset.
- :class:`DatasetReferenceCollection`: every ``LabelledDatasetData`` is one ``references`` entry
  (id = dataset UUID), the way from a structure to its dataset and, through ``_reactmlip_source_uuid``,
  to the DFT calculation.

Each ``structures`` request brings the per-frame index up to date (:meth:`FrameIndex.catch_up`: one
query when nothing was stored or deleted), runs the filter as SQL on it (a count, cached per filter until
the index changes, and a page with ``ORDER BY``/``LIMIT``/``OFFSET``), and reads the arrays of only the
datasets holding the page's frames (:mod:`.framequery`). A filter without an SQL form runs in Python on the
frames the SQL part of it keeps, with the per-frame attributes cached by dataset UUID (stored datasets are
immutable). ``references`` entries come from one ``QueryBuilder`` query. Every request closes the thread's
database session at the end (``scoped_session.remove``), so concurrent requests never exhaust the pool.

Filters are parsed by :class:`aiida_reactmlip.optimade.guard.FilterParser` (LALR, with size and depth
limits); a filter whose SQL would test more than ``FilterLimits.max_sql_evaluations`` (terms x frames it may
scan), or whose Python evaluation would run more than ``FilterLimits.max_evaluations`` predicate tests, is
refused with 400 before any frame is read. The server writes only its own index tables
(``reactmlip_optimade_*``), never AiiDA's: ``insert`` raises, and the API has no write route.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import sqlalchemy as sa

from optimade.exceptions import BadRequest
from optimade.models import ReferenceResource, StructureResource
from optimade.server.entry_collections import EntryCollection
from optimade.server.mappers import ReferenceMapper, StructureMapper
from optimade.server.schemas import retrieve_queryable_properties

from .filters import Condition, ReactmlipTransformer, list_test
from .framequery import FrameQuery
from .guard import DEFAULT_LIMITS, FilterLimits, FilterParser
from .index import FrameIndex
from .mapping import PREFIX, PROVIDER_FIELDS, frame_to_structure_attributes, split_structure_id, structure_id
from .sqlfilters import SqlFields

__all__ = ('DatasetReferenceCollection', 'FrameCache', 'StructureCollection', 'close_session')

#: Attributes not kept in the per-frame cache (large); they are rebuilt from the arrays when served.
HEAVY_FIELDS = frozenset({'cartesian_site_positions', f'_{PREFIX}_forces'})


def close_session() -> None:
    """Close this thread's AiiDA database session (returns its connection to the pool)."""
    from aiida.manage import get_manager

    storage = get_manager().get_profile_storage()
    factory = getattr(storage, '_session_factory', None)
    if factory is not None and hasattr(factory, 'remove'):
        factory.remove()


def _closing_session(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        finally:
            close_session()

    return wrapper


def _dataset_class():
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    return LabelledDatasetData


class _DatasetEntry:
    """The frames of one dataset and their cached light attributes."""

    __slots__ = ('uuid', 'frames', 'info', 'dft', 'light')

    def __init__(self, uuid: str, frames, info: dict, dft: dict[str, dict]):
        self.uuid, self.frames, self.info, self.dft = uuid, frames, info, dft
        self.light: list[dict[str, Any]] = []
        for index in range(len(frames.n_atoms)):
            attributes = self.attributes(index)
            for key in HEAVY_FIELDS:
                attributes.pop(key, None)
            self.light.append(attributes)

    def attributes(self, index: int) -> dict[str, Any]:
        source = (self.frames.info[index] or {}).get('source_uuid')
        return frame_to_structure_attributes(self.frames, index, self.info, self.dft.get(source))

    def heavy(self, index: int) -> dict[str, Any]:
        """The attributes left out of the cache (positions, forces), rebuilt from the arrays."""
        frames = self.frames
        start = int(frames.offsets[index])
        stop = start + int(frames.n_atoms[index])
        forces = frames.forces[start:stop]
        return {
            'cartesian_site_positions': frames.positions[start:stop].tolist(),
            f'_{PREFIX}_forces': forces.tolist() if forces.size and np.isfinite(forces).all() else None,
        }

    def document(self, index: int) -> dict[str, Any]:
        """The full backend document of a frame (id, relationships, all attributes)."""
        doc = dict(self.light[index])
        doc.update(self.heavy(index))
        doc['id'] = structure_id(self.uuid, index)
        doc['relationships'] = {'references': {'data': [{'type': 'references', 'id': self.uuid}]}}
        return doc


class FrameCache:
    """Per-dataset frame attributes, keyed by dataset UUID (datasets are immutable), LRU-bounded in frames."""

    def __init__(self, max_frames: int = 200_000):
        self.max_frames = max_frames
        self._entries: OrderedDict[str, _DatasetEntry] = OrderedDict()
        self._frames = 0
        self._lock = threading.Lock()

    def get(self, uuid: str, mtime) -> _DatasetEntry:
        with self._lock:
            entry = self._entries.get(uuid)
            if entry is not None:
                self._entries.move_to_end(uuid)
                return entry
        from aiida import orm

        from .provenance import dft_settings_by_uuid

        node = orm.load_node(uuid)
        frames = node.frames
        dft = dft_settings_by_uuid([(info or {}).get('source_uuid') for info in frames.info])
        entry = _DatasetEntry(uuid, frames, {'uuid': uuid, 'last_modified': node.ctime if mtime is None else mtime}, dft)
        with self._lock:
            if uuid not in self._entries:
                self._entries[uuid] = entry
                self._frames += len(entry.light)
                while self._frames > self.max_frames and len(self._entries) > 1:
                    _, old = self._entries.popitem(last=False)
                    self._frames -= len(old.light)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._frames = 0


def _field_types(mapper, extra: list[dict]) -> dict[str, str]:
    types = {}
    for name, info in retrieve_queryable_properties(mapper.ENTRY_RESOURCE_CLASS).items():
        kind = info.get('type')
        if kind is not None:
            types[name] = str(getattr(kind, 'value', kind))
    for field in extra:
        types[f'_{PREFIX}_{field["name"]}'] = field['type']
    types['id'] = 'string'
    return types


def _sort_key(value: Any):
    """Order values of one field: None last, numbers, then strings/others by their text."""
    if value is None:
        return (2, 0, '')
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, '')
    return (1, 0, str(value))


class _AiidaCollection(EntryCollection):
    """Shared query logic: dataset candidates from QueryBuilder, exact filter in Python, sort, page."""

    def __init__(self, resource_cls, mapper, config, prefilter, limits: FilterLimits = DEFAULT_LIMITS, sql=False):
        extra = PROVIDER_FIELDS if mapper.ENDPOINT == 'structures' else []
        types = _field_types(mapper, extra)
        sql_fields = SqlFields(set(types), list_test) if sql else None
        transformer = ReactmlipTransformer(mapper=mapper, field_types=types, prefilter=prefilter,
                                           sql_fields=sql_fields)
        super().__init__(resource_cls, mapper, transformer, config)
        self.limits = limits
        self.parser = FilterParser(limits)

    # -- helpers the subclasses implement
    def _candidates(self, condition: Condition) -> list[tuple[dict, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _lookup(self, doc: dict, name: str) -> Any:
        return doc.get(name)

    def _full(self, doc: dict, ref: Any) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- EntryCollection API
    def insert(self, data) -> None:
        raise NotImplementedError('this OPTIMADE server is read-only: store LabelledDatasetData nodes in AiiDA instead')

    @_closing_session
    def count(self, **kwargs: Any) -> int:
        condition = kwargs.get('filter') or Condition.always()
        if not isinstance(condition, Condition):
            condition = Condition.always()
        return sum(1 for doc, _ in self._candidates(condition) if condition.matches(doc, self._lookup))

    def find(self, params):
        from optimade.exceptions import NotFound
        from optimade.server.query_params import SingleEntryQueryParams

        if isinstance(params, SingleEntryQueryParams):
            # the router asks for ``id="<path id>"``: a quote or backslash in the id would change the filter,
            # and a very long id would be refused as a too long filter (400) instead of 404
            entry_id = str(getattr(params, 'filter', ''))[4:-1]
            if '"' in entry_id or '\\' in entry_id or len(entry_id) > 200:  # no id of ours is longer than ~50
                shown = entry_id if len(entry_id) <= 80 else entry_id[:80] + '...'
                raise NotFound(detail=f'no {self.resource_mapper.ENDPOINT} entry has the id {shown!r}')
        return super().find(params)

    def parse_sort_params(self, sort_params: str):
        """Sort keys, each field once (a repeated field cannot change the order: the first one wins)."""
        seen, keys = set(), []
        for field, direction in super().parse_sort_params(sort_params):
            if field not in seen:
                seen.add(field)
                keys.append((field, direction))
        return keys

    def handle_query_params(self, params):
        criteria = super().handle_query_params(params)
        if 'page_above' in criteria:
            raise NotImplementedError('page_above is not supported; use page_offset or page_number')
        if not isinstance(criteria.get('filter'), Condition):
            criteria['filter'] = Condition.always()
        criteria['filter_text'] = str(getattr(params, 'filter', '') or '')
        return criteria

    @_closing_session
    def _run_db_query(self, criteria: dict[str, Any], single_entry: bool = False):
        condition: Condition = criteria['filter']
        matches = [(doc, ref) for doc, ref in self._candidates(condition) if condition.matches(doc, self._lookup)]
        for field, direction in reversed(list(criteria.get('sort') or [])):
            name = self.resource_mapper.get_optimade_field(field)
            if name in HEAVY_FIELDS:
                raise BadRequest(detail=f"'{name}' is not sortable")
            matches.sort(key=lambda item, n=name: _sort_key(self._lookup(item[0], n)), reverse=direction < 0)
        total = len(matches)
        skip = int(criteria.get('skip') or 0)
        limit = int(criteria.get('limit') or 0)
        page = matches[skip : skip + limit] if limit else matches[skip:]
        results = [self._full(doc, ref) for doc, ref in page]
        if single_entry:
            return results, total, False
        return results, total, skip + len(page) < total


def _structure_prefilter() -> dict:
    """Dataset-level QueryBuilder filters implied by per-frame clauses (a superset of the matches)."""

    def elements(op, values):
        if op == 'HAS ALL' and all(isinstance(v, str) for v in values):
            return {'attributes.elements': {'contains': list(values)}}
        return None

    def entry_id(op, value):
        if op != '=' or not isinstance(value, str):
            return None
        try:
            uuid, _ = split_structure_id(value)
        except ValueError:
            return {'id': {'<': 0}}  # matches no node: no structure has such an id
        return {'uuid': uuid}

    def dataset_uuid(op, value):
        return {'uuid': value} if op == '=' and isinstance(value, str) else None

    return {'elements': elements, 'id': entry_id, f'_{PREFIX}_dataset_uuid': dataset_uuid}


class StructureCollection(_AiidaCollection):
    """``structures``: the frames of every stored ``LabelledDatasetData``, served from the per-frame index.

    A filter whose every clause has an SQL form (:attr:`Condition.sql`) and whose sort fields are columns
    runs as SQL on the index (:class:`~aiida_reactmlip.optimade.framequery.FrameQuery`); otherwise the SQL
    part that can prune (:attr:`Condition.prune`) selects the candidate frames and the exact filter runs in
    Python on them, within ``FilterLimits.max_evaluations``. Each request first calls
    :meth:`FrameIndex.catch_up` (one query when no dataset was stored or deleted).
    """

    def __init__(self, config, cache: FrameCache | None = None, limits: FilterLimits = DEFAULT_LIMITS,
                 index: FrameIndex | None = None):
        super().__init__(StructureResource, StructureMapper(config), config, _structure_prefilter(), limits, sql=True)
        self.cache = cache or FrameCache(max_frames=50_000)
        self.index = index or FrameIndex()
        self.query = FrameQuery(self.index)
        self.sql_fields = self.transformer.sql_fields

    def warm_up(self) -> None:
        """At server start: bring the index up to date and run one filter through every stage (parse, SQL,
        arrays of one frame, the response model), so the first request pays no import or first-call cost.
        Runs in the caller's thread and leaves its AiiDA session open (closing it would detach the nodes the
        caller holds)."""
        from optimade.models import StructureResource as Resource

        self.index.catch_up()
        condition = self.transformer.transform(self.parser.parse('elements HAS "Cu" OR nsites >= 0'))
        rows = self.query.page(condition.sql, [], 0, 1)
        for doc in self.query.documents(rows):
            Resource(**self.resource_mapper.map_back(doc))

    @_closing_session
    def __len__(self) -> int:
        self.index.catch_up()
        return self.index.total_frames

    @_closing_session
    def count(self, **kwargs: Any) -> int:
        condition = kwargs.get('filter')
        if not isinstance(condition, Condition):
            condition = Condition.always()
        self.index.catch_up()
        if condition.sql is not None:
            return self.query.count(condition.sql, None)
        return sum(1 for doc, _ in self._candidates(condition) if condition.matches(doc, self._lookup))

    def _sql_order(self, criteria: dict[str, Any]) -> list[tuple[Any, int]] | None:
        order = []
        for field, direction in criteria.get('sort') or []:
            name = self.resource_mapper.get_optimade_field(field)
            if name in HEAVY_FIELDS:
                raise BadRequest(detail=f"'{name}' is not sortable")
            key = self.sql_fields.sort_key(name)
            if key is None:
                return None
            order.append((key, direction))
        return order

    @_closing_session
    def _run_db_query(self, criteria: dict[str, Any], single_entry: bool = False):
        condition: Condition = criteria['filter']
        self.index.catch_up()
        order = self._sql_order(criteria)
        if condition.sql is None or order is None:
            return super()._run_db_query.__wrapped__(self, criteria, single_entry)
        self.limits.check_sql_budget(condition.terms, self.query.scanned_frames(condition.datasets))
        total = self.query.count(condition.sql, criteria.get('filter_text'))
        skip = int(criteria.get('skip') or 0)
        limit = int(criteria.get('limit') or 0)
        rows = [] if skip >= total else self.query.page(condition.sql, order, skip, limit)
        results = self.query.documents(rows)
        if single_entry:
            return results, total, False
        return results, total, skip + len(rows) < total

    def _candidates(self, condition: Condition):
        """Python fallback: the frames the SQL part of the filter keeps, with their cached light attributes."""
        where = condition.prune
        if condition.datasets is not None:
            from .sqlfilters import FALSE, frames_table

            pks = [self.index.uuid_to_pk[u] for u in condition.datasets if u in self.index.uuid_to_pk]
            keep = frames_table.c.dataset_pk.in_(pks) if pks else FALSE
            where = keep if where is None else sa.and_(where, keep)
        candidates = self.query.count(where, None)
        self.limits.check_budget(condition.terms, candidates, 'structures')
        by_dataset: dict[str, list[int]] = {}
        for uuid, index in self.query.candidates(where, candidates):
            by_dataset.setdefault(uuid, []).append(index)
        for uuid, indices in by_dataset.items():
            entry = self.cache.get(uuid, None)
            for index in indices:
                if index < len(entry.light):
                    yield entry.light[index], (entry, index)

    def _lookup(self, doc: dict, name: str) -> Any:
        if name == 'id':
            return structure_id(doc[f'_{PREFIX}_dataset_uuid'], doc[f'_{PREFIX}_frame_index'])
        if name in HEAVY_FIELDS:
            entry = self.cache.get(doc[f'_{PREFIX}_dataset_uuid'], doc['last_modified'])
            return entry.heavy(doc[f'_{PREFIX}_frame_index']).get(name)
        return doc.get(name)

    def _full(self, doc: dict, ref) -> dict:
        entry, index = ref
        return entry.document(index)


class DatasetReferenceCollection(_AiidaCollection):
    """``references``: one entry per ``LabelledDatasetData`` (id = its UUID)."""

    def __init__(self, config, limits: FilterLimits = DEFAULT_LIMITS):
        super().__init__(ReferenceResource, ReferenceMapper(config), config, {'id': self._id_prefilter}, limits)

    @staticmethod
    def _id_prefilter(op, value):
        return {'uuid': value} if op == '=' and isinstance(value, str) else None

    def _rows(self, qb_filters):
        from aiida import orm

        qb = orm.QueryBuilder().append(
            _dataset_class(), filters=qb_filters or {}, tag='d',
            project=['uuid', 'label', 'description', 'ctime', 'attributes.n_frames', 'attributes.elements'],
        )
        qb.order_by({'d': [{'ctime': 'asc'}, {'id': 'asc'}]})
        return qb.all()

    @_closing_session
    def __len__(self) -> int:
        from aiida import orm

        return orm.QueryBuilder().append(_dataset_class()).count()

    def _candidates(self, condition: Condition):
        rows = self._rows(condition.qb_filters)
        self.limits.check_budget(condition.terms, len(rows), 'references')
        for uuid, label, description, mtime, n_frames, elements in rows:
            title = label or f'LabelledDatasetData {uuid}'
            note = (
                f'{description + ". " if description else ""}AiiDA LabelledDatasetData with {n_frames} labelled '
                f'frames of {" ".join(elements or [])}. Its structures carry _{PREFIX}_dataset_uuid and '
                f'_{PREFIX}_source_uuid (the UUID of the DFT calculation of each label).'
            )
            doc = {'id': uuid, 'immutable_id': uuid, 'last_modified': mtime, 'title': title,
                   'note': note, 'bib_type': 'misc', 'key': uuid}
            yield doc, None

    def _full(self, doc: dict, ref) -> dict:
        return dict(doc)
