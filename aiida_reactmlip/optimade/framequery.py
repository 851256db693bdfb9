"""Pages of ``structures`` from the per-frame index: one SQL count (cached) and one SQL page query per request.

:class:`FrameQuery` runs a filter's SQL expression (:attr:`~aiida_reactmlip.optimade.filters.Condition.sql`)
on ``reactmlip_optimade_frames``: ``SELECT count(*)`` for ``data_returned`` (kept per filter text until the
index changes: a page of the same filter costs one query), then ``SELECT dataset_pk, frame_index ... ORDER BY
... LIMIT/OFFSET`` for the page. Only the datasets holding the page's frames are read from the repository
(positions, forces), through an LRU of datasets bounded in frames (100,000), so memory does not grow with
the number of frames served.
"""

from __future__ import annotations

import threading
import types
from collections import OrderedDict
from typing import Any

import sqlalchemy as sa

from .index import FrameIndex, frames_table
from .mapping import frame_to_structure_attributes, structure_id

__all__ = ('ArrayCache', 'FrameQuery')

F = frames_table.c

#: The arrays :func:`~aiida_reactmlip.optimade.mapping.frame_to_structure_attributes` reads.
_ARRAYS = ('numbers', 'positions', 'cells', 'pbc', 'n_atoms', 'energies', 'forces', 'stress')


class _Dataset:
    __slots__ = ('uuid', 'frames', 'info', 'dft', 'size')

    def __init__(self, uuid: str, frames, info: dict, dft: dict):
        self.uuid, self.frames, self.info, self.dft = uuid, frames, info, dft
        self.size = len(frames.n_atoms)

    def document(self, index: int) -> dict[str, Any]:
        source = (self.frames.info[index] or {}).get('source_uuid')
        doc = frame_to_structure_attributes(self.frames, index, self.info, self.dft.get(source))
        doc['id'] = structure_id(self.uuid, index)
        doc['relationships'] = {'references': {'data': [{'type': 'references', 'id': self.uuid}]}}
        return doc


class ArrayCache:
    """The arrays of recently served datasets, LRU-bounded in frames (datasets are immutable): 100,000 frames
    of small fragments hold about 50 MB."""

    def __init__(self, max_frames: int = 100_000):
        self.max_frames = max_frames
        self._entries: OrderedDict[str, _Dataset] = OrderedDict()
        self._frames = 0
        self._lock = threading.Lock()

    def get(self, uuid: str) -> _Dataset:
        with self._lock:
            entry = self._entries.get(uuid)
            if entry is not None:
                self._entries.move_to_end(uuid)
                return entry
        from aiida import orm

        from .provenance import dft_settings_by_uuid

        node = orm.load_node(uuid)
        # the stored arrays and frame_info as they are: no validation and no copy (the dataset is immutable and
        # was validated when stored; ``node.frames`` costs about 3x more for a 10,000-frame dataset)
        frames = types.SimpleNamespace(info=node.base.attributes.get('frame_info'),
                                       **{name: node.get_array(name) for name in _ARRAYS})
        dft = dft_settings_by_uuid([(info or {}).get('source_uuid') for info in frames.info])
        entry = _Dataset(uuid, frames, {'uuid': uuid, 'last_modified': node.ctime}, dft)
        with self._lock:
            if uuid not in self._entries:
                self._entries[uuid] = entry
                self._frames += entry.size
                while self._frames > self.max_frames and len(self._entries) > 1:
                    _, old = self._entries.popitem(last=False)
                    self._frames -= old.size
        return entry


class FrameQuery:
    """Counts and pages of frames matching an SQL condition on the index (see the module docstring)."""

    def __init__(self, index: FrameIndex, arrays: ArrayCache | None = None, count_cache_size: int = 256):
        self.index = index
        self.arrays = arrays or ArrayCache()
        self._counts: OrderedDict[tuple, int] = OrderedDict()
        self._count_cache_size = count_cache_size
        self._lock = threading.Lock()

    def scanned_frames(self, datasets: frozenset[str] | None) -> int:
        """Frames the database may have to test: those of the named datasets, else every indexed frame."""
        if datasets is None:
            return self.index.total_frames
        pks = [self.index.uuid_to_pk.get(uuid) for uuid in datasets]
        return sum(self.index.datasets[pk][1] for pk in pks if pk is not None)

    def count(self, where, key: str | None) -> int:
        """Frames where ``where`` is true; cached by ``key`` (the filter text) until the index changes."""
        if where is None or (isinstance(where, sa.sql.elements.True_)):
            return self.index.total_frames
        cache_key = (key, self.index.generation) if key is not None else None
        if cache_key is not None:
            with self._lock:
                if cache_key in self._counts:
                    self._counts.move_to_end(cache_key)
                    return self._counts[cache_key]
        with self.index.engine.connect() as conn:
            total = int(conn.execute(sa.select(sa.func.count()).select_from(frames_table).where(where)).scalar())
        if cache_key is not None:
            with self._lock:
                self._counts[cache_key] = total
                while len(self._counts) > self._count_cache_size:
                    self._counts.popitem(last=False)
        return total

    def page(self, where, order: list[tuple[Any, int]], skip: int, limit: int) -> list[tuple[int, int]]:
        """(dataset pk, frame index) of the page; ``order``: (expression, +1/-1), nulls last ascending (as
        Python's sort of the former evaluator: None after every value), then index order."""
        query = sa.select(F.dataset_pk, F.frame_index)
        if where is not None:
            query = query.where(where)
        keys = []
        for expression, direction in order:
            keys.append(expression.asc().nulls_last() if direction > 0 else expression.desc().nulls_first())
        query = query.order_by(*keys, F.id).offset(skip)
        if limit:
            query = query.limit(limit)
        with self.index.engine.connect() as conn:
            return [(int(pk), int(i)) for pk, i in conn.execute(query).all()]

    def documents(self, rows: list[tuple[int, int]]) -> list[dict[str, Any]]:
        """Full backend documents (all attributes, id, relationships) of the frames ``rows``."""
        out = []
        for pk, index in rows:
            uuid = self.index.datasets[pk][0]
            out.append(self.arrays.get(uuid).document(index))
        return out

    def candidates(self, where, limit: int) -> list[tuple[str, int]]:
        """(dataset uuid, frame index) where ``where`` is true (all frames if None), at most ``limit``."""
        query = sa.select(F.dataset_pk, F.frame_index).order_by(F.id).limit(limit)
        if where is not None:
            query = query.where(where)
        with self.index.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(self.index.datasets[int(pk)][0], int(i)) for pk, i in rows if int(pk) in self.index.datasets]
