"""MongoDB-style filters compiled to SQLAlchemy Core: every value bound, every field checked.

NULL semantics (the same on both backends): ``{"f": None}`` is ``IS NULL``; ``$ne`` uses
``IS DISTINCT FROM`` so rows where the field is NULL match ``{"f": {"$ne": 5}}``; ``$nin``
likewise keeps NULL rows; every other comparison is false for NULL, as in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.spec import ModelSpec
from dataflow_nb.model.validate import check_known, to_wire

ColumnElement = sa.ColumnElement[bool]


def _bound(model: ModelSpec, name: str, value: Any, op: str) -> Any:
    """A comparison value checked against its field (None allowed: comparisons handle it)."""
    if value is None:
        return None
    try:
        return to_wire(model, name, value)
    except ValidationError as exc:
        raise ValidationError(f"{exc} (in filter operator {op})") from None


def _list(model: ModelSpec, name: str, value: Any, op: str) -> list[Any]:
    if not isinstance(value, list | tuple | set | frozenset):
        raise ValidationError(f"model {model.name}: {op} on field {name!r} takes a list, got {value!r}")
    return [_bound(model, name, v, op) for v in value]


def _between(col: sa.ColumnElement[Any], model: ModelSpec, name: str, value: Any) -> ColumnElement:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValidationError(f"model {model.name}: $between on field {name!r} takes [low, high], got {value!r}")
    low, high = (_bound(model, name, v, "$between") for v in value)
    return col.between(low, high)


def _nin(col: sa.ColumnElement[Any], values: list[Any]) -> ColumnElement:
    present = [v for v in values if v is not None]
    if None in values:
        return sa.and_(col.not_in(present), col.is_not(None)) if present else col.is_not(None)
    return sa.or_(col.not_in(present), col.is_(None)) if present else sa.true()


Operator = Callable[[sa.ColumnElement[Any], ModelSpec, str, Any], ColumnElement]

OPERATORS: dict[str, Operator] = {
    "$eq": lambda c, m, n, v: c.is_(None) if v is None else c == _bound(m, n, v, "$eq"),
    "$ne": lambda c, m, n, v: c.is_distinct_from(_bound(m, n, v, "$ne")),
    "$gt": lambda c, m, n, v: c > _bound(m, n, v, "$gt"),
    "$gte": lambda c, m, n, v: c >= _bound(m, n, v, "$gte"),
    "$lt": lambda c, m, n, v: c < _bound(m, n, v, "$lt"),
    "$lte": lambda c, m, n, v: c <= _bound(m, n, v, "$lte"),
    "$in": lambda c, m, n, v: _in(c, _list(m, n, v, "$in")),
    "$nin": lambda c, m, n, v: _nin(c, _list(m, n, v, "$nin")),
    "$like": lambda c, m, n, v: c.like(_text(m, n, v, "$like")),
    "$ilike": lambda c, m, n, v: c.ilike(_text(m, n, v, "$ilike")),
    "$exists": lambda c, m, n, v: c.is_not(None) if _flag(m, n, v) else c.is_(None),
    "$between": _between,
}


def _in(col: sa.ColumnElement[Any], values: list[Any]) -> ColumnElement:
    present = [v for v in values if v is not None]
    clause = col.in_(present)
    return sa.or_(clause, col.is_(None)) if None in values else clause


def _text(model: ModelSpec, name: str, value: Any, op: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"model {model.name}: {op} on field {name!r} takes a pattern string, got {value!r}")
    return value


def _flag(model: ModelSpec, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"model {model.name}: $exists on field {name!r} takes True or False, got {value!r}")
    return value


def _field_clause(model: ModelSpec, table: sa.Table, name: str, condition: Any) -> ColumnElement:
    col = table.c[name]
    if not isinstance(condition, Mapping):
        return OPERATORS["$eq"](col, model, name, condition)
    if not condition:
        raise ValidationError(f"model {model.name}: empty condition for field {name!r}")
    check_known(model, [k for k in condition if k not in OPERATORS], list(OPERATORS), "operator")
    return sa.and_(*(OPERATORS[op](col, model, name, value) for op, value in condition.items()))


def compile_filter(model: ModelSpec, table: sa.Table, spec: Mapping[str, Any] | None) -> ColumnElement | None:
    """A filter dict as one SQLAlchemy boolean expression (None for an empty filter)."""
    if not spec:
        return None
    if not isinstance(spec, Mapping):
        raise ValidationError(f"model {model.name}: a filter is a dict, got {spec!r}")
    clauses: list[ColumnElement] = []
    for key, condition in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(condition, list | tuple) or not condition:
                raise ValidationError(f"model {model.name}: {key} takes a non-empty list of filters")
            parts = [compile_filter(model, table, sub) for sub in condition]
            joined = [p for p in parts if p is not None]
            clauses.append(sa.and_(*joined) if key == "$and" else sa.or_(*joined))
        elif key == "$not":
            inner = compile_filter(model, table, condition)
            if inner is not None:
                clauses.append(sa.not_(inner))
        else:
            check_known(model, [key], list(model.fields))
            clauses.append(_field_clause(model, table, key, condition))
    return sa.and_(*clauses) if len(clauses) > 1 else clauses[0]


def order_clauses(model: ModelSpec, table: sa.Table, order_by: Any) -> list[sa.ColumnElement[Any]]:
    """``["-created_at", "name"]`` (or a single string) as ORDER BY clauses."""
    if order_by is None:
        return []
    items = [order_by] if isinstance(order_by, str) else order_by
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValidationError(f"model {model.name}: order_by takes field names like ['-created_at', 'name']")
    names = [i.removeprefix("-") for i in items]
    check_known(model, names, list(model.fields))
    return [table.c[n].desc() if i.startswith("-") else table.c[n].asc() for i, n in zip(items, names, strict=True)]
