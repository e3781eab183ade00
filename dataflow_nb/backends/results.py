"""What both backends' result normalization shares: Arrow results with the same types on each.

Each backend evens out its own driver's quirks on every result it returns
(``duckdb_results.py``, ``postgres_results.py``), so nothing outside ``backends/`` sees them:
``frames.py`` only turns Arrow into frames and casts model columns to their declared types.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

Fix = Callable[[pa.Field, pa.ChunkedArray], pa.ChunkedArray | None]


def normalize_columns(table: pa.Table, fix: Fix) -> pa.Table:
    """``table`` with each column ``fix`` returns a replacement for replaced (the table itself when none is)."""
    columns = list(table.columns)
    changed = False
    for index, field in enumerate(table.schema):
        fixed = fix(field, columns[index])
        if fixed is not None:
            columns[index], changed = fixed, True
    return pa.table(columns, names=table.column_names) if changed else table


def utc_named(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """A timestamp column in UTC under another name (``Etc/UTC``, ``+00:00``) relabelled ``UTC``, without a copy."""
    kind = column.type
    if not pa.types.is_timestamp(kind) or kind.tz not in ("Etc/UTC", "+00:00", "Z"):
        return None
    utc = pa.timestamp(kind.unit, "UTC")
    return pa.chunked_array([chunk.view(utc) for chunk in column.chunks], type=utc)
