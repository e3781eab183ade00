"""What both backends' result normalization shares: Arrow results with the same types on each.

Each backend evens out its own driver's quirks on every result it returns
(``duckdb_results.py``, ``postgres_results.py``), so nothing outside ``backends/`` sees them:
``frames.py`` only turns Arrow into frames and casts model columns to their declared types.
This is the one place a result is evened: UUIDs become canonical text here (``arrow_text.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

Fix = Callable[[pa.Field, pa.ChunkedArray], pa.ChunkedArray]
UTC_ALIASES = ("Etc/UTC", "+00:00", "Z")  # UTC under another name


def normalize_columns(table: pa.Table, needs_fix: Callable[[pa.DataType], bool], fix: Fix) -> pa.Table:
    """``table`` with each column whose type ``needs_fix`` replaced by ``fix``; the table itself when none does.

    The types are checked first, so a result with nothing to even out (most of them) costs one
    pass over its schema, not one over its columns.
    """
    todo = [index for index, kind in enumerate(table.schema.types) if needs_fix(kind)]
    if not todo:
        return table
    columns = list(table.columns)
    for index in todo:
        columns[index] = fix(table.schema.field(index), columns[index])
    return pa.table(columns, names=table.column_names)


def is_utc_alias(kind: pa.DataType) -> bool:
    """A timestamp in UTC under another name (``Etc/UTC``, ``+00:00``)."""
    return isinstance(kind, pa.TimestampType) and kind.tz in UTC_ALIASES


def utc_named(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A timestamp column in UTC under another name relabelled ``UTC``, without a copy."""
    utc = pa.timestamp(column.type.unit, "UTC")
    return pa.chunked_array([chunk.view(utc) for chunk in column.chunks], type=utc)
