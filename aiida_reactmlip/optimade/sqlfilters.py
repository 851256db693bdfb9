"""OPTIMADE filter clauses -> SQLAlchemy Core expressions on the per-frame index (:mod:`.index`).

Each builder returns a boolean SQL expression with the same three-valued result as the Python evaluator
of :mod:`.filters` (SQL's ``NULL`` is OPTIMADE's unknown: ``AND``/``OR``/``NOT`` are Kleene logic in both), or
``None`` when the clause cannot be written in SQL (``HAS`` on positions, forces, stress, k-points; the
backend then evaluates it in Python on the frames left by the rest of the filter).

Fields and where they live:

- columns of ``reactmlip_optimade_frames`` (``nsites``, ``nelements``, ``nperiodic_dimensions``,
  ``_reactmlip_energy``, ``last_modified`` as µs, the frame's info and DFT settings);
- the composition (``chemical_formula_*``; ``elements`` and ``species_at_sites`` as a set):
  ``composition_id IN (SELECT ... FROM compositions/composition_elements WHERE ...)``, never null;
- values fixed by a column of small domain (``dimension_types`` from the periodicity bits) or constant
  (``structure_features`` is ``[]``, ``lattice_vectors`` has 3 rows): the Python predicate is evaluated on
  every possible value and becomes ``pbc IN (...)`` or a constant;
- ``id``/``immutable_id``: ``"<dataset uuid>:<frame index>"``; ``id = "..."`` is an index lookup.
"""

from __future__ import annotations

import datetime
import operator as _op
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from .index import composition_elements_table, compositions_table, datasets_table, frames_table, to_microseconds
from .mapping import PREFIX

__all__ = ('SqlFields', 'TRUE', 'FALSE', 'UNKNOWN')

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    '=': _op.eq, '!=': _op.ne, '<': _op.lt, '<=': _op.le, '>': _op.gt, '>=': _op.ge,
}
F = frames_table.c
C = compositions_table.c

TRUE = sa.true()
FALSE = sa.false()
UNKNOWN = sa.cast(sa.null(), sa.Boolean)

#: OPTIMADE/provider name -> column of the frames table.
COLUMNS: dict[str, sa.Column] = {
    'nsites': F.nsites, 'nelements': F.nelements, 'nperiodic_dimensions': F.nperiodic,
    'last_modified': F.ctime_us,
    f'_{PREFIX}_energy': F.energy, f'_{PREFIX}_frame_index': F.frame_index,
    f'_{PREFIX}_source_uuid': F.source_uuid, f'_{PREFIX}_system': F.system, f'_{PREFIX}_role': F.role,
    f'_{PREFIX}_name': F.name, f'_{PREFIX}_dft_code': F.dft_code, f'_{PREFIX}_dft_code_version': F.dft_code_version,
    f'_{PREFIX}_functional': F.functional, f'_{PREFIX}_pseudo_family': F.pseudo_family,
    f'_{PREFIX}_ecutwfc': F.ecutwfc, f'_{PREFIX}_ecutrho': F.ecutrho,
}
#: Fields that are a column of the composition table (never null).
COMPOSITION: dict[str, sa.Column] = {
    'chemical_formula_reduced': C.reduced, 'chemical_formula_hill': C.hill,
    'chemical_formula_descriptive': C.descriptive, 'chemical_formula_anonymous': C.anonymous,
}
#: List/dict fields known exactly when this expression is true (``None``: always known).
KNOWN_WHEN: dict[str, Any] = {
    f'_{PREFIX}_forces': F.forces_known, f'_{PREFIX}_stress': F.stress_known,
    f'_{PREFIX}_pseudopotentials': F.pseudopotentials.isnot(None), f'_{PREFIX}_kpoints': F.kpoints.isnot(None),
    f'_{PREFIX}_kpoints_offset': F.kpoints_offset.isnot(None),
}
ALWAYS_KNOWN = frozenset({
    'id', 'immutable_id', 'elements', 'elements_ratios', 'species', 'species_at_sites', 'dimension_types',
    'lattice_vectors', 'cartesian_site_positions', 'structure_features', f'_{PREFIX}_dataset_uuid',
    *COMPOSITION, 'nsites', 'nelements', 'nperiodic_dimensions', 'last_modified', f'_{PREFIX}_frame_index',
})
#: List fields -> SQL expression of their length (a CASE when the list may be null).
LENGTHS: dict[str, Any] = {
    'elements': F.nelements, 'elements_ratios': F.nelements, 'species': F.nelements,
    'species_at_sites': F.nsites, 'cartesian_site_positions': F.nsites,
    'dimension_types': sa.literal(3), 'lattice_vectors': sa.literal(3), 'structure_features': sa.literal(0),
    f'_{PREFIX}_forces': sa.case((F.forces_known, F.nsites), else_=sa.null()),
    f'_{PREFIX}_stress': sa.case((F.stress_known, sa.literal(6)), else_=sa.null()),
    f'_{PREFIX}_kpoints': sa.case((F.kpoints.isnot(None), sa.literal(3)), else_=sa.null()),
    f'_{PREFIX}_kpoints_offset': sa.case((F.kpoints_offset.isnot(None), sa.literal(3)), else_=sa.null()),
}
#: Sortable fields -> expression.
_INT64 = 2 ** 63 - 1


def _dataset_uuid():
    return (sa.select(datasets_table.c.uuid).where(datasets_table.c.pk == F.dataset_pk)
            .scalar_subquery())


def _entry_id():
    return _dataset_uuid() + sa.literal(':') + sa.cast(F.frame_index, sa.Text)


def _composition_ids(select) -> sa.BindParameter:
    """The composition ids ``select`` gives, as a literal list fetched when the statement runs.

    The compositions table is small, and a literal ``IN (3, 7, ...)`` lets the database estimate how many
    frames match from its statistics on ``composition_id`` (with a subquery PostgreSQL guessed, and sorted
    900,000 rows for a page of 20 at 1M frames)."""

    def resolve() -> list[int]:
        from .index import profile_engine

        with profile_engine().connect() as conn:
            return [int(row[0]) for row in conn.execute(select)]

    return sa.bindparam(None, callable_=resolve, expanding=True, type_=sa.Integer)


def _composition_where(predicate) -> Any:
    return F.composition_id.in_(_composition_ids(sa.select(C.id).where(predicate)))


def _bind(value: Any) -> Any:
    """A literal the database driver takes: integers beyond int64 become floats (same order for our values)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT64:
        try:
            return float(value)
        except OverflowError:
            return float('inf') if value > 0 else float('-inf')
    if isinstance(value, datetime.datetime):
        return to_microseconds(value)
    return value


def _constant(value: bool | None):
    return UNKNOWN if value is None else (TRUE if value else FALSE)


class SqlFields:
    """Builders of SQL expressions, one per kind of OPTIMADE clause (see the module docstring).

    ``known_fields``: every property name the server knows; others (another provider's) are always null.
    ``has_nul``: whether the database cannot store NUL characters (PostgreSQL): a literal holding one is
    then compared by the text before it (stored text never holds one).
    """

    def __init__(self, known_fields: set[str], python_list_test: Callable[[str, list, list], bool | None]):
        self.known_fields = set(known_fields)
        self._list_test = python_list_test

    def _string_literal_ok(self, value: Any) -> bool:
        return not (isinstance(value, str) and '\x00' in value)

    def _text_compare(self, expr, op: str, value: str):
        """``expr op value`` for a string literal; one holding NUL is handled without sending it."""
        if '\x00' not in value:
            return _OPS[op](expr, value)
        head = value.split('\x00', 1)[0]
        # stored text holds no NUL: text < head + NUL + ... exactly when text <= head
        return {'=': expr != expr, '!=': expr == expr, '<': expr <= head, '<=': expr <= head,
                '>': expr > head, '>=': expr > head}[op]

    # ------------------------------------------------------------------ comparisons
    def compare(self, name: str, op: str, value: Any):
        if name not in self.known_fields:
            return UNKNOWN
        if name in ('id', 'immutable_id'):
            if not isinstance(value, str):
                return UNKNOWN
            if op == '=' and '\x00' not in value:
                uuid, sep, index = value.rpartition(':')
                if not sep or not index.isdigit() or len(index) > 12:
                    return FALSE
                pks = sa.select(datasets_table.c.pk).where(datasets_table.c.uuid == uuid)
                return sa.and_(F.dataset_pk.in_(pks), F.frame_index == int(index))
            return self._text_compare(_entry_id(), op, value)
        if name == f'_{PREFIX}_dataset_uuid':
            if not isinstance(value, str):
                return UNKNOWN
            if op == '=' and '\x00' not in value:
                return F.dataset_pk.in_(sa.select(datasets_table.c.pk).where(datasets_table.c.uuid == value))
            return self._text_compare(_dataset_uuid(), op, value)
        if name in COMPOSITION:
            if not isinstance(value, str):
                return UNKNOWN
            return _composition_where(self._text_compare(COMPOSITION[name], op, value))
        column = COLUMNS.get(name)
        if column is None:
            return None
        value = _bind(value)
        if isinstance(value, str):
            if not isinstance(column.type, (sa.Text, sa.String)) and not hasattr(column.type, 'collation'):
                return UNKNOWN
            return self._text_compare(column, op, value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return UNKNOWN
        return _OPS[op](column, value)

    def known(self, name: str, known: bool):
        if name not in self.known_fields:
            return _constant(not known)
        column = COLUMNS.get(name)
        if column is not None:
            return column.isnot(None) if known else column.is_(None)
        if name in KNOWN_WHEN:
            when = KNOWN_WHEN[name]
            return when if known else sa.not_(when)
        if name in ALWAYS_KNOWN:
            return _constant(known)
        return None

    def fuzzy(self, name: str, kind: str, pattern: str):
        if name not in self.known_fields:
            return UNKNOWN
        if name in ('id', 'immutable_id'):
            expr = _entry_id()
        elif name == f'_{PREFIX}_dataset_uuid':
            expr = _dataset_uuid()
        elif name in COMPOSITION:
            expr = COMPOSITION[name]
        elif name in COLUMNS and hasattr(COLUMNS[name].type, 'collation'):
            expr = COLUMNS[name]
        else:
            return None if name in COLUMNS or name in ALWAYS_KNOWN or name in KNOWN_WHEN else UNKNOWN
        if '\x00' in pattern:
            test = expr != expr  # stored text never holds NUL: false where known
        else:
            method = {'CONTAINS': expr.contains, 'STARTS': expr.startswith, 'ENDS': expr.endswith}[kind]
            test = method(pattern, autoescape=True)
        return _composition_where(test) if name in COMPOSITION else test

    # ------------------------------------------------------------------ lists
    def has(self, name: str, mode: str, values: list):
        """``HAS``/``HAS ALL`` (mode ``ALL``), ``HAS ANY``, ``HAS ONLY`` on list ``name``."""
        if name not in self.known_fields:
            return UNKNOWN
        if name in ('elements', 'species_at_sites'):  # the same set of symbols
            texts = sorted({v for v in values if isinstance(v, str) and self._string_literal_ok(v)})
            ce = composition_elements_table.c
            if mode == 'ALL':
                if len(texts) < len({repr(v) for v in values}):  # a value that no symbol list can hold
                    return FALSE
                having = sa.select(ce.composition_id).where(ce.element.in_(texts)).group_by(ce.composition_id)
                having = having.having(sa.func.count() == len(texts))
                return F.composition_id.in_(_composition_ids(having))
            if mode == 'ANY':
                if not texts:
                    return FALSE
                return F.composition_id.in_(_composition_ids(
                    sa.select(ce.composition_id).where(ce.element.in_(texts)).distinct()))
            # ONLY: no element outside the list
            outside = sa.select(ce.composition_id)
            if texts:
                outside = outside.where(ce.element.not_in(texts))
            return F.composition_id.not_in(_composition_ids(outside.distinct()))
        if name == 'dimension_types':
            domain = [bits for bits in range(8)
                      if self._list_test(mode, [(bits >> i) & 1 for i in range(3)], values) is True]
            return F.pbc.in_(domain) if domain else FALSE
        if name == 'structure_features':
            return _constant(self._list_test(mode, [], values))
        return None

    def length(self, name: str, op: str, size: int):
        if name not in self.known_fields:
            return UNKNOWN
        expr = LENGTHS.get(name)
        if expr is None:
            return None
        return _OPS[op](expr, _bind(size))

    # ------------------------------------------------------------------ sorting
    def sort_key(self, name: str):
        """The expression to ORDER BY for field ``name``, or None when it is not sortable in SQL."""
        if name in ('id', 'immutable_id'):
            return _entry_id()
        if name == f'_{PREFIX}_dataset_uuid':
            return _dataset_uuid()
        if name in COMPOSITION:
            return sa.select(COMPOSITION[name]).where(C.id == F.composition_id).scalar_subquery()
        return COLUMNS.get(name)
