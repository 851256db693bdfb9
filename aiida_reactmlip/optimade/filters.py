"""OPTIMADE filter -> :class:`Condition`: an SQL expression on the per-frame index, and the exact Python predicate.

Every frame of every ``LabelledDatasetData`` has a row in the per-frame index (:mod:`.index`), so a filter
normally runs as one SQL query:

1. :attr:`Condition.sql`: a SQLAlchemy Core boolean expression on ``reactmlip_optimade_frames`` built by
   :class:`~aiida_reactmlip.optimade.sqlfilters.SqlFields` (``elements HAS "Cu"`` becomes a lookup in the
   composition-elements table, ``_reactmlip_energy < -31`` a comparison on the energy column). SQL's ``NULL``
   is OPTIMADE's unknown and ``AND``/``OR``/``NOT`` are Kleene logic, as in the Python evaluator. ``None``
   when some clause has no SQL form (``HAS`` on positions, forces, stress, k-points).
2. :meth:`Condition.evaluate`: the exact OPTIMADE semantics on one frame's attributes (three-valued: a
   comparison with a null property is neither true nor false, ``NOT`` of it stays unknown). It runs only
   for filters without an SQL form, on the frames :attr:`Condition.prune` (the SQL of the parts that can
   narrow the answer) keeps; the tests check that both ways give the same answers.
3. :attr:`Condition.qb_filters`: ``QueryBuilder`` filters on dataset nodes (used by ``/references``).

Malformed filters and type mismatches (``nsites > "a"``) raise ``BadRequest`` (HTTP 400) naming the
problem; grammar the backend does not support (correlated ``:`` queries, property-to-property
comparisons, operators inside ``HAS``) raises ``NotImplementedError`` (HTTP 501, as the OPTIMADE
specification asks).
"""

from __future__ import annotations

import datetime
import operator as _op
from collections.abc import Callable
from typing import Any

from lark import Token, v_args
from optimade.exceptions import BadRequest
from optimade.filtertransformers.base_transformer import BaseTransformer, Quantity

__all__ = ('Condition', 'ReactmlipTransformer')

Lookup = Callable[[dict, str], Any]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    '=': _op.eq, '!=': _op.ne, '<': _op.lt, '<=': _op.le, '>': _op.gt, '>=': _op.ge,
}
_NUMERIC = {'integer', 'float'}


def _decide(parts: list[Condition], doc: dict, lookup: Lookup, decisive: bool) -> bool | None:
    """Three-valued AND (``decisive`` False) or OR (``decisive`` True) of ``parts`` on ``doc``; stops at the
    first part whose value is ``decisive``, which decides it; unknown (None) when a part is unknown."""
    unknown = False
    for part in parts:
        value = part.evaluate(doc, lookup)
        if value is decisive:
            return decisive
        unknown = unknown or value is None
    return None if unknown else not decisive


def _all(parts: list[Condition], doc: dict, lookup: Lookup) -> bool | None:
    return _decide(parts, doc, lookup, False)


def _any(parts: list[Condition], doc: dict, lookup: Lookup) -> bool | None:
    return _decide(parts, doc, lookup, True)


_SAME = object()


def list_test(mode: str, items: Any, values: list) -> bool | None:
    """``items HAS ALL values`` (mode ``ALL``), ``HAS ANY`` or ``HAS ONLY`` with OPTIMADE semantics; None if unknown."""
    if not isinstance(items, list):
        return None
    if mode == 'ONLY':
        return all(item in values for item in items)
    hits = [value in items for value in values]
    return any(hits) if mode == 'ANY' else all(hits)


def _sql_all(parts):
    import sqlalchemy as sa

    return parts[0] if len(parts) == 1 else sa.and_(*parts)


def _sql_any(parts):
    import sqlalchemy as sa

    return parts[0] if len(parts) == 1 else sa.or_(*parts)


class Condition:
    """A parsed filter: ``evaluate(doc, lookup)`` gives True/False/None (unknown); ``qb_filters`` prunes datasets."""

    def __init__(self, evaluate: Callable[[dict, Lookup], bool | None], qb_filters: dict | None = None,
                 fields: frozenset[str] = frozenset(), terms: int = 1, sql: Any = None, prune: Any = _SAME,
                 datasets: frozenset[str] | None = None):
        self._evaluate = evaluate
        self.qb_filters = qb_filters
        #: SQL expression with the same three-valued result on the frame index, or None (not expressible).
        self.sql = sql
        #: SQL expression true on a superset of the matches (prunes the Python fallback), or None.
        self.prune = sql if prune is _SAME else prune
        #: UUIDs of the datasets that can hold a match (from ``id``/``_reactmlip_dataset_uuid``), None: any.
        self.datasets = datasets
        #: The OPTIMADE property names the filter reads.
        self.fields = fields
        #: Predicate tests per entry (comparisons plus listed values): the cost of evaluating one entry.
        self.terms = terms

    def evaluate(self, doc: dict, lookup: Lookup) -> bool | None:
        return self._evaluate(doc, lookup)

    def matches(self, doc: dict, lookup: Lookup) -> bool:
        return self._evaluate(doc, lookup) is True

    @classmethod
    def always(cls) -> Condition:
        from .sqlfilters import TRUE

        return cls(lambda doc, lookup: True, terms=0, sql=TRUE)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_datetime(value: Any) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace('Z', '+00:00'))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)
    return None


def _compare(left: Any, op: str, right: Any) -> bool | None:
    """``left op right`` with OPTIMADE typing; None when unknown or not comparable."""
    if left is None or right is None:
        return None
    if isinstance(left, (list, dict)):
        return None
    if _is_number(left) and _is_number(right):
        return _OPS[op](left, right)
    if isinstance(left, datetime.datetime) or isinstance(right, datetime.datetime):
        lt, rt = _as_datetime(left), _as_datetime(right)
        return None if lt is None or rt is None else _OPS[op](lt, rt)
    if isinstance(left, str) and isinstance(right, str):
        return _OPS[op](left, right)
    if isinstance(left, bool) and isinstance(right, bool) and op in ('=', '!='):
        return _OPS[op](left, right)
    return None


class ReactmlipTransformer(BaseTransformer):
    """Lark filter tree -> :class:`Condition` (a ``BaseTransformer`` of optimade 1.5).

    ``field_types``: OPTIMADE property name -> OPTIMADE type name (``integer``, ``float``, ``string``,
    ``timestamp``, ``list``, ``dictionary``, ``boolean``) used to reject ill-typed comparisons with 400.
    ``prefilter``: property name -> callable(op, value) -> ``QueryBuilder`` filter dict on the dataset
    node (or None) for the clauses that can prune datasets.
    """

    operator_map = {op: op for op in _OPS}

    def __init__(self, mapper=None, field_types: dict[str, str] | None = None,
                 prefilter: dict[str, Callable[[str, Any], dict | None]] | None = None, sql_fields=None):
        super().__init__(mapper=mapper)
        self.field_types = dict(field_types or {})
        self.prefilter = dict(prefilter or {})
        #: :class:`~aiida_reactmlip.optimade.sqlfilters.SqlFields` (None: no SQL, Python evaluation only).
        self.sql_fields = sql_fields

    def _sql(self, method: str, *args):
        return None if self.sql_fields is None else getattr(self.sql_fields, method)(*args)

    def _sql_constant(self, result: bool | None):
        if self.sql_fields is None:
            return None
        from .sqlfilters import _constant

        return _constant(result)

    @staticmethod
    def _datasets_of(name: str, op: str, value: Any) -> frozenset[str] | None:
        """The one dataset an ``id = ...``/``_reactmlip_dataset_uuid = ...`` clause allows (empty: none)."""
        if op != '=' or not isinstance(value, str):
            return None
        if name == 'id':
            uuid, sep, index = value.rpartition(':')
            return frozenset({uuid}) if sep and index.isdigit() else frozenset()
        if name == '_reactmlip_dataset_uuid':
            return frozenset({value})
        return None

    # ------------------------------------------------------------------ leaves
    @v_args(inline=True)
    def string(self, token):
        """A quoted literal without its quotes; the OPTIMADE escapes ``\\"`` and ``\\\\`` are undone."""
        return _unescape(str(token)[1:-1])

    @v_args(inline=True)
    def signed_int(self, token):
        return _parse_number(token, int)

    @v_args(inline=True)
    def number(self, token):
        return _parse_number(token, int if token.type == 'SIGNED_INT' else float)

    def property(self, args):
        quantity = super().property(args)
        if len(args) > 1:
            raise NotImplementedError(f'nested or relationship properties are not supported: {".".join(map(str, args))}')
        if isinstance(quantity, Quantity):
            return _Prop(quantity.name)
        return _Prop(str(quantity))  # unknown property of another provider: always null

    def value_list(self, arg):
        for value in arg:
            if isinstance(value, Token) and str(value) in _OPS:
                raise NotImplementedError(f'operators inside a value list are not supported: {arg}')
        return list(arg)

    def value_zip(self, arg):
        raise NotImplementedError('correlated list queries (":") are not supported')

    def value_zip_list(self, arg):
        raise NotImplementedError('correlated list queries (":") are not supported')

    def set_zip_op_rhs(self, arg):
        raise NotImplementedError('correlated list queries (":") are not supported')

    def property_zip_addon(self, arg):
        raise NotImplementedError('correlated list queries (":") are not supported')

    # ------------------------------------------------------------------ logic
    def filter(self, arg):
        if len(arg) > 1:
            raise BadRequest(detail=f'the filter holds {len(arg)} expressions side by side: join them with AND or OR')
        return arg[0] if arg else Condition.always()

    def expression(self, arg):
        if len(arg) == 1:
            return arg[0]
        parts = list(arg)
        qb = [p.qb_filters for p in parts]
        sqls, prunes = [p.sql for p in parts], [p.prune for p in parts]
        sets = [p.datasets for p in parts]
        return Condition(
            lambda doc, lookup: _any(parts, doc, lookup),
            None if any(q is None for q in qb) else {'or': qb},
            frozenset().union(*(p.fields for p in parts)),
            sum(p.terms for p in parts),
            sql=None if any(q is None for q in sqls) else _sql_any(sqls),
            prune=None if any(q is None for q in prunes) else _sql_any(prunes),
            datasets=None if any(d is None for d in sets) else frozenset().union(*sets),
        )

    def expression_clause(self, arg):
        if len(arg) == 1:
            return arg[0]
        parts = list(arg)
        qb = [p.qb_filters for p in parts if p.qb_filters is not None]
        sqls, prunes = [p.sql for p in parts], [p.prune for p in parts if p.prune is not None]
        sets = [p.datasets for p in parts if p.datasets is not None]
        return Condition(
            lambda doc, lookup: _all(parts, doc, lookup),
            None if not qb else (qb[0] if len(qb) == 1 else {'and': qb}),
            frozenset().union(*(p.fields for p in parts)),
            sum(p.terms for p in parts),
            sql=None if any(q is None for q in sqls) else _sql_all(sqls),
            prune=_sql_all(prunes) if prunes else None,
            datasets=frozenset.intersection(*sets) if sets else None,
        )

    def expression_phrase(self, arg):
        if len(arg) == 1:
            return arg[0]
        inner = arg[1]

        def negate(doc, lookup):
            value = inner.evaluate(doc, lookup)
            return None if value is None else not value

        import sqlalchemy as sa

        return Condition(negate, None, inner.fields, inner.terms,
                         sql=None if inner.sql is None else sa.not_(inner.sql), prune=None)

    # ------------------------------------------------------------------ comparisons
    def _type_of(self, name: str) -> str | None:
        kind = self.field_types.get(name)
        return None if kind is None else str(getattr(kind, 'value', kind))

    def _check_literal(self, name: str, op: str, value: Any) -> Any:
        """Reject ill-typed literals (400) and convert timestamps; return the value to compare with."""
        kind = self._type_of(name)
        if isinstance(value, _Prop):
            raise NotImplementedError(f'comparing two properties ({name} {op} {value.name}) is not supported')
        if kind in _NUMERIC and not _is_number(value):
            raise BadRequest(detail=f"'{name}' is a number ({kind}): cannot compare it {op} {value!r}")
        if kind in ('string',) and not isinstance(value, str):
            raise BadRequest(detail=f"'{name}' is a string: compare it with a quoted string, not {value!r}")
        if kind == 'timestamp':
            parsed = _as_datetime(value)
            if parsed is None:
                raise BadRequest(detail=f"'{name}' is a timestamp: {value!r} is not an RFC 3339 date-time string")
            return parsed
        if kind in ('list', 'dictionary') and op in _OPS:
            raise BadRequest(detail=f"'{name}' is a {kind}: use HAS, HAS ALL/ANY/ONLY or LENGTH, not {op}")
        return value

    def _qb(self, name: str, op: str, value: Any) -> dict | None:
        builder = self.prefilter.get(name)
        return builder(op, value) if builder else None

    @v_args(inline=True)
    def property_first_comparison(self, prop, rhs):
        if not isinstance(prop, _Prop):
            raise NotImplementedError('relationship filters are not supported')
        return rhs(prop.name)

    def constant_first_comparison(self, arg):
        constant, op, other = arg[0], str(arg[1]), arg[2]
        reversed_op = self._reversed_operator_map[op]
        if isinstance(other, _Prop):
            return self.value_op_rhs(Token('OPERATOR', reversed_op), constant)(other.name)
        result = _compare(constant, op, other)
        return Condition(lambda doc, lookup: result, sql=self._sql_constant(result))

    @v_args(inline=True)
    def value_op_rhs(self, op, value):
        op = str(op)

        def build(name: str) -> Condition:
            literal = self._check_literal(name, op, value)
            return Condition(
                lambda doc, lookup: _compare(lookup(doc, name), op, literal),
                self._qb(name, op, literal),
                frozenset({name}),
                sql=self._sql('compare', name, op, literal),
                datasets=self._datasets_of(name, op, literal),
            )

        return build

    def known_op_rhs(self, arg):
        known = str(arg[1]) == 'KNOWN'

        def build(name: str) -> Condition:
            return Condition(lambda doc, lookup: (lookup(doc, name) is not None) == known, None, frozenset({name}),
                             sql=self._sql('known', name, known))

        return build

    def fuzzy_string_op_rhs(self, arg):
        kind = str(arg[0])
        pattern = arg[2] if isinstance(arg[1], Token) and arg[1].type == 'WITH' else arg[1]
        if not isinstance(pattern, str):
            raise BadRequest(detail=f'{kind} needs a quoted string, got {pattern!r}')
        test = {'CONTAINS': lambda s: pattern in s, 'STARTS': lambda s: s.startswith(pattern),
                'ENDS': lambda s: s.endswith(pattern)}[kind]

        def build(name: str) -> Condition:
            if self._type_of(name) not in (None, 'string'):
                raise BadRequest(detail=f"'{name}' is not a string: {kind} does not apply")

            def evaluate(doc, lookup):
                value = lookup(doc, name)
                return test(value) if isinstance(value, str) else None

            return Condition(evaluate, None, frozenset({name}), sql=self._sql('fuzzy', name, kind, pattern))

        return build

    def set_op_rhs(self, arg):
        if len(arg) == 2:
            mode, values = 'HAS', [arg[1]]
        elif str(arg[1]) in ('ALL', 'ANY', 'ONLY'):
            mode, values = str(arg[1]), list(arg[2])
        else:
            raise NotImplementedError(f'HAS with an operator ({arg[1]}) is not supported')
        for value in values:
            if isinstance(value, _Prop):
                raise NotImplementedError('HAS with a property on the right is not supported')

        def build(name: str) -> Condition:
            if self._type_of(name) not in (None, 'list'):
                raise BadRequest(detail=f"'{name}' is not a list: HAS does not apply")

            list_mode = 'ALL' if mode == 'HAS' else mode

            def evaluate(doc, lookup):
                return list_test(list_mode, lookup(doc, name), values)

            qb = None
            if mode in ('HAS', 'ALL'):
                qb = self._qb(name, 'HAS ALL', values)
            elif mode == 'ANY':
                parts = [self._qb(name, 'HAS ALL', [v]) for v in values]
                qb = None if any(p is None for p in parts) else {'or': parts}
            return Condition(evaluate, qb, frozenset({name}), max(1, len(values)),
                             sql=self._sql('has', name, list_mode, values))

        return build

    def length_op_rhs(self, arg):
        op = str(arg[1]) if len(arg) == 3 else '='
        size = arg[-1]
        if not isinstance(size, int) or isinstance(size, bool):
            raise BadRequest(detail=f'LENGTH needs an integer, got {size!r}')

        def build(name: str) -> Condition:
            if self._type_of(name) not in (None, 'list'):
                raise BadRequest(detail=f"'{name}' is not a list: LENGTH does not apply")

            def evaluate(doc, lookup):
                items = lookup(doc, name)
                return _OPS[op](len(items), size) if isinstance(items, list) else None

            return Condition(evaluate, None, frozenset({name}), sql=self._sql('length', name, op, size))

        return build


def _unescape(text: str) -> str:
    """Undo the escapes of an OPTIMADE string literal: ``\\"`` -> ``"``, ``\\\\`` -> ``\\``; others stay as written."""
    if '\\' not in text:
        return text
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == '\\' and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(char)
            i += 1
    return ''.join(out)


def _parse_number(token, kind: type):
    """An int or float literal; 400 when Python refuses it (e.g. an integer of more than 4,300 digits)."""
    try:
        return kind(token)
    except (ValueError, OverflowError) as exc:
        text = str(token)
        shown = text if len(text) <= 40 else f'{text[:20]}...({len(text)} characters)'
        raise BadRequest(detail=f'number {shown} cannot be read: {exc}') from exc


class _Prop:
    """A property name in the filter (resolved to its OPTIMADE name)."""

    __slots__ = ('name',)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name
