"""Reflect a live table into SQLAlchemy on the run's own connection, for Alembic to compare.

The shared part: the DB-API adapter and the ``information_schema`` queries both databases
answer. What differs (index catalogs, type spellings, the server version, Alembic's operations)
is each backend's own: ``duckdb_catalog.py`` and ``postgres_catalog.py``.

There is no SQLAlchemy Engine in dataflow_nb: PostgreSQL is reached through ADBC and DuckDB
through its Python API. Rather than open a second connection with another driver, this module
puts a tiny PEP 249 adapter over a backend ``Connection`` and gives SQLAlchemy a dialect whose
reflection methods read ``information_schema`` (plus one catalog query per database for
indexes). SQLAlchemy's ``Inspector`` and Alembic's autogenerate then run unchanged, inside the
migration's transaction. Why not SQLAlchemy's own PostgreSQL reflection over ADBC: its catalog
queries bind untyped integers (``generate_subscripts(int2vector, $1)``), which ADBC sends as
int8 and PostgreSQL rejects; and DuckDB's ``pg_catalog`` emulation does not cover them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.default import DefaultDialect

from dataflow_nb.backends.base import Backend, Connection


class _Error(Exception):
    """The adapter's DB-API error class (backend errors pass through as DataflowErrors)."""


class _Cursor:
    """A DB-API cursor that runs SQL text on a backend connection and holds the Arrow rows."""

    arraysize = 1

    def __init__(self, connection: Connection):
        self._connection = connection
        self._rows: list[tuple[Any, ...]] = []
        self.description: list[tuple[Any, ...]] | None = None
        self.rowcount = -1

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        table = self._connection.execute_sql(sql, list(params or ()))
        if table is None:
            self._rows, self.description = [], None
            return
        names = table.column_names
        self.description = [(n, None, None, None, None, None, None) for n in names]
        columns = [table.column(n).to_pylist() for n in names]
        self._rows = list(zip(*columns, strict=True)) if columns else []
        self.rowcount = len(self._rows)

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def close(self) -> None:
        self._rows = []


class _DBAPIConnection:
    """The adapter's connection: commit and rollback belong to the migration, not SQLAlchemy."""

    def __init__(self, connection: Connection):
        self._connection = connection

    def cursor(self) -> _Cursor:
        return _Cursor(self._connection)

    def commit(self) -> None:
        """The migration commits the backend connection itself, once, at the end."""

    def rollback(self) -> None:
        """SQLAlchemy rolls back when its Connection closes; the migration decides instead."""

    def close(self) -> None:
        """The backend connection outlives the adapter."""


class DBAPIModule:
    """What SQLAlchemy asks of a DB-API module."""

    paramstyle = "numeric_dollar"
    Error = DatabaseError = OperationalError = ProgrammingError = IntegrityError = InterfaceError = _Error


_COLUMNS = (
    "SELECT column_name, data_type, is_nullable, column_default, numeric_precision, numeric_scale "
    "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 "
    "ORDER BY ordinal_position"
)
_KEYS = (
    "SELECT tc.constraint_name, tc.constraint_type, kcu.column_name "
    "FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu "
    "ON kcu.constraint_name = tc.constraint_name AND kcu.table_name = tc.table_name "
    "AND kcu.table_schema = tc.table_schema "
    "WHERE tc.table_schema = current_schema() AND tc.table_name = $1 "
    "AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE') ORDER BY tc.constraint_name, kcu.ordinal_position"
)
_TABLES = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
)


# The type names information_schema reports in the SQL standard's spelling, which both databases
# use; each backend's catalog module adds its own spellings (``Reflection.catalog_types``).
STANDARD_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "bigint": sa.BigInteger(),
    "integer": sa.Integer(),
    "smallint": sa.SmallInteger(),
    "real": sa.Float(),
    "double precision": sa.Double(),
    "boolean": sa.Boolean(),
    "character varying": sa.String(),
    "text": sa.Text(),
    "date": sa.Date(),
    "time without time zone": sa.Time(),
    "timestamp without time zone": sa.DateTime(),
    "timestamp with time zone": sa.DateTime(timezone=True),
    "uuid": sa.Uuid(),
}


def _sa_type(
    data_type: str, precision: Any, scale: Any, names: dict[str, sa.types.TypeEngine[Any]]
) -> sa.types.TypeEngine[Any]:
    """information_schema's type name as a SQLAlchemy type, by the backend's ``names``."""
    name = data_type.lower()
    if name.startswith(("numeric", "decimal")):
        match = re.search(r"\((\d+),\s*(\d+)\)", name)
        if match:
            precision, scale = int(match.group(1)), int(match.group(2))
        return sa.Numeric(precision, scale)
    return names.get(name, sa.types.NullType())


class Reflection:
    """Reflection methods for SQLAlchemy's Inspector, read from information_schema.

    A backend mixes this into its dialect and adds what its catalog alone answers.
    """

    catalog_types: dict[str, sa.types.TypeEngine[Any]] = STANDARD_TYPES  # the backend's own spellings added

    def index_rows(self, connection: sa.Connection, table_name: str) -> list[dict[str, Any]]:
        """Indexes that are not constraints: name, unique, column_names (in key order)."""
        raise NotImplementedError

    def server_version(self, connection: sa.Connection) -> tuple[int, ...]:
        """The version SQLAlchemy's and Alembic's PostgreSQL code check features against."""
        raise NotImplementedError

    # The per-table defaults loop over get_columns() and friends; the PostgreSQL ones would
    # run pg_catalog queries this adapter cannot serve.
    get_multi_columns = DefaultDialect.get_multi_columns
    get_multi_pk_constraint = DefaultDialect.get_multi_pk_constraint
    get_multi_foreign_keys = DefaultDialect.get_multi_foreign_keys
    get_multi_indexes = DefaultDialect.get_multi_indexes
    get_multi_unique_constraints = DefaultDialect.get_multi_unique_constraints
    get_multi_check_constraints = DefaultDialect.get_multi_check_constraints
    get_multi_table_comment = DefaultDialect.get_multi_table_comment
    get_multi_table_options = DefaultDialect.get_multi_table_options

    def _rows(self, connection: sa.Connection, sql: str, *params: Any) -> list[Any]:
        return list(connection.exec_driver_sql(sql, tuple(params)).fetchall())

    def get_schema_names(self, connection: sa.Connection, **kw: Any) -> list[str]:
        return [str(self._rows(connection, "SELECT current_schema()")[0][0])]

    def get_table_names(self, connection: sa.Connection, schema: str | None = None, **kw: Any) -> list[str]:
        return [r[0] for r in self._rows(connection, _TABLES)]

    def has_table(self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any) -> bool:
        return table_name in self.get_table_names(connection)

    def get_view_names(self, connection: sa.Connection, schema: str | None = None, **kw: Any) -> list[str]:
        return []

    def get_columns(
        self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "type": _sa_type(data_type, precision, scale, self.catalog_types),
                "nullable": nullable == "YES",
                "default": default,
                "autoincrement": False,
            }
            for name, data_type, nullable, default, precision, scale in self._rows(connection, _COLUMNS, table_name)
        ]

    def _keys(self, connection: sa.Connection, table_name: str, kind: str) -> dict[str, list[str]]:
        keys: dict[str, list[str]] = {}
        for name, constraint_type, column in self._rows(connection, _KEYS, table_name):
            if constraint_type == kind:
                keys.setdefault(name, []).append(column)
        return keys

    def get_pk_constraint(
        self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        keys = self._keys(connection, table_name, "PRIMARY KEY")
        name, columns = next(iter(keys.items()), (None, []))
        return {"name": name, "constrained_columns": columns}

    def get_unique_constraints(
        self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[dict[str, Any]]:
        return [{"name": n, "column_names": c} for n, c in self._keys(connection, table_name, "UNIQUE").items()]

    def get_indexes(
        self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[dict[str, Any]]:
        return self.index_rows(connection, table_name)

    def get_foreign_keys(
        self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[dict[str, Any]]:
        return []  # dataflow_nb models declare no foreign keys

    def get_check_constraints(
        self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[dict[str, Any]]:
        return []  # dataflow_nb models declare no check constraints

    def get_table_comment(
        self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        return {"text": None}

    def get_table_options(
        self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        return {}


@contextmanager
def sqlalchemy_connection(connection: Connection, backend: Backend) -> Iterator[sa.Connection]:
    """A SQLAlchemy Connection over a backend connection, for Inspector and Alembic.

    Statements run on ``connection`` inside its transaction; closing the SQLAlchemy side
    neither commits nor rolls back.
    """
    reflecting = backend.reflection_dialect()
    adapter = _DBAPIConnection(connection)
    pool = sa.pool.StaticPool(lambda: adapter, reset_on_return=None)  # type: ignore[arg-type]
    engine = sa.engine.Engine(pool, reflecting, sa.engine.make_url(f"{reflecting.name}://"))
    with engine.connect() as sa_connection:
        reflecting.default_schema_name = sa_connection.exec_driver_sql("SELECT current_schema()").scalar()
        reflecting.server_version_info = reflecting.server_version(sa_connection)
        yield sa_connection
    engine.dispose()
