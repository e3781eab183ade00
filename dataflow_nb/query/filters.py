"""MongoDB-style filters compiled to SQLAlchemy Core: every value bound, every field checked.

The one filter compiler: List, Count, the bulk nodes and the query builder all go through
``plan_filter``, so a filter means the same thing everywhere and on both backends.

A filter is compiled in two steps. ``plan_filter`` checks every field, operator and value
and returns a ``FilterPlan``: the filter's *shape* (fields and operators, each value replaced
by its position) and the checked values. ``render`` turns a shape into SQLAlchemy with the
binds named ``f0, f1, ...``. Nodes cache the compiled SQL per shape, so a filter that only
changes its values costs a dict walk, not a SQLAlchemy compile.

NULL semantics (identical on DuckDB and PostgreSQL, and documented in docs/query.md):

- ``{"f": None}`` and ``{"f": {"$exists": False}}`` match NULL; ``$exists: True`` matches non-NULL.
- ``$ne`` and ``$nin`` mean "is not that value", so they match rows where ``f`` is NULL
  (``IS DISTINCT FROM``); a None inside ``$in``/``$nin`` stands for NULL.
- Every other condition is false on NULL, as in SQL.
- ``$not`` is the exact complement of its filter: ``NOT coalesce(inner, false)``, so the rows
  a filter matches and the rows its ``$not`` matches always add up to the whole table.

Strings compare and sort by code point (``COLLATE "C"``) on both databases, so ``$gt`` and
``order_by`` on text do not depend on a PostgreSQL server's locale.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from dataflow_nb.backends.sql import InArray, RegexMatch
from dataflow_nb.core.masking import MASK
from dataflow_nb.core.spec import ModelSpec
from dataflow_nb.core.types import field_type_named, field_type_of
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.notebook_values import as_list, preview, to_python
from dataflow_nb.model.validate import check_known, to_wire

Clause = sa.ColumnElement[bool]
Shape = tuple[Any, ...]
LOGICAL = ("$and", "$or", "$not")
MAX_DEPTH = 50  # deeper filters are a ValidationError, never a RecursionError in SQLAlchemy's compiler
# Conditions in one filter: compiling and planning grow faster than linearly with them (a 10,000-branch
# $or took 7.7 s on DuckDB, most of it before the database's statement_timeout starts); 1,000 take 0.3 s.
MAX_CONDITIONS = 1000
BINARY_COLLATION = "C"  # code-point order; DuckDB reads "C" as its binary collation too
PATTERN = "pattern"  # the kind of a $like/$ilike/$regex value: text, whatever the column holds


def bind_kind(value: Any) -> str:
    """How a filter shape records a value's type: the registry's label (``"int"``, ``"UUID"``...)."""
    found = field_type_of(value)
    return found.label if found is not None else type(value).__name__


def kind_sql_type(kind: str) -> sa.types.TypeEngine[Any]:
    """The SQL type of a value bound against a column of unknown type (the query builder's tables)."""
    found = field_type_named("str" if kind == PATTERN else kind)
    return sa.types.NullType() if found is None else found.sa_type()


@dataclass(frozen=True)
class FilterTarget:
    """What a filter is compiled against: its columns and how values are checked."""

    label: str
    column: Callable[[Any], sa.ColumnElement[Any]]
    coerce: Callable[[str, Any], Any]
    # How a message shows a field's value: a short preview, "***" for a sensitive field.
    show: Callable[[str, Any], str] = lambda name, value: preview(value)

    def value(self, name: str, value: Any, op: str) -> Any:
        """A comparison value checked against its field; None is refused (use ``{"f": None}``)."""
        if value is None:
            raise ValidationError(
                f"{self.label}: {op} on field {name!r} cannot compare with None; "
                f"match NULL with {{{name!r}: None}} or {{{name!r}: {{'$exists': False}}}}"
            )
        try:
            return self.coerce(name, value)
        except ValidationError as exc:
            raise ValidationError(f"{exc} (in filter operator {op})") from None


def model_target(model: ModelSpec, table: sa.Table) -> FilterTarget:
    """Filters on a model: fields from the model, values checked against their types."""
    label = f"model {model.name}"

    def column(name: Any) -> sa.ColumnElement[Any]:
        if name not in model.fields:
            check_known(label, [name], list(model.fields))
        column: sa.ColumnElement[Any] = table.c[name]
        return column

    def show(name: str, value: Any) -> str:
        field = model.fields.get(name)
        return MASK if field is not None and field.sensitive else preview(value)

    return FilterTarget(label, column, lambda name, value: to_wire(model, name, value), show)


def is_text(col: sa.ColumnElement[Any]) -> bool:
    return isinstance(col.type, sa.String)


def binary_order(col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """Text in code-point order on both databases; other types (and output labels) unchanged."""
    # A label names an output column; its aggregate already carries the collation.
    return sa.collate(col, BINARY_COLLATION) if is_text(col) and not isinstance(col, sa.Label) else col


def negate(clause: Clause) -> Clause:
    """The complement of a clause, NULL counted as false (two-valued, unlike SQL's NOT)."""
    return sa.not_(sa.func.coalesce(clause, sa.false()))


# --------------------------------------------------------------------------- planning


@dataclass
class FilterPlan:
    """A checked filter: its shape (hashable, values replaced by positions) and its values."""

    shape: Shape | None
    values: list[Any] = field(default_factory=list)

    def binds(self, prefix: str = "f") -> dict[str, Any]:
        """The values by bind name, as ``render(..., prefix=prefix)`` names them."""
        return {f"{prefix}{i}": v for i, v in enumerate(self.values)}


class _Planner:
    def __init__(self, target: FilterTarget):
        self.target = target
        self.values: list[Any] = []
        self.depth = 0
        self.conditions = 0

    def count(self, where: str, more: int) -> None:
        """Refuse a filter of more than MAX_CONDITIONS conditions, before compiling any of them."""
        self.conditions += more
        if self.conditions > MAX_CONDITIONS:
            raise ValidationError(
                f"{self.target.label}: {where} brings the filter to {self.conditions} conditions, over the limit "
                f"of {MAX_CONDITIONS}; to match many values of one field use {{'field': {{'$in': [...]}}}} "
                "(one condition, however long its list)"
            )

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValidationError(f"{self.target.label}: the filter nests deeper than {MAX_DEPTH} levels")

    def bind(self, name: str, raw: Any, op: str) -> tuple[int, str]:
        self.values.append(self.target.value(name, raw, op))
        return len(self.values) - 1, bind_kind(raw)

    def pattern(self, name: str, raw: Any, op: str) -> tuple[int, str]:
        if not isinstance(raw, str):
            raise ValidationError(
                f"{self.target.label}: {op} on field {name!r} takes a pattern string, got {self.target.show(name, raw)}"
            )
        if op != "$regex" and (len(raw) - len(raw.rstrip("\\"))) % 2:
            raise ValidationError(
                f"{self.target.label}: {op} pattern {self.target.show(name, raw)} on field {name!r} ends with "
                "the escape character \\; write \\\\ for a literal backslash"
            )
        self.values.append(raw)
        return len(self.values) - 1, PATTERN

    def scalar(self, name: str, raw: Any) -> Any:
        """A numpy or pandas scalar as its Python value (``NaT`` as None), refused if it cannot be."""
        try:
            return to_python(raw)
        except ValueError as exc:
            shown = self.target.show(name, raw)
            raise ValidationError(f"{self.target.label}: field {name!r}: value {shown} {exc}") from None

    def array(self, name: str, raw: Any, op: str) -> tuple[tuple[int, str] | None, bool]:
        """An ``$in``/``$nin`` list as ONE array bind (None when empty), and whether it listed None.

        One bind, whatever the length: PostgreSQL takes at most 65,535 parameters a statement.
        A polars or pandas Series or a numpy array counts as the list of its values.
        """
        raw = as_list(raw)
        if not isinstance(raw, list | tuple | set | frozenset):
            shown = self.target.show(name, raw)
            raise ValidationError(f"{self.target.label}: {op} on field {name!r} takes a list, got {shown}")
        items = [self.scalar(name, v) for v in raw]
        values = [self.target.value(name, v, op) for v in items if v is not None]
        if not values:
            return None, None in items
        kinds = {bind_kind(v) for v in items if v is not None}
        kind = kinds.pop() if len(kinds) == 1 else "float" if kinds == {"int", "float"} else "mixed"
        self.values.append(values)
        return (len(self.values) - 1, kind), None in items


def _check_type(col: sa.ColumnElement[Any], t: FilterTarget, name: str, op: str) -> None:
    if isinstance(col.type, sa.JSON) and op != "$exists":
        raise ValidationError(
            f"{t.label}: field {name!r} holds JSON; filter it with {{{name!r}: None}} or $exists, "
            "and query inside the JSON with SQLQueryNode"
        )
    if op in ("$like", "$ilike", "$regex") and not isinstance(col.type, sa.String | sa.types.NullType):
        raise ValidationError(f"{t.label}: {op} works on text fields; field {name!r} is not text")


def _between(p: _Planner, name: str, value: Any) -> Shape:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValidationError(
            f"{p.target.label}: $between on field {name!r} takes [low, high], got {p.target.show(name, value)}"
        )
    return ("between", name, p.bind(name, value[0], "$between"), p.bind(name, value[1], "$between"))


def _exists(p: _Planner, name: str, value: Any) -> Shape:
    if not isinstance(value, bool):
        raise ValidationError(
            f"{p.target.label}: $exists on field {name!r} takes True or False, got {p.target.show(name, value)}"
        )
    return ("null", name, not value)


Operator = Callable[[_Planner, str, Any], Shape]

OPERATORS: dict[str, Operator] = {
    "$eq": lambda p, n, v: ("null", n, True) if v is None else ("eq", n, p.bind(n, v, "$eq")),
    "$ne": lambda p, n, v: ("null", n, False) if v is None else ("ne", n, p.bind(n, v, "$ne")),
    "$gt": lambda p, n, v: ("cmp", n, ">", p.bind(n, v, "$gt")),
    "$gte": lambda p, n, v: ("cmp", n, ">=", p.bind(n, v, "$gte")),
    "$lt": lambda p, n, v: ("cmp", n, "<", p.bind(n, v, "$lt")),
    "$lte": lambda p, n, v: ("cmp", n, "<=", p.bind(n, v, "$lte")),
    "$in": lambda p, n, v: ("in", n, *p.array(n, v, "$in")),
    "$nin": lambda p, n, v: ("nin", n, *p.array(n, v, "$nin")),
    "$like": lambda p, n, v: ("like", n, p.pattern(n, v, "$like"), False),
    "$ilike": lambda p, n, v: ("like", n, p.pattern(n, v, "$ilike"), True),
    "$regex": lambda p, n, v: ("regex", n, p.pattern(n, v, "$regex")),
    "$exists": _exists,
    "$between": _between,
    "$not": lambda p, n, v: _field_not(p, n, v),
}


def _field_not(p: _Planner, name: str, condition: Any) -> Shape:
    p.nest()
    shape = ("not", _field(p, name, condition))
    p.depth -= 1
    return shape


def _field(p: _Planner, name: str, condition: Any) -> Shape:
    col = p.target.column(name)
    mapping = isinstance(condition, Mapping)
    p.count(f"field {name!r}", len(condition) if mapping else 1)
    if not mapping:
        condition = p.scalar(name, condition)  # pd.NaT means None: match NULL
        _check_type(col, p.target, name, "$eq" if condition is not None else "$exists")
        return OPERATORS["$eq"](p, name, condition)
    if not condition:
        raise ValidationError(f"{p.target.label}: empty condition for field {name!r}; give {{'$op': value}}")
    if isinstance(col.type, sa.JSON) and set(condition) - {"$exists"}:
        _check_type(col, p.target, name, "$eq")
    if any(op not in OPERATORS for op in condition):
        check_known(f"{p.target.label}, field {name!r}", list(condition), list(OPERATORS), "operator")
    parts = []
    for op, value in condition.items():
        _check_type(col, p.target, name, op)
        parts.append(OPERATORS[op](p, name, p.scalar(name, value)))
    return ("and", tuple(parts)) if len(parts) > 1 else parts[0]


def _plan(p: _Planner, spec: Any) -> Shape | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ValidationError(
            f"{p.target.label}: a filter is a dict like {{'age': {{'$gte': 18}}}}, got a {type(spec).__name__}"
        )
    p.nest()
    shape = _plan_dict(p, spec)
    p.depth -= 1
    return shape


def _plan_dict(p: _Planner, spec: Mapping[Any, Any]) -> Shape | None:
    parts: list[Shape] = []
    for key, condition in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(condition, list | tuple) or not condition:
                raise ValidationError(
                    f"{p.target.label}: {key} takes a non-empty list of filters, got a {type(condition).__name__}"
                )
            if len(condition) > MAX_CONDITIONS:  # refused before its branches are read
                p.count(f"{key} with {len(condition)} branches", len(condition))
            subs = [_plan(p, sub) for sub in condition]
            present = tuple(s for s in subs if s is not None)
            if key == "$and":
                if present:
                    parts.append(("and", present) if len(present) > 1 else present[0])
            elif len(present) < len(subs):  # an empty filter matches every row
                parts.append(("const", True))
            else:
                parts.append(("or", present) if len(present) > 1 else present[0])
        elif key == "$not":
            inner = _plan(p, condition)
            parts.append(("const", False) if inner is None else ("not", inner))
        elif isinstance(key, str) and key.startswith("$"):
            raise ValidationError(
                f"{p.target.label}: unknown top-level operator {key!r}; valid ones are {list(LOGICAL)} "
                "(field operators go inside a field: {'age': {'$gt': 18}})"
            )
        else:
            parts.append(_field(p, key, condition))
    if not parts:
        return None
    return ("and", tuple(parts)) if len(parts) > 1 else parts[0]


def plan_filter(target: FilterTarget, spec: Mapping[str, Any] | None) -> FilterPlan:
    """Check a filter against ``target`` and split it into shape and values (nothing compiled)."""
    planner = _Planner(target)
    shape = _plan(planner, spec)
    return FilterPlan(shape, planner.values)


# --------------------------------------------------------------------------- rendering


def render(target: FilterTarget, plan: FilterPlan, *, prefix: str = "f", unique: bool = False) -> Clause | None:
    """A plan as SQLAlchemy; binds are ``{prefix}{position}`` (made unique when asked)."""

    def bind(col: sa.ColumnElement[Any], ref: tuple[int, str]) -> sa.BindParameter[Any]:
        position, kind = ref
        known = not isinstance(col.type, sa.types.NullType) and kind != PATTERN
        sa_type = col.type if known else kind_sql_type(kind)
        return sa.bindparam(f"{prefix}{position}", plan.values[position], type_=sa_type, unique=unique)

    def bind_array(col: sa.ColumnElement[Any], ref: tuple[int, str]) -> sa.BindParameter[Any]:
        position, kind = ref
        known = not isinstance(col.type, sa.types.NullType)
        if not known and kind == "mixed":  # a table without a model: the values say the array's type
            raise ValidationError(f"{target.label}: the values of $in/$nin on one field must share one type")
        item = col.type if known else kind_sql_type(kind)
        return sa.bindparam(f"{prefix}{position}", plan.values[position], type_=sa.ARRAY(item), unique=unique)

    def walk(shape: Shape) -> Clause:
        kind = shape[0]
        if kind in ("and", "or"):
            parts = [walk(s) for s in shape[1]]
            return sa.and_(*parts) if kind == "and" else sa.or_(*parts)
        if kind == "not":
            return negate(walk(shape[1]))
        if kind == "const":
            return sa.true() if shape[1] else sa.false()
        col = target.column(shape[1])
        if kind == "null":
            return col.is_(None) if shape[2] else col.is_not(None)
        if kind == "eq":
            return col == bind(col, shape[2])
        if kind == "ne":
            return col.is_distinct_from(bind(col, shape[2]))
        if kind == "cmp":
            return binary_order(col).operate(_COMPARE[shape[2]], bind(col, shape[3]))
        if kind == "between":
            left, low, high = binary_order(col), bind(col, shape[2]), bind(col, shape[3])
            # PostgreSQL cannot parse BETWEEN with a COLLATE on each bound: spell it out.
            return sa.and_(left >= low, left <= high) if is_text(col) else col.between(low, high)
        if kind in ("in", "nin"):
            ref, listed_none = shape[2], shape[3]
            values = None if ref is None else bind_array(col, ref)
            if kind == "in":
                clause = InArray(col, values) if values is not None else sa.false()
                return sa.or_(clause, col.is_(None)) if listed_none else clause
            absent = sa.not_(InArray(col, values)) if values is not None else None
            if listed_none:  # None listed: NULL rows are excluded too
                return sa.and_(absent, col.is_not(None)) if absent is not None else col.is_not(None)
            return sa.or_(absent, col.is_(None)) if absent is not None else sa.true()
        if kind == "like":
            # ESCAPE is explicit: PostgreSQL escapes with \ by default, DuckDB only when told.
            pattern = bind(col, shape[2])
            return col.ilike(pattern, escape="\\") if shape[3] else col.like(pattern, escape="\\")
        if kind == "regex":
            return RegexMatch(col, bind(col, shape[2]))
        raise AssertionError(f"unknown filter shape {shape!r}")

    return None if plan.shape is None else walk(plan.shape)


_COMPARE = {">": sa.sql.operators.gt, ">=": sa.sql.operators.ge, "<": sa.sql.operators.lt, "<=": sa.sql.operators.le}


def compile_filter(target: FilterTarget, spec: Mapping[str, Any] | None) -> Clause | None:
    """A filter dict as one SQLAlchemy boolean expression (None for an empty filter).

    Examples:
        >>> from dataflow_nb.query.builder import create_query_builder
        >>> sql, params = create_query_builder("duckdb").table("t").where({"$not": {"n": {"$gt": 1}}}).build_count()
        >>> sql
        'SELECT count(*) AS count_1 FROM t WHERE NOT coalesce(t.n > $1, false)'
    """
    return render(target, plan_filter(target, spec), unique=True)


def freeze(value: Any) -> Hashable:
    """A hashable stand-in for parameter values (dicts and lists inside), for cache keys."""
    if isinstance(value, Mapping):
        return tuple((k, freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, str | int | float | bool | bytes | Decimal | dt.date | dt.time | uuid.UUID | type(None)):
        return (type(value).__name__, value)
    raise TypeError(f"unhashable parameter {value!r}")


# --------------------------------------------------------------------------- ordering


def order_clauses(target: FilterTarget, order_by: Any) -> list[sa.ColumnElement[Any]]:
    """``["-created_at", "name"]`` (or one string) as ORDER BY clauses.

    NULL sorts after every value (ascending NULLS LAST, descending NULLS FIRST) on both
    databases, PostgreSQL's default; DuckDB's default differs, so it is always spelled out.
    """
    if order_by is None:
        return []
    items = [order_by] if isinstance(order_by, str) else order_by
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) and i.strip("-") for i in items):
        raise ValidationError(
            f"{target.label}: order_by takes field names like ['-created_at', 'name'], got {order_by!r}"
        )
    clauses = []
    for item in items:
        descending = item.startswith("-")
        clauses.append(ordered(target.column(item[1:] if descending else item), descending=descending))
    return clauses


def ordered(col: sa.ColumnElement[Any], *, descending: bool = False) -> sa.ColumnElement[Any]:
    """One ORDER BY item with the NULL placement and collation both databases share."""
    key = binary_order(col)
    if getattr(col, "nullable", True) is False:
        return key.desc() if descending else key.asc()
    return key.desc().nulls_first() if descending else key.asc().nulls_last()
