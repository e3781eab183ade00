"""Backends: one small protocol (``base.Backend``), implemented for DuckDB and PostgreSQL."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy.engine import Dialect

from dataflow_nb.backends.base import Backend, Capabilities, CompiledSQL, Connection, compile_statement
from dataflow_nb.exceptions import DataflowError, ValidationError

__all__ = [
    "DEFAULT_DIALECT",
    "Backend",
    "Capabilities",
    "CompiledSQL",
    "Connection",
    "DialectName",
    "compile_statement",
    "dialect_named",
    "open_backend",
]

DialectName = Literal["postgresql", "duckdb"]
DEFAULT_DIALECT: DialectName = "postgresql"


def dialect_named(name: str) -> Dialect:
    """The SQL dialect of a backend, without connecting (for SQL built ahead of a database)."""
    if name in ("postgresql", "postgres"):
        from dataflow_nb.backends.postgres import postgres_dialect

        return postgres_dialect()
    if name == "duckdb":
        from dataflow_nb.backends.duckdb import DuckDBDialect

        return DuckDBDialect()
    raise ValidationError(f"unknown dialect {name!r}: choose 'postgresql' or 'duckdb'")


def open_backend(
    url: str | None,
    *,
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
    files: bool = True,
    **pool: Any,
) -> Backend:
    """The backend for a URL: ``None``/``duckdb://`` in memory, ``duckdb:///file``, ``postgresql://``.

    ``connect_timeout`` bounds the wait for a server (an embedded DuckDB has none to wait for);
    ``statement_timeout`` bounds every statement on both. ``files=False`` closes DuckDB's file
    system and other databases to SQL (PostgreSQL reads no client files, and the server's only
    for roles granted ``pg_read_server_files``).
    """
    if url is None or url in ("duckdb://", "duckdb:///:memory:", ":memory:"):
        from dataflow_nb.backends.duckdb import DuckDBBackend

        return DuckDBBackend(statement_timeout=statement_timeout, files=files)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "duckdb":
        from dataflow_nb.backends.duckdb import DuckDBBackend

        return DuckDBBackend(url.split("://", 1)[1][1:] or None, statement_timeout=statement_timeout, files=files)
    if scheme in ("postgresql", "postgres", "postgresql+adbc"):
        from dataflow_nb.backends.postgres import PostgresBackend

        return PostgresBackend(url, connect_timeout=connect_timeout, statement_timeout=statement_timeout, **pool)
    shown = url.split("@")[-1] if "@" in url else url
    raise DataflowError(
        f"unknown database URL scheme {scheme or shown!r}: use duckdb:///path.duckdb, "
        "postgresql://user@host/db, or no URL for an in-memory DuckDB"
    )
