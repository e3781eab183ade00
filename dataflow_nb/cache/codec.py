"""Cache payloads without pickle: frames and Arrow tables as Arrow IPC, plain values as JSON.

A payload is a short header (magic + one tag byte) and the body. Decoding builds a new object
every time, so a hit never hands back something another caller can mutate. Nothing here runs
code found in the cache: a payload someone else wrote into Redis can at worst be wrong data.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any, Final

from dataflow_nb.exceptions import CacheError

MAGIC: Final = b"DFNB2"
TAG_ARROW: Final = b"A"
TAG_POLARS: Final = b"P"
TAG_PANDAS: Final = b"D"
TAG_JSON: Final = b"J"
HEADER_LEN: Final = len(MAGIC) + 1
ARROW_BODY_AT: Final = 64  # the IPC stream starts 64 bytes in: aligned buffers read back zero-copy
Payload = bytes | memoryview  # what stores keep: a memoryview spares copying a large Arrow buffer
Fetched = tuple[list[str | None], Payload | None, float | None]  # a store's answer: tokens, entry, its seconds left
# Uncompressed: reading it back is zero-copy (0.1 ms for 100k rows, against ~50 ms to undo lz4),
# and the hit is what the cache is for. Memory and Redis hold the Arrow size.
COMPRESSION: Final = None
# So an entry decodes to about its own size. One that would grow by more (a compressed stream someone
# else wrote: 5 MB of zstd became 1.5 GB) is a miss, refused before anything is decompressed.
MAX_GROWTH: Final = 64 << 20
_RECORD_BATCH, _DICTIONARY_BATCH = 3, 2  # MessageHeader values (Arrow's format/Message.fbs)


class UndecodablePayload(CacheError):
    """A stored entry this version cannot read (another format, or damaged): treated as a miss."""


def encode(value: Any, *, prefix: bytes = b"") -> Payload:
    """Encode a value as a self-describing payload.

    Args:
        value: a polars or pandas DataFrame, a pyarrow Table, or a JSON value (None, bool, int,
            float, str, and lists and str-keyed dicts of those) that survives a JSON round trip.
        prefix: bytes written before the payload, without copying the payload again.

    Returns:
        Bytes (a memoryview of Arrow's buffer for a table) for :func:`decode`.

    Raises:
        CacheError: for any other value, naming its type and what to return instead.
    """
    import pyarrow as pa

    if isinstance(value, pa.Table):
        return _ipc(value, prefix + MAGIC + TAG_ARROW)
    pl = sys.modules.get("polars")
    if pl is not None and isinstance(value, pl.LazyFrame):
        raise CacheError(
            "Cannot cache a polars LazyFrame (it is a query plan, not a result): return lf.collect() from query_func."
        )
    if pl is not None and isinstance(value, pl.DataFrame):
        buffer = io.BytesIO()
        try:
            value.write_ipc_stream(buffer, compression=COMPRESSION)  # a stream: its size is checked on decode
        except Exception as exc:
            raise CacheError(
                f"Cannot cache this polars DataFrame ({exc}): cast Object columns to a concrete dtype first."
            ) from exc
        return prefix + MAGIC + TAG_POLARS + buffer.getvalue()
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, pd.DataFrame):
        return _pandas_ipc(value, prefix + MAGIC + TAG_PANDAS)
    return prefix + MAGIC + TAG_JSON + _json(value)


def decode(data: Payload) -> Any:
    """Decode a payload written by :func:`encode` into a new object.

    Raises:
        UndecodablePayload: if the payload is not in this format.
    """
    tag = bytes(data[len(MAGIC) : HEADER_LEN])
    body = memoryview(data)[ARROW_BODY_AT if tag in (TAG_ARROW, TAG_PANDAS) else HEADER_LEN :]
    if bytes(data[: len(MAGIC)]) != MAGIC or tag not in (TAG_ARROW, TAG_POLARS, TAG_PANDAS, TAG_JSON):
        raise UndecodablePayload("the entry was not written by this version of dataflow_nb")
    try:
        if tag != TAG_JSON:
            check_decoded_size(body)
        if tag == TAG_JSON:
            return json.loads(bytes(body))
        if tag == TAG_POLARS:
            import polars as pl

            return pl.read_ipc_stream(io.BytesIO(body))
        import pyarrow as pa

        table = pa.ipc.open_stream(body).read_all()
        return table if tag == TAG_ARROW else table.to_pandas()
    except UndecodablePayload:
        raise
    except Exception as exc:  # damaged bytes must read as a miss, never as an error
        raise UndecodablePayload(f"the entry is damaged ({type(exc).__name__}: {exc})") from exc


def check_decoded_size(stream: memoryview) -> None:
    """Refuse an Arrow IPC stream that would decode to more than its size plus MAX_GROWTH.

    Only the messages' headers are read (a compressed buffer starts with its decoded length):
    nothing is decompressed or allocated to find out.
    """
    import pyarrow as pa

    decoded = 0
    for message in pa.ipc.MessageReader.open_stream(pa.py_buffer(stream)):
        if message.body is not None:
            decoded += _decoded_body(message.metadata.to_pybytes(), message.body)
        if decoded > len(stream) + MAX_GROWTH:
            raise UndecodablePayload(
                f"the entry ({len(stream)} bytes) would decode to more than {decoded} bytes; a result "
                "dataflow_nb stored decodes to its own size, so it is treated as a miss"
            )


def _decoded_body(meta: bytes, body: Any) -> int:
    """The bytes a message's body decodes to, from its flatbuffer header (Arrow's Message.fbs)."""

    def u32(at: int) -> int:
        return int.from_bytes(meta[at : at + 4], "little")

    def field(table: int, index: int) -> int:
        """Where field ``index`` of the flatbuffer table at ``table`` is (0: absent)."""
        vtable = table - int.from_bytes(meta[table : table + 4], "little", signed=True)
        slot = 4 + 2 * index
        if slot >= int.from_bytes(meta[vtable : vtable + 2], "little"):
            return 0
        offset = int.from_bytes(meta[vtable + slot : vtable + slot + 2], "little")
        return table + offset if offset else 0

    root = u32(0)
    kind_at, header_at = field(root, 1), field(root, 2)
    if not kind_at or not header_at or meta[kind_at] not in (_RECORD_BATCH, _DICTIONARY_BATCH):
        return int(body.size)
    batch = header_at + u32(header_at)
    if meta[kind_at] == _DICTIONARY_BATCH:
        inner = field(batch, 1)
        batch = inner + u32(inner)
    buffers, compression = field(batch, 2), field(batch, 3)
    if not compression or not buffers:
        return int(body.size)
    vector = buffers + u32(buffers)
    data = memoryview(body)  # a pyarrow Buffer exports the buffer protocol
    total = 0
    for i in range(u32(vector)):
        at = vector + 4 + 16 * i
        offset, length = (int.from_bytes(meta[at + k : at + k + 8], "little", signed=True) for k in (0, 8))
        if length >= 8:
            size = int.from_bytes(bytes(data[offset : offset + 8]), "little", signed=True)
            total += length - 8 if size < 0 else size  # -1: stored uncompressed
    return total


def _ipc(table: Any, header: bytes) -> memoryview:
    """The header and the table as an Arrow IPC stream, in one buffer of the exact size.

    The stream is measured first (a mock stream copies nothing), so the bytes are written once
    instead of into a growing buffer that is copied at every doubling (3 ms, not 50, for 6 MB).
    """
    import pyarrow as pa

    table = table.combine_chunks()  # one batch: polars builds a frame from one chunk much faster
    options = pa.ipc.IpcWriteOptions(compression=COMPRESSION)
    padded = header + bytes(ARROW_BODY_AT - HEADER_LEN)
    measure = pa.MockOutputStream()
    with pa.ipc.new_stream(measure, table.schema, options=options) as writer:
        writer.write_table(table)
    buffer = pa.allocate_buffer(len(padded) + measure.size(), memory_pool=_entry_pool())
    sink = pa.FixedSizeBufferWriter(buffer)
    sink.write(padded)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return memoryview(buffer)


def _entry_pool() -> Any:
    """Entries are large and live until evicted: jemalloc hands an evicted entry's pages to the
    next one, where the default mimalloc faults in fresh zeroed pages (measured: a 100k-row miss
    took twice the CPU).
    """
    import pyarrow as pa

    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.system_memory_pool()


def _pandas_ipc(frame: Any, header: bytes) -> memoryview:
    """Arrow-encode a pandas frame, refusing one that Arrow would give back with other dtypes."""
    import pyarrow as pa

    try:
        table = pa.Table.from_pandas(frame)
        probe = table.slice(0, 0).to_pandas()
    except (pa.ArrowException, ValueError, TypeError, NotImplementedError) as exc:
        raise CacheError(
            f"Cannot cache this pandas DataFrame as Arrow ({exc}): give object columns one type each "
            "(e.g. df[col].astype('string'))."
        ) from exc
    changed = [str(c) for c in frame.columns if c in probe.columns and probe[c].dtype != frame[c].dtype]
    if changed or not probe.columns.equals(frame.columns):
        raise CacheError(
            f"Cannot cache this pandas DataFrame: Arrow would return columns {changed or list(frame.columns)} "
            "with other dtypes; cast them to a concrete dtype first."
        )
    return _ipc(table, header)


def _json(value: Any) -> bytes:
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise CacheError(
            f"Cannot cache a value of type {type(value).__name__} ({exc}): the cache stores frames, Arrow tables "
            "and JSON values (no pickle); return one of those from query_func."
        ) from exc
    if json.loads(text) != value or not _same_types(json.loads(text), value):
        raise CacheError(
            f"Cannot cache {type(value).__name__} value {value!r:.80}: JSON would give it back changed "
            "(tuples become lists, dict keys become str); return lists and str-keyed dicts."
        )
    return text.encode()


def _same_types(decoded: Any, original: Any) -> bool:
    """``json.loads(json.dumps(x)) == x`` also holds for 1.0 vs 1 and True vs 1: compare types too."""
    if type(decoded) is not type(original):
        return False
    if isinstance(original, list):
        return all(_same_types(d, o) for d, o in zip(decoded, original, strict=True))
    if isinstance(original, dict):
        return all(_same_types(decoded[k], v) for k, v in original.items())
    return True
