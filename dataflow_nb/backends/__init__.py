"""Backends: one small protocol (``base.Backend``), implemented for DuckDB and PostgreSQL."""

from __future__ import annotations

from typing import Any

from dataflow_nb.backends.base import Backend, Capabilities, CompiledSQL, Connection, compile_statement
from dataflow_nb.exceptions import DataflowError

__all__ = ["Backend", "Capabilities", "CompiledSQL", "Connection", "compile_statement", "open_backend"]


def open_backend(url: str | None, **pool: Any) -> Backend:
    """The backend for a URL: ``None``/``duckdb://`` in memory, ``duckdb:///file``, ``postgresql://``."""
    if url is None or url in ("duckdb://", "duckdb:///:memory:", ":memory:"):
        from dataflow_nb.backends.duckdb import DuckDBBackend

        return DuckDBBackend()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "duckdb":
        from dataflow_nb.backends.duckdb import DuckDBBackend

        return DuckDBBackend(url.split("://", 1)[1][1:] or None)
    if scheme in ("postgresql", "postgres", "postgresql+adbc"):
        from dataflow_nb.backends.postgres import PostgresBackend

        return PostgresBackend(url, **pool)
    shown = url.split("@")[-1] if "@" in url else url
    raise DataflowError(
        f"unknown database URL scheme {scheme or shown!r}: use duckdb:///path.duckdb, "
        "postgresql://user@host/db, or no URL for an in-memory DuckDB"
    )
