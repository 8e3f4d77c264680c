"""Metadata filters (``year>=2020``, ``category=math.CO``), applied before ranking.

A filter restricts the candidates every system ranks (the dense backend and
BM25, or PostgreSQL's HNSW and full-text search), instead of dropping results
after retrieval: a search that filters keeps returning ``k`` documents as long
as ``k`` documents match (txtai's most repeated complaint is filters applied
after retrieval that leave a result list empty).

Syntax: ``FIELD OP VALUE`` with ``OP`` one of ``=`` (or ``==``), ``!=``, ``<``,
``<=``, ``>``, ``>=``, or ``FIELD in V1,V2,...``. Several filters must all hold.
``FIELD`` is a key of the documents' metadata (a JSONL record's extra keys,
a CSV file's other columns, ``path`` and ``format`` for a folder).

Semantics, the same in the local index and in PostgreSQL (see
:mod:`fieldtune.search.backends.pgvector`, which translates them to SQL):

* a document whose field is missing, null or an object never matches (``!=`` included);
* a list value matches if one of its elements does (``!=``: if none equals the value);
* a value that looks like a number (``2020``, ``-1.5e3``) compares as a number with
  elements that are numbers or numeric strings; an ordering against a numeric value
  skips elements that are not numbers; otherwise values compare as text
  (code-point order, so ISO dates order correctly), booleans as ``true``/``false``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from fieldtune.search.options import SearchOptionError

#: What a numeric-looking value is (the same pattern is used in SQL, so both sides agree).
NUMBER_PATTERN = r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$"
_NUMBER = re.compile(NUMBER_PATTERN)
_FIELD = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_EXPRESSION = re.compile(rf"^\s*({_FIELD})\s*(?:(==|!=|<=|>=|=|<|>)|\s(in)\s)\s*(.*?)\s*$", re.DOTALL)


class FilterError(SearchOptionError):
    """A filter that cannot be parsed or names a field no document has (CLI exit 2, HTTP 400)."""


class Operator(str, Enum):
    """A filter's comparison."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "in"

    @property
    def ordering(self) -> bool:
        return self in (Operator.LT, Operator.LE, Operator.GT, Operator.GE)


_ORDER: dict[Operator, Callable[[Any, Any], bool]] = {
    Operator.LT: lambda a, b: a < b,
    Operator.LE: lambda a, b: a <= b,
    Operator.GT: lambda a, b: a > b,
    Operator.GE: lambda a, b: a >= b,
}


def as_number(value: Any) -> float | None:
    """``value`` as a finite number if it is one or a numeric string (never a boolean), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER.match(value):
        return float(value)
    return None


def as_text(value: Any) -> str | None:
    """The text a scalar compares as (booleans ``true``/``false``); None for null, lists, objects."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


@dataclass(frozen=True)
class Filter:
    """One parsed ``FIELD OP VALUE``; ``values`` has one item except for ``in``."""

    field: str
    op: Operator
    values: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Filter:
        """``year>=2020``, ``category = math.CO``, ``lang in en,fr``; a :class:`FilterError` saying why not."""
        if not isinstance(text, str):
            raise FilterError(f"a filter is a string such as 'year>=2020', not {type(text).__name__}")
        match = _EXPRESSION.match(text)
        if match is None:
            raise FilterError(
                f"bad filter {text!r}: write FIELD OP VALUE with OP one of "
                f"{', '.join(op.value for op in Operator)} (e.g. 'year>=2020', 'category=math.CO', 'lang in en,fr')"
            )
        field, symbol, word, raw = match.groups()
        op = Operator.IN if word else Operator("=" if symbol == "==" else symbol)
        parts = raw.strip().strip("()").split(",") if op is Operator.IN else [raw]
        if any(part.strip()[:1] in ("<", ">", "=", "!") for part in parts):
            raise FilterError(f"bad filter {text!r}: the value starts with an operator (quote it if it is meant)")
        values = tuple(v for v in (part.strip().strip("'\"") for part in parts) if v)
        if not values:
            raise FilterError(f"bad filter {text!r}: no value after {op.value!r}")
        return cls(field, op, values)

    def __str__(self) -> str:
        if self.op is Operator.IN:
            return f"{self.field} in {','.join(self.values)}"
        return f"{self.field}{self.op.value}{self.values[0]}"

    def matches(self, value: Any) -> bool:
        """Whether a document whose metadata holds ``value`` under :attr:`field` passes."""
        elements = value if isinstance(value, list) else [value]
        scalars = [e for e in elements if as_text(e) is not None]
        if not scalars:
            return False
        if self.op is Operator.NE:
            return not any(_equals(e, self.values[0]) for e in scalars)
        if self.op.ordering:
            return any(_ordered(e, self.op, self.values[0]) for e in scalars)
        return any(_equals(e, wanted) for e in scalars for wanted in self.values)


def _equals(element: Any, wanted: str) -> bool:
    number, target = as_number(element), as_number(wanted)
    if number is not None and target is not None and number == target:
        return True
    return as_text(element) == wanted


def _ordered(element: Any, op: Operator, wanted: str) -> bool:
    target = as_number(wanted)
    if target is not None:
        number = as_number(element)
        return number is not None and _ORDER[op](number, target)
    return _ORDER[op](as_text(element), wanted)


FilterInput = str | Filter | Sequence[str | Filter] | Mapping[str, Any] | None


def parse_filters(filters: FilterInput) -> tuple[Filter, ...]:
    """Filters from strings, :class:`Filter` objects, or a ``{field: value}`` mapping (equality;
    a list value means ``in``). None or empty: no filter."""
    if not filters:
        return ()
    if isinstance(filters, (str, Filter)):
        filters = [filters]
    if isinstance(filters, Mapping):
        out = []
        for field, value in filters.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            texts = tuple(t for t in (as_text(v) for v in values) if t is not None)
            if not texts or not re.fullmatch(_FIELD, str(field)):
                raise FilterError(f"bad filter {field!r}: {value!r} (a field name and a scalar or list of scalars)")
            out.append(Filter(str(field), Operator.IN if len(texts) > 1 else Operator.EQ, texts))
        return tuple(out)
    return tuple(item if isinstance(item, Filter) else Filter.parse(item) for item in filters)


def check_fields(filters: Sequence[Filter], known: Iterable[str], *, where: str) -> None:
    """A :class:`FilterError` for a field that no document of ``where`` has (it lists the fields)."""
    known = sorted(set(known))
    for item in filters:
        if item.field not in known:
            listed = ", ".join(known) if known else "none: its documents carry no metadata"
            raise FilterError(f"filter {str(item)!r}: no document in {where} has a field {item.field!r} "
                              f"(fields: {listed})")


class MetadataColumns:
    """The documents' metadata of one generation, read once, as one column of values per field.

    ``metadata[i]`` belongs to global document ordinal ``i``; masks are cached
    per filter (a generation never changes, so neither do they).
    """

    def __init__(self, metadata: Sequence[Mapping[str, Any]]) -> None:
        self.size = len(metadata)
        self.columns: dict[str, list[Any]] = {}
        for ordinal, record in enumerate(metadata):
            for key, value in (record or {}).items():
                self.columns.setdefault(key, [None] * self.size)[ordinal] = value

    @property
    def fields(self) -> list[str]:
        return sorted(self.columns)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one object per generation, dropped with it
    def document_mask(self, item: Filter) -> np.ndarray:
        """Bool per document ordinal: does it pass ``item``?"""
        column = self.columns.get(item.field)
        if column is None:
            return np.zeros(self.size, dtype=bool)
        return np.fromiter((item.matches(v) for v in column), dtype=bool, count=self.size)

    def mask(self, filters: Sequence[Filter]) -> np.ndarray:
        """Bool per document ordinal: does it pass every filter?"""
        out = np.ones(self.size, dtype=bool)
        for item in filters:
            out &= self.document_mask(item)
        return out


@dataclass(frozen=True)
class RowFilter:
    """What a backend's search is restricted to: the parsed filters, and the live rows that pass.

    ``rows`` is computed from the local metadata only when a backend asks for it
    (PostgreSQL evaluates ``filters`` itself); it already excludes deleted rows.
    """

    filters: tuple[Filter, ...]
    rows_of: Callable[[], np.ndarray]

    @functools.cached_property
    def rows(self) -> np.ndarray:
        """Bool per global row: live and passing every filter."""
        return self.rows_of()
