"""A CSV or Parquet file read by DuckDB's SQL as its model's types, checked as the stream checks them.

A bulk create of one file can skip the client's parser: DuckDB reads the file in parallel and
casts each column to its field's type. Only what reads exactly as the streamed path reads it is
typed here (CSV: ints, floats, booleans, text, ISO 8601 dates and timestamps; Parquet: columns of
the field's own type or a lossless widening of it); any other field makes the load stream. A
value that does not fit stops the read (``error()``), and the bulk node then finds and reports
the bad rows the way the streamed path does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataflow_nb.backends.csv_text import COMPRESSED, csv_query
from dataflow_nb.backends.load_job import BAD_VALUE
from dataflow_nb.backends.sql import quoted
from dataflow_nb.core.load_plan import FileScan, ScanColumn

if TYPE_CHECKING:
    from dataflow_nb.core.reading import ReadOptions

# Unicode White_Space, which polars' strip_chars() removes around a value.
_WS = r"[\t\n\x0B\f\r\x{85}\x{2028}\x{2029}\p{Zs}]"
_INT = r"[+-]?[0-9]+(\.0*)?"
_FLOAT = r"[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])"
_DATE = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_TIMESTAMP = _DATE + r"[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
_ISO_DATETIME_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f")

# The same characters, for trim(): polars' strip_chars() removes them, DuckDB's casts only ASCII ones.
_WS_CHARS = "".join(chr(c) for c in (*range(9, 14), 32, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029))
_WS_CHARS += "".join(chr(c) for c in (0x202F, 0x205F, 0x3000))
_ASCII_WS = r"[ \t\n\r]"  # what DuckDB's casts skip around a value themselves

_WIDER_INTS = ("int8", "int16", "int32", "uint8", "uint16", "uint32")  # Parquet ints read as BIGINT


def typed_select(scan: FileScan) -> tuple[str, list[Any]] | None:
    """DuckDB SQL reading the file's columns as their fields' types, and its positional binds;
    None when a column needs the client's parser. Columns come out named and ordered as ``scan.columns``."""
    values: list[Any] = []
    if scan.kind == "csv":
        assert scan.options is not None
        nul = _may_hold_nul(scan.path)
        typed = [_csv_value(c, scan.options, values, nul=nul) for c in scan.columns]
        source, source_values = csv_query(
            scan.path, list(scan.csv_header), [c.source for c in scan.columns], scan.csv_skip, scan.options
        )
    else:
        typed = [_parquet_value(c) for c in scan.columns]
        selected = ", ".join(f"{quoted(c.source)} AS {quoted(c.field.name)}" for c in scan.columns)
        source, source_values = f"SELECT {selected} FROM read_parquet(?)", [scan.path]
    if any(t is None for t in typed):
        return None
    names = [c.field.name for c in scan.columns]
    inner = ", ".join(f"{t} AS {quoted('__typed_' + n)}" for t, n in zip(typed, names, strict=True))
    checked = ", ".join(
        (
            f"CASE WHEN {quoted(n)} IS NOT NULL AND {quoted('__typed_' + n)} IS NULL "
            f"THEN error('{BAD_VALUE}') ELSE {quoted('__typed_' + n)} END AS {quoted(n)}"
        )
        if t != quoted(n)
        else f"{quoted('__typed_' + n)} AS {quoted(n)}"
        for t, n in zip(typed, names, strict=True)
    )
    sql = f"SELECT {checked} FROM (SELECT *, {inner} FROM ({source}) AS source) AS typed"
    return sql, [*values, *source_values]  # positional binds in the order they appear


def _read(column: str, shape: str, sql_type: str) -> str:
    """The value cast by DuckDB when it has ``shape`` (ASCII spaces around it allowed)."""
    return (
        f"CASE WHEN regexp_full_match({column}, '{_ASCII_WS}*{shape}{_ASCII_WS}*') "
        f"THEN TRY_CAST({column} AS {sql_type}) {_unicode_spaced(column, shape, sql_type)} END"
    )


def _unicode_spaced(column: str, shape: str, sql_type: str) -> str:
    """The CASE branch for a value with Unicode spaces around it: trimmed, then cast (trim() with
    them is slow, so only such values reach this branch)."""
    return (
        f"WHEN regexp_full_match({column}, '{_WS}*{shape}{_WS}*') "
        f"THEN TRY_CAST(trim({column}, '{_WS_CHARS}') AS {sql_type})"
    )


def _read_int(column: str) -> str:
    """An int as ``_read`` reads it, for less than half the cost: a value that is its own number
    as DuckDB prints it (``42``, ``-7``: digits, a sign) is read by the cast alone; any other
    spelling (``+5``, `` 42``, ``007``, ``2009.0``, a bad value) by the pattern."""
    cast = f"TRY_CAST({column} AS BIGINT)"
    return f"CASE WHEN CAST({cast} AS VARCHAR) = {column} THEN {cast} ELSE {_read(column, _INT, 'BIGINT')} END"


def _read_float(column: str) -> str:
    """A float as ``_read`` reads it, for half the cost: DuckDB's cast takes exactly the spellings
    the pattern takes but for ``_`` between digits and a sign after a sign (``+-1``), which two
    plain searches rule out (``tests/unit/test_typed_read.py`` compares every short spelling)."""
    checked = f"NOT contains({column}, '_') AND NOT contains({column}, '+-')"
    return (
        f"COALESCE(CASE WHEN {checked} THEN TRY_CAST({column} AS DOUBLE) END, "
        f"CASE {_unicode_spaced(column, _FLOAT, 'DOUBLE')} END)"
    )


def _csv_value(column: ScanColumn, options: ReadOptions, values: list[Any], *, nul: bool) -> str | None:
    """SQL reading a CSV text column as its field's type: NULL where the value does not fit.

    Each value must first have a shape polars reads (the pattern); DuckDB's cast then gives the
    value polars gives for every such text (``tests/backends/test_bulk_scan.py`` compares them).
    """
    x = quoted(column.field.name)
    target = column.field.type.arrow
    if pa.types.is_string(target):
        return _text(x) if nul else x
    if pa.types.is_int64(target):  # DuckDB reads 2009.0 as 2009, as polars does
        return _read_int(x)
    if pa.types.is_float64(target):
        return _read_float(x)
    if pa.types.is_boolean(target):
        branches = []
        for text in (f"lower({x})", f"lower(trim({x}, '{_WS_CHARS}'))"):
            values += [[v.lower() for v in options.true_values], [v.lower() for v in options.false_values]]
            branches.append(f"WHEN list_contains(?::VARCHAR[], {text}) THEN true")
            branches.append(f"WHEN list_contains(?::VARCHAR[], {text}) THEN false")
        return f"CASE {' '.join(branches)} END"
    if pa.types.is_date32(target) and column.format == "%Y-%m-%d":
        return _read(x, _DATE, "DATE")
    if target == pa.timestamp("us", "UTC") and column.format in _ISO_DATETIME_FORMATS:
        return _read(x, _TIMESTAMP, "TIMESTAMPTZ")
    return None


def _parquet_value(column: ScanColumn) -> str | None:
    """SQL reading a Parquet column as its field's type, where that loses nothing; None: stream it."""
    source, target = column.source_type, column.field.type.arrow
    x = quoted(column.field.name)
    if source is None:
        return None
    if pa.types.is_string(target) and (source == target or pa.types.is_large_string(source)):
        return _text(x)
    if source == target:
        return x
    if pa.types.is_int64(target) and str(source) in _WIDER_INTS:
        return f"CAST({x} AS BIGINT)"
    if pa.types.is_float64(target) and pa.types.is_float32(source):
        return f"CAST({x} AS DOUBLE)"
    if target == pa.timestamp("us", "UTC") and pa.types.is_timestamp(source) and source.unit in ("s", "ms", "us"):
        return x  # naive values are read as UTC (the session's time zone), like the streamed path
    return None


def _text(column: str) -> str:
    """Text as it is, except with a NUL character, which PostgreSQL cannot store: the stream refuses it."""
    return f"CASE WHEN NOT contains({column}, chr(0)) THEN {column} END"


def _may_hold_nul(path: str) -> bool:
    """Whether a CSV file may hold a NUL character: a plain file without a zero byte cannot (one pass
    of memchr over the file is cheaper than looking for it in every text value)."""
    if path.lower().endswith((".gz", ".zst", ".zstd")):
        return True
    buffer = bytearray(1 << 20)  # one buffer read into again and again: no fresh memory to fault in
    try:
        with open(path, "rb", buffering=0) as file:
            size = file.readinto(buffer)
            if bytes(buffer[:4]).startswith(COMPRESSED):
                return True
            while size:
                if buffer.find(b"\0", 0, size) >= 0:
                    return True
                size = file.readinto(buffer)
    except OSError:
        return True  # DuckDB's read says what is wrong with the file
    return False
