"""DuckDB's catalog for migrations: its index listing, its JSON type, and Alembic's operations.

Loaded with Alembic, on the first model, not when dataflow_nb is imported.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.ddl.base import RenameTable
from alembic.ddl.postgresql import PostgresqlColumnType, PostgresqlImpl, visit_column_type, visit_rename_table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles

from dataflow_nb.backends.duckdb import DuckDBDialect
from dataflow_nb.backends.reflect import STANDARD_TYPES, DBAPIModule, Reflection

# DuckDB lists CREATE INDEX indexes only (constraint indexes are internal), with the key
# expressions as text such as ['"text"', team]. Model fields are plain identifiers (checked by
# check_identifier), so splitting on commas and stripping quotes recovers them.
_INDEXES = (
    "SELECT index_name, is_unique, CAST(expressions AS VARCHAR) FROM duckdb_indexes() "
    "WHERE schema_name = current_schema() AND table_name = $1 ORDER BY index_name"
)


class DuckDBImpl(PostgresqlImpl):
    """Alembic's operations for DuckDB: its DDL follows PostgreSQL's (registered by name)."""

    __dialect__ = "duckdb"


# Alembic compiles its PostgreSQL-only constructs for the dialect named "postgresql"; DuckDB
# takes the same SQL (ALTER COLUMN ... TYPE ... USING, RENAME TO).
compiles(PostgresqlColumnType, "duckdb")(visit_column_type)
compiles(RenameTable, "duckdb")(visit_rename_table)


class DuckDBReflection(Reflection, DuckDBDialect):  # type: ignore[misc]  # Inspector-shaped, loosely typed
    """DuckDB's dialect, reflecting from information_schema and ``duckdb_indexes()``."""

    supports_statement_cache = True
    catalog_types = {
        **STANDARD_TYPES,
        "varchar": sa.Text(),  # TEXT is an alias of VARCHAR
        "float": sa.Float(),
        "double": sa.Double(),
        "time": sa.Time(),
        "timestamp": sa.DateTime(),
        "blob": sa.LargeBinary(),
        "json": JSONB(),  # what dataflow_nb's JSONB compiles to here
    }

    def index_rows(self, connection: sa.Connection, table_name: str) -> list[dict[str, Any]]:
        indexes = []
        for name, unique, expressions in self._rows(connection, _INDEXES, table_name):
            columns = [item.strip().strip("'").strip('"') for item in expressions.strip("[]").split(",")]
            indexes.append({"name": name, "unique": bool(unique), "column_names": columns})
        return indexes

    def server_version(self, connection: sa.Connection) -> tuple[int, ...]:
        # DuckDB follows PostgreSQL's SQL; SQLAlchemy's PostgreSQL code asks which version for
        # features such as IF NOT EXISTS. DuckDB has them all, as a recent PostgreSQL does.
        return (16,)


def reflection_dialect() -> DuckDBReflection:
    return DuckDBReflection(dbapi=DBAPIModule)
