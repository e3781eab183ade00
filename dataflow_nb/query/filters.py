"""MongoDB-style filters compiled to SQLAlchemy Core: every value bound, every field checked.

NULL semantics (the same on both backends): ``{"f": None}`` is ``IS NULL``; ``$ne`` uses
``IS DISTINCT FROM`` so rows where the field is NULL match ``{"f": {"$ne": 5}}``; ``$nin``
likewise keeps NULL rows; every other comparison is false for NULL, as in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.spec import ModelSpec
from dataflow_nb.model.validate import check_known, to_wire

Clause = sa.ColumnElement[bool]


@dataclass(frozen=True)
class FilterTarget:
    """What a filter is compiled against: its columns and how values are checked."""

    label: str
    column: Callable[[Any], sa.ColumnElement[Any]]
    coerce: Callable[[str, Any], Any]

    def value(self, name: str, value: Any, op: str) -> Any:
        """A comparison value checked against its field (None passes: comparisons handle it)."""
        if value is None:
            return None
        try:
            return self.coerce(name, value)
        except ValidationError as exc:
            raise ValidationError(f"{exc} (in filter operator {op})") from None

    def values(self, name: str, value: Any, op: str) -> list[Any]:
        if not isinstance(value, list | tuple | set | frozenset):
            raise ValidationError(f"{self.label}: {op} on field {name!r} takes a list, got {value!r}")
        return [self.value(name, v, op) for v in value]

    def text(self, name: str, value: Any, op: str) -> str:
        if not isinstance(value, str):
            raise ValidationError(f"{self.label}: {op} on field {name!r} takes a pattern string, got {value!r}")
        return value


def model_target(model: ModelSpec, table: sa.Table) -> FilterTarget:
    """Filters on a model: fields from the model, values checked against their types."""
    label = f"model {model.name}"

    def column(name: Any) -> sa.ColumnElement[Any]:
        check_known(label, [name], list(model.fields))
        column: sa.ColumnElement[Any] = table.c[name]
        return column

    return FilterTarget(label, column, lambda name, value: to_wire(model, name, value))


def _in(col: sa.ColumnElement[Any], values: list[Any]) -> Clause:
    present = [v for v in values if v is not None]
    clause = col.in_(present)
    return sa.or_(clause, col.is_(None)) if len(present) < len(values) else clause


def _nin(col: sa.ColumnElement[Any], values: list[Any]) -> Clause:
    present = [v for v in values if v is not None]
    if len(present) < len(values):
        return sa.and_(col.not_in(present), col.is_not(None)) if present else col.is_not(None)
    return sa.or_(col.not_in(present), col.is_(None)) if present else sa.true()


def _between(col: sa.ColumnElement[Any], t: FilterTarget, name: str, value: Any) -> Clause:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValidationError(f"{t.label}: $between on field {name!r} takes [low, high], got {value!r}")
    low, high = (t.value(name, v, "$between") for v in value)
    return col.between(low, high)


def _exists(col: sa.ColumnElement[Any], t: FilterTarget, name: str, value: Any) -> Clause:
    if not isinstance(value, bool):
        raise ValidationError(f"{t.label}: $exists on field {name!r} takes True or False, got {value!r}")
    return col.is_not(None) if value else col.is_(None)


Operator = Callable[[sa.ColumnElement[Any], FilterTarget, str, Any], Clause]

OPERATORS: dict[str, Operator] = {
    "$eq": lambda c, t, n, v: c.is_(None) if v is None else c == t.value(n, v, "$eq"),
    "$ne": lambda c, t, n, v: c.is_distinct_from(t.value(n, v, "$ne")),
    "$gt": lambda c, t, n, v: c > t.value(n, v, "$gt"),
    "$gte": lambda c, t, n, v: c >= t.value(n, v, "$gte"),
    "$lt": lambda c, t, n, v: c < t.value(n, v, "$lt"),
    "$lte": lambda c, t, n, v: c <= t.value(n, v, "$lte"),
    "$in": lambda c, t, n, v: _in(c, t.values(n, v, "$in")),
    "$nin": lambda c, t, n, v: _nin(c, t.values(n, v, "$nin")),
    "$like": lambda c, t, n, v: c.like(t.text(n, v, "$like")),
    "$ilike": lambda c, t, n, v: c.ilike(t.text(n, v, "$ilike")),
    "$exists": _exists,
    "$between": _between,
}


def field_clause(target: FilterTarget, name: str, condition: Any) -> Clause:
    """One field's condition: a bare value (equality, None is IS NULL) or ``{"$op": value}``."""
    col = target.column(name)
    if not isinstance(condition, Mapping):
        return OPERATORS["$eq"](col, target, name, condition)
    if not condition:
        raise ValidationError(f"{target.label}: empty condition for field {name!r}")
    check_known(target.label, list(condition), list(OPERATORS), "operator")
    return sa.and_(*(OPERATORS[op](col, target, name, value) for op, value in condition.items()))


def compile_filter(target: FilterTarget, spec: Mapping[str, Any] | None) -> Clause | None:
    """A filter dict as one SQLAlchemy boolean expression (None for an empty filter)."""
    if not spec:
        return None
    if not isinstance(spec, Mapping):
        raise ValidationError(f"{target.label}: a filter is a dict, got {spec!r}")
    clauses: list[Clause] = []
    for key, condition in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(condition, list | tuple) or not condition:
                raise ValidationError(f"{target.label}: {key} takes a non-empty list of filters")
            parts = [p for p in (compile_filter(target, sub) for sub in condition) if p is not None]
            clauses.append(sa.and_(*parts) if key == "$and" else sa.or_(*parts))
        elif key == "$not":
            inner = compile_filter(target, condition)
            if inner is not None:
                clauses.append(sa.not_(inner))
        else:
            clauses.append(field_clause(target, key, condition))
    return sa.and_(*clauses) if len(clauses) > 1 else clauses[0]


def order_clauses(target: FilterTarget, order_by: Any) -> list[sa.ColumnElement[Any]]:
    """``["-created_at", "name"]`` (or a single string) as ORDER BY clauses."""
    if order_by is None:
        return []
    items = [order_by] if isinstance(order_by, str) else order_by
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValidationError(f"{target.label}: order_by takes field names like ['-created_at', 'name']")
    return [target.column(i[1:]).desc() if i.startswith("-") else target.column(i).asc() for i in items]
