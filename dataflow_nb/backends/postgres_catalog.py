"""PostgreSQL's catalog for migrations: its index listing and the server's own version.

Loaded with Alembic, on the first model, not when dataflow_nb is imported.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect

from dataflow_nb.backends.reflect import STANDARD_TYPES, DBAPIModule, Reflection
from dataflow_nb.backends.sql import JSONB

# Indexes that are not constraints (constraints come from information_schema), one row per
# column in key order.
_INDEXES = (
    "SELECT CAST(i.relname AS TEXT), ix.indisunique, CAST(a.attname AS TEXT) "
    "FROM pg_catalog.pg_index ix JOIN pg_catalog.pg_class i ON i.oid = ix.indexrelid "
    "JOIN pg_catalog.pg_class t ON t.oid = ix.indrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace "
    "CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
    "WHERE n.nspname = current_schema() AND t.relname = $1 AND NOT EXISTS "
    "(SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = ix.indexrelid) "
    "ORDER BY i.relname, k.ord"
)


class PostgresReflection(Reflection, PGDialect):  # type: ignore[misc]  # Inspector-shaped, loosely typed
    """PostgreSQL's dialect, reflecting from information_schema and ``pg_catalog``."""

    supports_statement_cache = True
    catalog_types = {**STANDARD_TYPES, "bytea": sa.LargeBinary(), "json": sa.JSON(), "jsonb": JSONB()}

    def index_rows(self, connection: sa.Connection, table_name: str) -> list[dict[str, Any]]:
        indexes: dict[str, dict[str, Any]] = {}
        for name, unique, column in self._rows(connection, _INDEXES, table_name):
            entry = indexes.setdefault(name, {"name": name, "unique": bool(unique), "column_names": []})
            entry["column_names"].append(column)
        return list(indexes.values())

    def server_version(self, connection: sa.Connection) -> tuple[int, ...]:
        number = int(self._rows(connection, "SELECT current_setting('server_version_num')")[0][0])  # 150013
        return (number // 10000, number % 10000)


def reflection_dialect() -> PostgresReflection:
    return PostgresReflection(dbapi=DBAPIModule, paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
