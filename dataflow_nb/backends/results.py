"""What both backends' result normalization shares: Arrow results with the same types on each.

Each backend evens out its own driver's quirks on every result it returns
(``duckdb_results.py``, ``postgres_results.py``), so nothing outside ``backends/`` sees them:
``frames.py`` only turns Arrow into frames and casts model columns to their declared types.
This is the one place a result is evened: UUIDs become canonical text here and nowhere else.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def storage(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """An extension-typed column (Arrow's ``arrow.uuid``, ``arrow.json``...) as its storage, without a copy."""
    if isinstance(column.type, pa.BaseExtensionType):
        return pa.chunked_array([chunk.storage for chunk in column.chunks], type=column.type.storage_type)
    return column


def _uuid_chunk(chunk: pa.Array) -> pa.Array:
    """16-byte UUIDs as canonical text (``8-4-4-4-12`` lowercase hex), with Arrow compute."""
    size = len(chunk)
    raw = chunk.buffers()[1]
    data = b"" if raw is None else raw.to_pybytes()[chunk.offset * 16 : (chunk.offset + size) * 16]
    hexed = pa.py_buffer(binascii.hexlify(data))
    offsets = pa.py_buffer(np.arange(0, 32 * size + 1, 32, dtype=np.int32).tobytes())
    text = pa.Array.from_buffers(pa.string(), size, [None, offsets, hexed])
    parts = [
        pc.utf8_slice_codeunits(text, start, stop) for start, stop in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))
    ]
    joined = pc.binary_join_element_wise(*parts, "-")
    return pc.if_else(chunk.is_valid(), joined, pa.scalar(None, pa.string()))


def uuid_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A UUID column (16 bytes, Arrow's ``arrow.uuid``, or text) as canonical text."""
    raw = storage(column)
    if pa.types.is_fixed_size_binary(raw.type):
        return pa.chunked_array([_uuid_chunk(chunk) for chunk in raw.chunks], type=pa.string())
    return pc.utf8_lower(pc.cast(raw, pa.string()))
