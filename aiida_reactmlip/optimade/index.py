"""The per-frame OPTIMADE index: one row per labelled frame, in the profile's own database.

Tables (SQLAlchemy Core, created with ``CREATE TABLE IF NOT EXISTS`` on the engine of the profile's
storage, ``core.psql_dos`` or ``core.sqlite_dos``; prefix ``reactmlip_optimade_``):

- ``reactmlip_optimade_datasets``: one row per indexed ``LabelledDatasetData`` (pk = the node's pk, uuid,
  number of frames, creation time in µs since the epoch).
- ``reactmlip_optimade_compositions``: one row per distinct composition (``Cu8O``): the chemical formulas,
  ``nelements``, ``nsites`` and how many frames have it. Few rows (hundreds), so a filter on elements or
  formulas is evaluated on this table and becomes ``composition_id IN (...)`` on the frames.
- ``reactmlip_optimade_composition_elements``: (element, composition_id): ``elements HAS "Cu"`` is an index
  lookup here on PostgreSQL and SQLite alike.
- ``reactmlip_optimade_frames``: one row per frame: dataset pk, frame index, composition, ``nsites``,
  ``nelements``, periodicity, energy (eV), whether forces and stress are known, creation time, the frame's
  ``system``/``role``/``name``/``source_uuid`` and the DFT settings of its source calculation (``null`` where
  absent). Indexed on (dataset_pk, frame_index), composition, nsites and energy.

The index is derived data: :meth:`FrameIndex.catch_up` adds every dataset stored since the last call (pk
above the highest indexed one, or any dataset not indexed) and drops the rows of deleted datasets. It is the
one thing the OPTIMADE server writes; it never writes AiiDA's own tables. ``reactmlip optimade index``
(re)builds it from the command line.
"""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = ('FrameIndex', 'METADATA', 'frames_table', 'profile_engine')

#: Bump when the columns change: a stored index of another version is dropped and rebuilt.
SCHEMA_VERSION = 1

#: Text compared and sorted by code point (as Python does) on PostgreSQL; SQLite's default is already binary.
Text = sa.Text().with_variant(postgresql.TEXT(collation='C'), 'postgresql')

METADATA = sa.MetaData()

state_table = sa.Table(
    'reactmlip_optimade_state', METADATA,
    sa.Column('key', sa.String(64), primary_key=True),
    sa.Column('value', sa.Text, nullable=False),
)

datasets_table = sa.Table(
    'reactmlip_optimade_datasets', METADATA,
    sa.Column('pk', sa.Integer, primary_key=True, autoincrement=False),
    sa.Column('uuid', Text, nullable=False, unique=True),
    sa.Column('n_frames', sa.Integer, nullable=False),
    sa.Column('ctime_us', sa.BigInteger, nullable=False),
)

compositions_table = sa.Table(
    'reactmlip_optimade_compositions', METADATA,
    sa.Column('id', sa.Integer, primary_key=True),
    sa.Column('descriptive', Text, nullable=False, unique=True),
    sa.Column('hill', Text, nullable=False),
    sa.Column('reduced', Text, nullable=False),
    sa.Column('anonymous', Text, nullable=False),
    sa.Column('elements', Text, nullable=False),  # JSON list, sorted
    sa.Column('elements_ratios', Text, nullable=False),  # JSON list
    sa.Column('nelements', sa.Integer, nullable=False),
    sa.Column('nsites', sa.Integer, nullable=False),
)

composition_elements_table = sa.Table(
    'reactmlip_optimade_composition_elements', METADATA,
    sa.Column('element', Text, primary_key=True),
    sa.Column('composition_id', sa.Integer, primary_key=True),
)

frames_table = sa.Table(
    'reactmlip_optimade_frames', METADATA,
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer, 'sqlite'), primary_key=True, autoincrement=True),
    sa.Column('dataset_pk', sa.Integer, nullable=False),
    sa.Column('frame_index', sa.Integer, nullable=False),
    sa.Column('composition_id', sa.Integer, nullable=False),
    sa.Column('nsites', sa.Integer, nullable=False),
    sa.Column('nelements', sa.Integer, nullable=False),
    sa.Column('pbc', sa.SmallInteger, nullable=False),  # bit i: dimension i periodic
    sa.Column('nperiodic', sa.SmallInteger, nullable=False),
    sa.Column('energy', sa.Float, nullable=True),
    sa.Column('forces_known', sa.Boolean, nullable=False),
    sa.Column('stress_known', sa.Boolean, nullable=False),
    sa.Column('ctime_us', sa.BigInteger, nullable=False),
    sa.Column('source_uuid', Text), sa.Column('system', Text), sa.Column('role', Text), sa.Column('name', Text),
    sa.Column('dft_code', Text), sa.Column('dft_code_version', Text), sa.Column('functional', Text),
    sa.Column('pseudo_family', Text), sa.Column('ecutwfc', sa.Float), sa.Column('ecutrho', sa.Float),
    sa.Column('pseudopotentials', sa.Text), sa.Column('kpoints', sa.Text), sa.Column('kpoints_offset', sa.Text),
    sa.Index('reactmlip_optimade_frames_dataset', 'dataset_pk', 'frame_index', unique=True),
    sa.Index('reactmlip_optimade_frames_composition', 'composition_id'),
    sa.Index('reactmlip_optimade_frames_nsites', 'nsites'),
    sa.Index('reactmlip_optimade_frames_energy', 'energy'),
)

#: AiiDA's node table, read only (a lightweight description: no ORM model needed).
_nodes = sa.table('db_dbnode', sa.column('id'), sa.column('uuid'), sa.column('node_type'), sa.column('ctime'))

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_microseconds(moment: datetime.datetime) -> int:
    """A datetime (naive = UTC) as integer µs since 1970-01-01 UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_microseconds(value: int) -> datetime.datetime:
    """Inverse of :func:`to_microseconds` (UTC)."""
    return _EPOCH + datetime.timedelta(microseconds=int(value))


def profile_engine():
    """The SQLAlchemy engine of the loaded profile's storage (``core.psql_dos`` or ``core.sqlite_dos``)."""
    from aiida.manage import get_manager

    storage = get_manager().get_profile_storage()
    factory = getattr(storage, '_session_factory', None)
    engine = getattr(getattr(factory, 'session_factory', None), 'kw', {}).get('bind')
    if engine is None:  # another storage layout: ask a session for its bind
        engine = storage.get_session().get_bind()
    return engine


def _dataset_node_type() -> str:
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    return LabelledDatasetData.class_node_type


class FrameIndex:
    """Maintains and describes the per-frame tables of one profile's database.

    ``catch_up()`` is cheap when nothing changed: one aggregate query on AiiDA's node table (``max(id)``
    and ``count`` of the datasets); the in-memory state is a dict dataset pk -> (uuid, n_frames), flat in
    the number of frames.
    """

    def __init__(self, engine=None):
        self.engine = engine if engine is not None else profile_engine()
        self._lock = threading.Lock()
        self._seen: tuple[Any, Any] | None = None
        self.datasets: dict[int, tuple[str, int]] = {}  # pk -> (uuid, n_frames)
        self.uuid_to_pk: dict[str, int] = {}
        self.generation = 0
        self._compositions: dict[tuple, int] = {}  # ((Z, count), ...) -> composition id (committed rows only)
        self.ensure_tables()

    # ------------------------------------------------------------------ schema
    def ensure_tables(self) -> None:
        """Create the tables if absent; drop and recreate them if they were made by another schema version."""
        with self.engine.begin() as conn:
            inspector = sa.inspect(conn)
            if inspector.has_table(state_table.name):
                row = conn.execute(sa.select(state_table.c.value).where(state_table.c.key == 'schema')).first()
                if row is None or row[0] != str(SCHEMA_VERSION):
                    METADATA.drop_all(conn, checkfirst=True)
            METADATA.create_all(conn, checkfirst=True)
            if conn.execute(sa.select(state_table.c.value).where(state_table.c.key == 'schema')).first() is None:
                conn.execute(state_table.insert().values(key='schema', value=str(SCHEMA_VERSION)))

    def drop(self) -> None:
        """Remove every row of the index (the tables stay)."""
        with self._lock, self.engine.begin() as conn:
            for table in (frames_table, composition_elements_table, compositions_table, datasets_table):
                conn.execute(table.delete())
            self._seen, self.datasets, self.uuid_to_pk, self._compositions = None, {}, {}, {}
            self.generation += 1

    # ------------------------------------------------------------------ state
    def _state(self, conn) -> tuple[Any, Any, Any]:
        """(highest dataset pk, datasets in AiiDA, datasets indexed): one round trip."""
        datasets = sa.select(_nodes.c.id).where(_nodes.c.node_type == _dataset_node_type()).subquery()
        query = sa.select(
            sa.select(sa.func.max(datasets.c.id)).scalar_subquery(),
            sa.select(sa.func.count()).select_from(datasets).scalar_subquery(),
            sa.select(sa.func.count()).select_from(datasets_table).scalar_subquery(),
        )
        return tuple(conn.execute(query).first())

    def _load_datasets(self, conn) -> None:
        rows = conn.execute(sa.select(datasets_table.c.pk, datasets_table.c.uuid, datasets_table.c.n_frames)).all()
        self.datasets = {pk: (uuid, n) for pk, uuid, n in rows}
        self.uuid_to_pk = {uuid: pk for pk, (uuid, _) in self.datasets.items()}

    @property
    def total_frames(self) -> int:
        return sum(n for _, n in self.datasets.values())

    def catch_up(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Index datasets stored since the last call, drop deleted ones; returns how many datasets were added.

        One query when nothing changed (the highest dataset pk and the dataset counts of AiiDA and of the
        index, so a rebuild by another process is seen too). ``progress(done, total)`` is called after each
        dataset indexed. A dataset another process is indexing at the same moment is left to it (and
        retried on the next call).
        """
        with self.engine.connect() as conn:
            state = self._state(conn)
        if state == self._seen:
            return 0
        with self._lock:
            if state == self._seen:
                return 0
            complete = True
            self._compositions = {}  # another process may have rebuilt the tables: ids are read again
            with self.engine.connect() as conn:
                self._load_datasets(conn)
                present = dict(conn.execute(sa.select(_nodes.c.id, _nodes.c.ctime).where(
                    _nodes.c.node_type == _dataset_node_type())).all())
            gone = sorted(set(self.datasets) - set(present))
            if gone:
                with self.engine.begin() as conn:
                    for start in range(0, len(gone), 500):
                        chunk = gone[start:start + 500]
                        conn.execute(frames_table.delete().where(frames_table.c.dataset_pk.in_(chunk)))
                        conn.execute(datasets_table.delete().where(datasets_table.c.pk.in_(chunk)))
            missing = sorted(set(present) - set(self.datasets))
            added = 0
            for done, pk in enumerate(missing, 1):
                outcome = self._index_dataset(pk)
                added += max(outcome, 0)
                complete = complete and outcome >= 0
                if progress is not None:
                    progress(done, len(missing))
            if added or gone:
                self.analyze()
            with self.engine.connect() as conn:
                self._load_datasets(conn)
                state = self._state(conn)
            self._seen = state if complete else None
            self.generation += 1
            return added

    # ------------------------------------------------------------------ indexing one dataset
    def _index_dataset(self, pk: int) -> int:
        """1 when dataset ``pk`` was indexed, 0 when it is indexed already or gone, -1 when another writer
        holds it (unique key taken, database locked): the next catch-up retries."""
        try:
            return self._insert_dataset(pk)
        except (sa.exc.IntegrityError, sa.exc.OperationalError):
            return -1

    def _insert_dataset(self, pk: int, node=None, frames=None) -> int:
        from aiida import orm

        from .provenance import dft_settings_by_uuid

        try:
            node = node if node is not None else orm.load_node(pk)
            frames = frames if frames is not None else node.frames
        except Exception:  # deleted meanwhile, or unreadable arrays: skip it, the next catch-up retries
            return 0
        ctime_us = to_microseconds(node.ctime)
        dft = dft_settings_by_uuid([(info or {}).get('source_uuid') for info in frames.info])
        with self.engine.begin() as conn:
            if conn.execute(sa.select(datasets_table.c.pk).where(datasets_table.c.pk == pk)).first():
                return 0  # another process indexed it
            compositions = _CompositionCache(conn, self._compositions)
            rows = _frame_rows(pk, frames, ctime_us, dft, compositions)
            conn.execute(datasets_table.insert().values(pk=pk, uuid=node.uuid, n_frames=len(rows), ctime_us=ctime_us))
            _insert_rows(conn, rows)
        compositions.commit()
        return 1

    def add(self, node, frames=None) -> bool:
        """Index one just-stored ``LabelledDatasetData`` (``frames``: its :class:`Frames`, if the caller holds
        them, which saves reading the arrays back). The hook for the store path; ``catch_up`` finds the
        datasets stored without it. True when rows were written."""
        with self._lock:
            return self._index_dataset_with(node.pk, node, frames) == 1

    def _index_dataset_with(self, pk: int, node, frames) -> int:
        try:
            return self._insert_dataset(pk, node, frames)
        except (sa.exc.IntegrityError, sa.exc.OperationalError):
            return -1

    def analyze(self) -> None:
        """Refresh the database's statistics of the index tables (``ANALYZE``), so that its planner knows how
        many frames a composition or an energy range holds (after a bulk load its guesses are defaults)."""
        with self.engine.begin() as conn:
            for table in METADATA.sorted_tables:
                conn.execute(sa.text(f'ANALYZE {table.name}'))

    # ------------------------------------------------------------------ facts
    def size_bytes(self) -> int | None:
        """Bytes the index tables (with their indexes) take on disk; None where the backend cannot say."""
        names = [t.name for t in METADATA.sorted_tables]
        with self.engine.connect() as conn:
            if self.engine.dialect.name == 'postgresql':
                return int(sum(conn.execute(sa.text('SELECT pg_total_relation_size(:n)'), {'n': n}).scalar() or 0
                               for n in names))
            try:
                return int(conn.execute(sa.text(
                    'SELECT SUM(pgsize) FROM dbstat WHERE name LIKE \'reactmlip_optimade_%\'')).scalar() or 0)
            except sa.exc.DBAPIError:
                return None


class _CompositionCache:
    """Composition ids by key ((Z, count), ...): the index's shared map, and rows inserted on first sight inside
    the caller's transaction (merged into the shared map by :meth:`commit` once that transaction is committed)."""

    def __init__(self, conn, known: dict[tuple, int]):
        self.conn, self.known = conn, known
        self.new: dict[tuple, int] = {}

    def get(self, key: tuple, frames, index: int) -> int:
        found = self.known.get(key, self.new.get(key))
        if found is not None:
            return found
        from .mapping import frame_to_structure_attributes

        attributes = frame_to_structure_attributes(frames, index, {'uuid': '-'})
        descriptive = attributes['chemical_formula_descriptive']
        row = self.conn.execute(sa.select(compositions_table.c.id).where(
            compositions_table.c.descriptive == descriptive)).first()
        if row is None:
            new_id = self.conn.execute(compositions_table.insert().values(
                descriptive=descriptive, hill=attributes['chemical_formula_hill'],
                reduced=attributes['chemical_formula_reduced'], anonymous=attributes['chemical_formula_anonymous'],
                elements=json.dumps(attributes['elements']), elements_ratios=json.dumps(attributes['elements_ratios']),
                nelements=attributes['nelements'], nsites=attributes['nsites'])).inserted_primary_key[0]
            self.conn.execute(composition_elements_table.insert(),
                              [{'element': e, 'composition_id': new_id} for e in attributes['elements']])
        else:
            new_id = row[0]
        self.new[key] = int(new_id)
        return int(new_id)

    def commit(self) -> None:
        self.known.update(self.new)


def _composition_keys(numbers: np.ndarray, n_atoms: np.ndarray, offsets: np.ndarray) -> tuple[list[tuple], np.ndarray]:
    """Distinct compositions ``((Z, count), ...)`` of the frames and, per frame, the position of its own."""
    if len(n_atoms) == 0:
        return [], np.zeros(0, dtype=int)
    if n_atoms.min() > 0:  # vectorised: counts of each element per frame, then the distinct rows
        zs = np.unique(numbers)
        counts = np.stack([np.add.reduceat((numbers == z).astype(np.int64), offsets) for z in zs], axis=1)
        rows, inverse = np.unique(counts, axis=0, return_inverse=True)
        keys = [tuple((int(z), int(c)) for z, c in zip(zs, row) if c) for row in rows.tolist()]
        return keys, np.asarray(inverse).reshape(-1)
    keys: list[tuple] = []
    position: dict[tuple, int] = {}
    inverse = np.zeros(len(n_atoms), dtype=int)
    for index, (start, count) in enumerate(zip(offsets.tolist(), n_atoms.tolist())):
        zs, counts = np.unique(numbers[start:start + count], return_counts=True)
        key = tuple(zip(zs.tolist(), counts.tolist()))
        inverse[index] = position.setdefault(key, len(keys))
        if inverse[index] == len(keys):
            keys.append(key)
    return keys, inverse


_FRAME_COLUMNS = [column.name for column in frames_table.columns if column.name != 'id']


def _insert_rows(conn, rows: list[dict[str, Any]]) -> None:
    """Insert frame rows: PostgreSQL's COPY through psycopg 3 where available (about 5x faster), else batches."""
    driver = getattr(getattr(conn, 'connection', None), 'driver_connection', None)
    if conn.dialect.name == 'postgresql' and hasattr(getattr(driver, 'cursor', None), '__call__'):
        cursor = driver.cursor()
        if hasattr(cursor, 'copy'):  # psycopg 3
            statement = f'COPY {frames_table.name} ({", ".join(_FRAME_COLUMNS)}) FROM STDIN'
            with cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row([row[name] for name in _FRAME_COLUMNS])
            return
    for start in range(0, len(rows), 5000):
        conn.execute(frames_table.insert(), rows[start:start + 5000])


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _frame_rows(pk: int, frames, ctime_us: int, dft_by_source: dict, compositions: _CompositionCache
                ) -> list[dict[str, Any]]:
    """The index rows of the frames of dataset ``pk`` (the same values the mapping serves)."""
    n_atoms = np.asarray(frames.n_atoms, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_atoms)[:-1]]).astype(np.int64) if len(n_atoms) else n_atoms
    numbers = np.asarray(frames.numbers)
    finite_atoms = np.isfinite(np.asarray(frames.forces)).all(axis=1).astype(np.int64)
    finite_forces = (np.add.reduceat(finite_atoms, offsets) == n_atoms) if len(n_atoms) and n_atoms.min() > 0 else \
        np.array([bool(n) and bool(finite_atoms[o:o + n].all()) for o, n in zip(offsets, n_atoms)], dtype=bool)
    stress_known = np.isfinite(np.asarray(frames.stress)).all(axis=1).tolist()
    energies = np.asarray(frames.energies, dtype=float)
    energy_list = [float(e) if np.isfinite(e) else None for e in energies.tolist()]
    pbc = np.asarray(frames.pbc, dtype=bool)
    pbc_bits = (pbc.astype(np.int64) * np.array([1, 2, 4])).sum(axis=1).tolist()
    nperiodic = pbc.sum(axis=1).tolist()
    keys, inverse = _composition_keys(numbers, n_atoms, offsets)
    first = {}
    for index, position in enumerate(inverse.tolist()):
        first.setdefault(position, index)
    composition_ids = [compositions.get(key, frames, first[position]) for position, key in enumerate(keys)]
    infos = frames.info or [{}] * len(n_atoms)
    rows = []
    for index, (count, position) in enumerate(zip(n_atoms.tolist(), inverse.tolist())):
        info = infos[index] or {}
        source = info.get('source_uuid')
        dft = dft_by_source.get(source) or {}
        pseudos = dft.get('pseudopotentials')
        rows.append({
            'dataset_pk': pk, 'frame_index': index, 'composition_id': composition_ids[position],
            'nsites': count, 'nelements': len(keys[position]), 'pbc': pbc_bits[index], 'nperiodic': nperiodic[index],
            'energy': energy_list[index], 'forces_known': bool(finite_forces[index]),
            'stress_known': bool(stress_known[index]), 'ctime_us': ctime_us,
            'source_uuid': _str_or_none(source), 'system': _str_or_none(info.get('system')),
            'role': _str_or_none(info.get('role')), 'name': _str_or_none(info.get('name')),
            'dft_code': _str_or_none(dft.get('dft_code')), 'dft_code_version': _str_or_none(dft.get('dft_code_version')),
            'functional': _str_or_none(dft.get('functional')), 'pseudo_family': _str_or_none(dft.get('pseudo_family')),
            'ecutwfc': None if dft.get('ecutwfc') is None else float(dft['ecutwfc']),
            'ecutrho': None if dft.get('ecutrho') is None else float(dft['ecutrho']),
            'pseudopotentials': _json_or_none(dict(pseudos) if pseudos else None),
            'kpoints': _json_or_none(dft.get('kpoints')), 'kpoints_offset': _json_or_none(dft.get('kpoints_offset')),
        })
    return rows
