"""Backends: one small protocol (``base.Backend``), implemented for DuckDB and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.engine import Dialect

from dataflow_nb.backends.base import Backend, Capabilities, CompiledSQL, Connection, compile_statement
from dataflow_nb.exceptions import DataflowError, ValidationError

if TYPE_CHECKING:
    from dataflow_nb.backends.replicas import Replicas

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
    "open_replicas",
]

DialectName = Literal["postgresql", "duckdb"]
DEFAULT_DIALECT: DialectName = "postgresql"


def dialect_named(name: str) -> Dialect:
    """The SQL dialect of a backend, without connecting (for SQL built ahead of a database)."""
    if name in ("postgresql", "postgres"):
        from dataflow_nb.backends.postgres_dialect import postgres_dialect

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


def open_replicas(
    urls: Sequence[str], primary: Backend, *, consistency: str, max_lag: float, **options: Any
) -> Replicas:
    """The read replicas of ``primary`` (each opened on first use, with the primary's ``options``).

    Raises:
        DataflowError: the database has no replicas (DuckDB), or a URL is not a PostgreSQL one.
    """
    from dataflow_nb.backends.replicas import CONSISTENCIES, Replicas

    label = primary.capabilities.label
    if not primary.capabilities.supports_replicas:
        raise DataflowError(
            f"replicas=: {label} has no read replicas (one process reads and writes the file); "
            "remove replicas=, or use a PostgreSQL URL with its standbys' URLs"
        )
    if isinstance(urls, str) or not all(isinstance(u, str) for u in urls):
        raise DataflowError(f"replicas= takes a list of URLs, e.g. ['postgresql://user@standby:5432/db'], got {urls!r}")
    if consistency not in CONSISTENCIES:
        raise DataflowError(f"consistency={consistency!r}: choose 'read_your_writes' (default) or 'eventual'")
    if isinstance(max_lag, bool) or not isinstance(max_lag, int | float) or max_lag <= 0:
        raise DataflowError(f"max_replica_lag={max_lag!r}: give a number of seconds > 0, e.g. 30")
    from dataflow_nb.backends.postgres_url import parse_postgres_url

    def safe_url(url: str) -> str:
        if url.split("://", 1)[0].lower() not in ("postgresql", "postgres", "postgresql+adbc"):
            raise DataflowError(
                f"replicas=: {url.rsplit('@', 1)[-1]!r} is not a PostgreSQL URL; give postgresql://user@host/db"
            )
        return parse_postgres_url(url).url.render_as_string(hide_password=True)

    return Replicas(
        list(urls),
        open_replica=lambda url: open_backend(url, **options),
        safe_url=safe_url,
        consistency=consistency,  # type: ignore[arg-type]
        max_lag=float(max_lag),
    )
