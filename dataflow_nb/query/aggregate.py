"""Grouping and aggregates for ListNode: ``group_by``, ``aggregate`` and ``having``.

Each aggregate is cast so its result has the same type on both databases (PostgreSQL's
``sum(bigint)`` is ``numeric`` and DuckDB's is ``HUGEINT``; ``avg`` is ``numeric`` or
``DOUBLE``), and so the frame's dtypes are the same:

======================  ===================================  ==========================
aggregate               of                                   frame dtype
======================  ===================================  ==========================
``$count``              ``"*"`` (rows) or a field (non-NULL)  Int64
``$count_distinct``     a field (distinct non-NULL values)   Int64
``$sum``                int / float / Decimal                Int64 / Float64 / Decimal(38, 9)
``$avg``                int / float / Decimal                Float64
``$min`` ``$max``       any orderable field                  the field's own dtype
======================  ===================================  ==========================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from dataflow_nb.core.identifiers import check_identifier
from dataflow_nb.core.spec import Field, ModelSpec
from dataflow_nb.core.types import field_type_for
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.validate import check_known
from dataflow_nb.query.filters import BINARY_COLLATION, Clause, FilterTarget, compile_filter, is_text

AGGREGATES = ("$count", "$sum", "$avg", "$min", "$max", "$count_distinct")
_NUMBERS = ("int", "float", "Decimal")
_UNORDERED = ("UUID", "dict", "list", "bytes")  # no min/max in PostgreSQL, or none that agrees


@dataclass(frozen=True)
class Grouping:
    """A grouped query's pieces: what to select and group by, HAVING, and how to order."""

    columns: list[sa.ColumnElement[Any]]
    group_by: list[sa.ColumnElement[Any]]
    having: Clause | None
    order: FilterTarget
    fields: dict[str, Field]


def _out(name: str, kind: type) -> Field:
    ftype = field_type_for(kind)
    assert ftype is not None
    return Field(name, ftype, nullable=True)


def _typed(expression: sa.ColumnElement[Any], output: Field) -> sa.ColumnElement[Any]:
    """The aggregate cast to its output field's column type, so both databases return that type."""
    return sa.cast(expression, output.type.sa_type())


def _aggregate(model: ModelSpec, table: sa.Table, alias: str, spec: Any) -> tuple[sa.ColumnElement[Any], Field]:
    """One aggregate expression and the output field that types its frame column."""
    label = f"model {model.name}: aggregate {alias!r}"
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ValidationError(f"{label} takes one operator, like {{'$avg': 'dep_delay'}}, got {spec!r}")
    ((op, field),) = spec.items()
    check_known(label, [op], AGGREGATES, "aggregate")
    if op == "$count" and field == "*":
        output = _out(alias, int)
        return sa.func.count(type_=output.type.sa_type()), output
    if not isinstance(field, str) or field == "*":
        hint = " or '*'" if op == "$count" else " ('*' counts rows with $count only)"
        raise ValidationError(f"{label}: {op} takes a field name{hint}, got {field!r}")
    check_known(label, [field], list(model.fields))
    col, source = table.c[field], model.fields[field]
    kind = source.type.label
    if op in ("$count", "$count_distinct"):
        if op == "$count_distinct" and kind in ("dict", "list"):
            raise ValidationError(f"{label}: JSON field {field!r} has no distinct values to count; use $count")
        counted = sa.distinct(col) if op == "$count_distinct" else col
        output = _out(alias, int)
        return sa.func.count(counted, type_=output.type.sa_type()), output  # count is BIGINT on both
    if op in ("$sum", "$avg"):
        if kind not in _NUMBERS:
            raise ValidationError(f"{label}: {op} takes a number field (int, float, Decimal); {field!r} is {kind}")
        if op == "$avg":
            output = _out(alias, float)
            return _typed(sa.func.avg(col), output), output
        if kind == "int":
            output = _out(alias, int)
            return _typed(sa.func.sum(col), output), output
        if kind == "Decimal":
            return sa.cast(sa.func.sum(col), col.type), _out(alias, Decimal)
        return sa.func.sum(col), _out(alias, float)
    if kind in _UNORDERED:
        raise ValidationError(f"{label}: {op} has no order to use on {kind} field {field!r}")
    output = Field(alias, source.type, nullable=True)
    if kind == "bool":  # PostgreSQL has no min(boolean); bool_and/bool_or are the same thing
        function = sa.func.bool_and if op == "$min" else sa.func.bool_or
        return function(col, type_=source.type.sa_type()), output
    arg = sa.collate(col, BINARY_COLLATION) if is_text(col) else col
    return (sa.func.min(arg) if op == "$min" else sa.func.max(arg)), output


def _group_fields(model: ModelSpec, group_by: Any) -> list[str]:
    names = [group_by] if isinstance(group_by, str) else group_by
    if not isinstance(names, list | tuple) or not names or not all(isinstance(n, str) for n in names):
        raise ValidationError(f"model {model.name}: group_by takes field names like ['carrier'], got {group_by!r}")
    check_known(model, names, list(model.fields))
    if len(set(names)) < len(names):
        raise ValidationError(f"model {model.name}: group_by names a field twice: {list(names)}")
    for name in names:
        if model.fields[name].type.label in ("dict", "list"):
            raise ValidationError(f"model {model.name}: group_by cannot group on JSON field {name!r}")
    return list(names)


def build_grouping(model: ModelSpec, table: sa.Table, group_by: Any, aggregate: Any, having: Any) -> Grouping:
    """Check ``group_by``/``aggregate``/``having`` against the model and compile them."""
    groups = [] if group_by is None else _group_fields(model, group_by)
    if aggregate is not None and (not isinstance(aggregate, Mapping) or not aggregate):
        raise ValidationError(
            f"model {model.name}: aggregate takes {{name: {{'$op': field}}}}, like "
            f"{{'flights': {{'$count': '*'}}}}, got {aggregate!r}"
        )
    fields: dict[str, Field] = {g: model.fields[g] for g in groups}
    expressions: dict[str, sa.ColumnElement[Any]] = {g: table.c[g] for g in groups}
    labels: dict[str, sa.ColumnElement[Any]] = dict(expressions)
    for alias, spec in (aggregate or {}).items():
        check_identifier(alias, f"model {model.name}: aggregate name")
        if alias in groups:
            raise ValidationError(f"model {model.name}: aggregate name {alias!r} is also a group_by field; rename it")
        expression, fields[alias] = _aggregate(model, table, alias, spec)
        expressions[alias] = expression
        labels[alias] = expression.label(alias)
    valid = list(fields)

    def column(target: dict[str, sa.ColumnElement[Any]]) -> Any:
        def lookup(name: Any) -> sa.ColumnElement[Any]:
            check_known(f"model {model.name}", [name], valid, "group_by field or aggregate name")
            return target[name]

        return lookup

    def coerce(name: str, value: Any) -> Any:
        ftype = fields[name].type
        # A count or sum of ints compared with 2.5 is a fair question; widen ints to numbers.
        if ftype.label == "int" and isinstance(value, float | Decimal) and not isinstance(value, bool):
            return value
        try:
            return ftype.to_wire(value)
        except (TypeError, ValueError):
            raise ValidationError(
                f"model {model.name}: {name!r} is {ftype.label}; got {value!r} of type {type(value).__name__}"
            ) from None

    having_target = FilterTarget(f"model {model.name} (having)", column(expressions), coerce)
    condition = compile_filter(having_target, having)
    return Grouping(
        columns=list(labels.values()),
        group_by=[table.c[g] for g in groups],
        having=condition,
        order=FilterTarget(f"model {model.name} (order_by)", column(labels), coerce),
        fields=fields,
    )
