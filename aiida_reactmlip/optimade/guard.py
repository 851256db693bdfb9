"""Bounds on what one OPTIMADE request may cost, and 4xx answers for malformed query parameters.

- :class:`FilterLimits`: the largest filter the server evaluates (characters, parenthesis depth,
  terms). A filter beyond one limit is refused with 400 Bad Request naming the limit, before it is
  parsed, so no filter costs more than a bounded parse plus ``max_terms`` predicate evaluations per
  candidate frame.
- :class:`FilterParser`: the OPTIMADE filter grammar of optimade-python-tools parsed with Lark's LALR(1)
  parser (linear time, no recursion) instead of its default Earley parser (about 5 ms per comparison on
  a loaded core: a 2,000-term ``OR`` chain took 10 s). Both accept the same filters and build the same
  trees (``tests/optimade/test_hostile.py`` compares them); the limits are checked first.
- :func:`request_validation_handler`: query parameters of the wrong type or range (``page_limit=-1``,
  ``page_offset=abc``) answer 400 Bad Request with an OPTIMADE error naming the parameter (FastAPI's
  ``RequestValidationError``, which optimade-python-tools 1.5 answers with 500).
"""

from __future__ import annotations

import dataclasses

from lark import Lark, Tree
from optimade.exceptions import BadRequest
from optimade.filterparser import LarkParser
from optimade.filterparser.lark_parser import AVAILABLE_PARSERS

__all__ = ('DEFAULT_LIMITS', 'FilterLimits', 'FilterParser', 'filter_depth', 'request_validation_handler')


@dataclasses.dataclass(frozen=True)
class FilterLimits:
    """The largest filter one request may send.

    ``max_chars``: characters of the filter text. ``max_depth``: nesting of parentheses (``NOT (NOT (...))``
    counts one level per parenthesis). ``max_terms``: comparisons plus the values of ``HAS ALL/ANY/ONLY``
    lists (each is one predicate evaluation per candidate frame). ``max_evaluations``: terms times the
    entries left after the database pre-selection (about 1 µs each on one core), the CPU budget of one
    request.
    """

    max_chars: int = 5_000
    max_depth: int = 20
    max_terms: int = 256
    max_evaluations: int = 1_000_000
    #: Terms times the frames the database may scan (the frames of the datasets named by ``id``/
    #: ``_reactmlip_dataset_uuid``, else every frame) for a filter that runs as SQL on the frame index.
    max_sql_evaluations: int = 300_000_000

    def describe(self) -> str:
        return (f'at most {self.max_chars:,} characters, {self.max_depth} levels of parentheses and '
                f'{self.max_terms} terms (comparisons plus listed values)')

    def check_budget(self, terms: int, entries: int, endpoint: str = 'structures') -> None:
        """400 when ``terms`` predicate tests on each of ``entries`` candidate entries exceed ``max_evaluations``."""
        if terms * entries > self.max_evaluations:
            raise BadRequest(detail=(
                f'filter too expensive: {terms} terms on {entries:,} candidate {endpoint} entries make '
                f'{terms * entries:,} tests; this server runs at most {self.max_evaluations:,} per request. '
                'Narrow it with elements HAS ..., id = ... or _reactmlip_dataset_uuid = ..., or use fewer terms.'))


    def check_sql_budget(self, terms: int, frames: int) -> None:
        """400 when ``terms`` SQL predicates on each of ``frames`` indexed frames exceed ``max_sql_evaluations``."""
        if terms * frames > self.max_sql_evaluations:
            raise BadRequest(detail=(
                f'filter too expensive: {terms} terms on {frames:,} indexed structures make {terms * frames:,} '
                f'tests; this server runs at most {self.max_sql_evaluations:,} per request. Narrow it with '
                '_reactmlip_dataset_uuid = ... or id = ..., or use fewer terms.'))


DEFAULT_LIMITS = FilterLimits()

#: How much of a refused filter an error message quotes (characters).
_QUOTE = 120


def _quote(text: str) -> str:
    return repr(text if len(text) <= _QUOTE else text[:_QUOTE] + '...')


def filter_depth(text: str) -> int:
    """Deepest nesting of parentheses outside string literals (unbalanced text is left to the parser)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == '\\':
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == '(':
            depth += 1
            deepest = max(deepest, depth)
        elif char == ')':
            depth -= 1
    return deepest


def _count_terms(tree: Tree) -> int:
    """Comparisons plus values of HAS ALL/ANY/ONLY lists in a parsed filter (iterative, no recursion)."""
    terms = 0
    for subtree in tree.iter_subtrees():
        if subtree.data == 'comparison':
            terms += 1
        elif subtree.data in ('value_list', 'value_zip_list'):
            terms += max(0, sum(1 for child in subtree.children if isinstance(child, Tree)) - 1)
    return terms


class FilterParser(LarkParser):
    """OPTIMADE filter -> Lark tree, with LALR(1) and :class:`FilterLimits` (a drop-in for ``LarkParser``)."""

    def __init__(self, limits: FilterLimits = DEFAULT_LIMITS, version: tuple[int, int, int] | None = None,
                 variant: str = 'default'):
        version = version or max(v for v in AVAILABLE_PARSERS if AVAILABLE_PARSERS[v].get('default'))
        self.version, self.variant, self.limits = version, variant, limits
        with open(AVAILABLE_PARSERS[version][variant]) as handle:
            self.lark = Lark(handle, parser='lalr', maybe_placeholders=False)
        self.tree: Tree | None = None  # kept None: one parser serves concurrent requests
        self.filter: str | None = None

    def parse(self, filter_: str) -> Tree:
        """Parse ``filter_``; ``BadRequest`` (400) when it is malformed or beyond the limits."""
        limits = self.limits
        if len(filter_) > limits.max_chars:
            raise BadRequest(detail=f'filter too long: {len(filter_):,} characters; this server evaluates filters of '
                             f'{limits.describe()}. Split the query into several requests.')
        depth = filter_depth(filter_)
        if depth > limits.max_depth:
            raise BadRequest(detail=f'filter nested too deeply: {depth} levels of parentheses; this server evaluates '
                             f'filters of {limits.describe()}. Remove redundant parentheses.')
        try:
            tree = self.lark.parse(filter_)
        except Exception as exc:  # every lark error means a malformed filter
            raise BadRequest(detail=f'Unable to parse filter {_quote(filter_)}: {exc}') from exc
        terms = _count_terms(tree)
        if terms > limits.max_terms:
            raise BadRequest(detail=f'filter too large: {terms} terms; this server evaluates filters of '
                             f'{limits.describe()}. Split the query into several requests or use HAS ANY.')
        return tree


def request_validation_handler(request, exc):
    """FastAPI ``RequestValidationError`` -> 400 Bad Request with one OPTIMADE error per bad parameter."""
    from optimade.models import ErrorSource, OptimadeError
    from optimade.server.exception_handlers import general_exception

    errors = []
    for error in exc.errors():
        location = [str(part) for part in error.get('loc', ())]
        name = location[-1] if location else 'request'
        given = error.get('input')
        shown = _quote(str(given)) if given is not None else 'nothing'
        errors.append(OptimadeError(
            status='400', title='Bad Request',
            detail=f"query parameter '{name}': {error.get('msg', 'invalid value')} (got {shown})",
            source=ErrorSource(parameter=name),
        ))
    if not errors:
        errors.append(OptimadeError(status='400', title='Bad Request', detail='invalid query parameters'))
    return general_exception(request, BadRequest(detail=errors[0].detail), status_code=400, errors=errors)
