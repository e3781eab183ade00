"""Arrow results of SQL we did not build, evened out across drivers (SQLQueryNode, migration history).

PostgreSQL's driver sends numeric as text and UUID and JSON as extension types; DuckDB names
UTC ``Etc/UTC``. Model nodes cast to the model's types instead (``frames.py``).
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from dataflow_nb.frames import uuid_text


def _numeric(field: pa.Field, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """PostgreSQL numeric arrives as text: a decimal of its declared (or widest needed) scale."""
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


def normalize_result(table: pa.Table) -> pa.Table:
    """Driver differences evened out: numeric as decimal, UUID and JSON as text, UTC named UTC."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = column.type
        if hasattr(kind, "storage_type"):  # an extension type: PostgreSQL's numeric, uuid, json
            column = pa.chunked_array([chunk.storage for chunk in column.chunks], type=kind.storage_type)
            if pa.types.is_fixed_size_binary(column.type):
                column = uuid_text(column)
            elif (field.metadata or {}).get(b"POSTGRESQL:type") == b"numeric":
                column = _numeric(field, column)
        elif pa.types.is_timestamp(kind) and kind.tz in ("Etc/UTC", "UTC", "+00:00"):
            utc = pa.timestamp(kind.unit, "UTC")
            column = pa.chunked_array([chunk.view(utc) for chunk in column.chunks], type=utc)
        columns.append(column)
    return pa.table(columns, names=table.column_names)
