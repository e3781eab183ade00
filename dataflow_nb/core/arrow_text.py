"""UUID columns as canonical text: what every frame and bulk check compares and shows.

Here, below ``backends/`` and ``frames.py``, because both need it: PostgreSQL's driver sends
UUIDs as 16 bytes (``backends/postgres_results.py``), a Parquet file may hold them so too.
"""

from __future__ import annotations

import binascii

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def storage(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """An extension-typed column (``arrow.uuid``, JSON) as its storage; other columns as they are."""
    if isinstance(column.type, pa.ExtensionType) or hasattr(column.type, "storage_type"):
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
