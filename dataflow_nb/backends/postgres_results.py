"""PostgreSQL's Arrow results evened out: ADBC sends numeric as text, UUID and JSON as extension types."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from dataflow_nb.backends.results import is_utc_alias, normalize_columns, utc_named
from dataflow_nb.core.arrow_text import uuid_text


def _numeric(field: pa.Field, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """numeric arrives as text: a decimal of its declared (or widest needed) scale."""
    typmod = int((field.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
    if typmod >= 4:
        precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
        return pc.cast(column, pa.decimal128(precision, scale)) if precision <= 38 else column
    texts = [t for t in column.to_pylist() if t is not None]
    if any(not re.fullmatch(r"-?\d+(\.\d+)?", t) for t in texts):
        return column  # NaN or Infinity: keep the text rather than lose them
    scale = max((len(t.partition(".")[2]) for t in texts), default=0)
    digits = max((len(t.lstrip("-").partition(".")[0]) for t in texts), default=1)
    # DuckDB types such results DECIMAL(38, s) (its sum of BIGINT is DECIMAL(38, 0)): do the same.
    return pc.cast(column, pa.decimal128(38, scale)) if digits + scale <= 38 else column


def _needs_fix(kind: pa.DataType) -> bool:
    return isinstance(kind, pa.BaseExtensionType) or is_utc_alias(kind)


def _fix(field: pa.Field, column: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = column.type
    if not isinstance(kind, pa.BaseExtensionType):
        return utc_named(column)
    column = pa.chunked_array([chunk.storage for chunk in column.chunks], type=kind.storage_type)
    if pa.types.is_fixed_size_binary(column.type):
        return uuid_text(column)
    if (field.metadata or {}).get(b"POSTGRESQL:type") == b"numeric":
        return _numeric(field, column)
    return column  # JSON: its text


def normalize_result(table: pa.Table) -> pa.Table:
    """Numeric as decimal, UUID as canonical text, JSON as text, UTC named UTC."""
    return normalize_columns(table, _needs_fix, _fix)
