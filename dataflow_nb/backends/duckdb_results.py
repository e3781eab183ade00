"""DuckDB's Arrow results evened out: it names UTC ``Etc/UTC`` (the session's time zone)."""

from __future__ import annotations

import pyarrow as pa

from dataflow_nb.backends.results import is_utc_alias, normalize_columns, utc_named


def normalize_result(table: pa.Table) -> pa.Table:
    """Timestamps in UTC named ``UTC``; every other DuckDB type already is what PostgreSQL's becomes."""
    return normalize_columns(table, is_utc_alias, lambda field, column: utc_named(column))
