"""A query builder for tables without a model: fluent ``where`` calls, SQL out per dialect.

Identifiers are checked and quoted by the dialect; values always travel as bound parameters.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from dataflow_nb.backends import DEFAULT_DIALECT, DialectName, dialect_named
from dataflow_nb.backends.base import compile_statement
from dataflow_nb.core.identifiers import check_identifier
from dataflow_nb.core.types import FIELD_TYPES, field_type_of
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.query.filters import FilterTarget, compile_filter, order_clauses


def _bind(name: str, value: Any) -> Any:
    """A value to set, bound with the SQL type the registry gives its Python type (None stays NULL)."""
    if value is None:
        return value
    wired = _wire(name, value)
    found = field_type_of(value)
    assert found is not None  # _wire refused the rest
    return sa.literal(wired, found.sa_type())


def _wire(name: str, value: Any) -> Any:
    """A condition's value as the driver binds it, checked like a model field of its Python type.

    Its SQL type comes from the same registry (``filters.kind_sql_type``); JSON has no column
    to compare with here, so dicts and lists are refused.
    """
    found = field_type_of(value)
    if found is None or found.label in ("dict", "list"):
        bindable = [f.label for f in FIELD_TYPES if f.label not in ("dict", "list")]
        raise ValidationError(
            f"field {name!r}: cannot bind {value!r} of type {type(value).__name__}; use one of {sorted(bindable)}"
        )
    try:
        return found.to_wire(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"field {name!r}: value {value!r} {exc}") from None


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{name} takes a non-negative int, got {value!r}")
    return value


class QueryBuilder:
    """Build SELECT, COUNT, UPDATE and DELETE statements with MongoDB-style conditions.

    Examples:
        >>> builder = create_query_builder("postgresql")
        >>> builder.table("users").where("age", "$gt", 18).where("status", "$eq", "active")
        QueryBuilder('postgresql', table='users', conditions=2)
        >>> sql, params = builder.build_select(["name", "email"])
        >>> print(sql)
        SELECT users.name, users.email FROM users WHERE users.age > $1::BIGINT AND users.status = $2::TEXT
        >>> params
        [18, 'active']
    """

    def __init__(self, dialect: DialectName = DEFAULT_DIALECT):
        self.dialect_name = dialect
        self._dialect = dialect_named(dialect)
        self._table: sa.TableClause | None = None
        self._conditions: list[sa.ColumnElement[bool]] = []
        self._order: list[Any] = []
        self._limit: int | None = None
        self._offset: int | None = None
        self._fields: list[str] | None = None

    def table(self, name: str) -> QueryBuilder:
        """Set the table and start over with no conditions."""
        self._table = sa.table(check_identifier(name, "table"))
        self._conditions, self._order, self._limit, self._offset = [], [], None, None
        self._fields = None
        return self

    def select(self, *fields: str) -> QueryBuilder:
        """Choose the fields a select returns (all when none are chosen).

        ``build_select(fields)`` chooses them too; ``explain(builder)`` and
        ``SQLQueryNode`` with ``{"sql": builder}`` use the fields chosen last.
        """
        target = self._target()
        for name in fields:
            target.column(name)
        self._fields = list(fields) or None
        return self

    def _target(self) -> FilterTarget:
        if self._table is None:
            raise ValidationError("call .table(name) before adding conditions or building")
        table = self._table

        def column(name: Any) -> sa.ColumnElement[Any]:
            if not isinstance(name, str):
                raise ValidationError(f"table {table.name}: a field name is a string, got {name!r}")
            if name not in table.c:
                table.append_column(sa.column(check_identifier(name, f"table {table.name}: field")))
            return table.c[name]

        return FilterTarget(f"table {table.name}", column, _wire)

    def where(self, field: str | dict[str, Any], operator: str = "$eq", value: Any = None) -> QueryBuilder:
        """Add a condition: ``where("age", "$gt", 18)`` or a filter dict ``where({"age": {"$gt": 18}})``."""
        target = self._target()
        if isinstance(field, dict):
            clause = compile_filter(target, field)
        else:
            clause = compile_filter(target, {field: {operator: value}})
        if clause is not None:
            self._conditions.append(clause)
        return self

    def order_by(self, *fields: str) -> QueryBuilder:
        """``order_by("-created_at", "name")``: a leading ``-`` sorts descending."""
        self._order.extend(order_clauses(self._target(), list(fields)))
        return self

    def limit(self, count: int) -> QueryBuilder:
        """At most ``count`` rows from ``build_select``."""
        self._limit = _count("limit", count)
        return self

    def offset(self, count: int) -> QueryBuilder:
        """Skip the first ``count`` rows of ``build_select``."""
        self._offset = _count("offset", count)
        return self

    def _finish(self, statement: Any) -> tuple[str, list[Any]]:
        compiled = compile_statement(statement, self._dialect)
        sql = " ".join(compiled.sql.split())
        return sql, list(compiled.values)

    def build_select(self, fields: list[str] | None = None) -> tuple[str, list[Any]]:
        """``(sql, params)`` for SELECT of ``fields`` (the fields chosen before, or all columns)."""
        if fields:
            self.select(*fields)
        return self._finish(self.select_statement())

    def select_statement(self) -> sa.Select[Any]:
        """The SELECT as SQLAlchemy Core, for any dialect (how SQLQueryNode runs a builder)."""
        target = self._target()
        columns = [target.column(f) for f in self._fields] if self._fields else [sa.text("*")]
        assert self._table is not None
        statement = sa.select(*columns).select_from(self._table).where(*self._conditions).order_by(*self._order)
        if self._limit is not None:
            statement = statement.limit(self._limit)
        if self._offset is not None:
            statement = statement.offset(self._offset)
        return statement

    def build_count(self) -> tuple[str, list[Any]]:
        """``(sql, params)`` counting the rows that match."""
        self._target()
        assert self._table is not None
        return self._finish(sa.select(sa.func.count()).select_from(self._table).where(*self._conditions))

    def build_update(self, values: dict[str, Any]) -> tuple[str, list[Any]]:
        """``(sql, params)`` setting ``values`` on the rows that match."""
        if not values:
            raise ValidationError("build_update needs at least one field to set")
        target = self._target()
        assignments = {target.column(k).key: _bind(k, v) for k, v in values.items()}
        assert self._table is not None
        return self._finish(sa.update(self._table).where(*self._conditions).values(assignments))

    def build_delete(self) -> tuple[str, list[Any]]:
        """``(sql, params)`` deleting the rows that match (refused with no conditions)."""
        self._target()
        if not self._conditions:
            raise ValidationError("build_delete without conditions would delete every row; add .where(...)")
        assert self._table is not None
        return self._finish(sa.delete(self._table).where(*self._conditions))

    def __repr__(self) -> str:
        table = self._table.name if self._table is not None else None
        return f"QueryBuilder({self.dialect_name!r}, table={table!r}, conditions={len(self._conditions)})"


def create_query_builder(dialect: DialectName = DEFAULT_DIALECT) -> QueryBuilder:
    """A new QueryBuilder for ``"postgresql"`` or ``"duckdb"``; params are positional ``$n``."""
    return QueryBuilder(dialect)
