"""A statement's parameters as the one-row Arrow record batch ADBC binds, each value with the
Arrow type its SQL expects (ADBC does no coercion on the way in)."""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from typing import Any

import pyarrow as pa


def param_batch(values: Sequence[Any], types: Sequence[pa.DataType | None]) -> pa.RecordBatch:
    """One row of parameters with explicit Arrow types: ADBC does no coercion on the way in."""
    if any(t is None for t in types):
        arrays = [pa.array([v], type=t) if t is not None else pa.array([v]) for v, t in zip(values, types, strict=True)]
        return pa.record_batch(arrays, names=[f"p{i}" for i in range(len(arrays))])
    packed = [_packed(v, t) for v, t in zip(values, types, strict=True)]
    if None not in packed:
        return pa.RecordBatch.from_arrays(packed, schema=_param_schema(tuple(types)))
    # One conversion for the whole row: pyarrow's fixed cost per pa.array (it reads an environment
    # variable each time) is most of a small bind's cost (one int: ~55 -> ~38 us, five: ~85 -> ~50).
    return pa.RecordBatch.from_struct_array(pa.array([tuple(values)], type=_param_struct(tuple(types))))


# Ids and floats, most of the values bound, go as their bytes: pyarrow wraps them without
# converting Python objects (a two-value bind ~18 -> ~10 us; with 8 threads running runs, ~3% more
# runs a second, issue 24). Anything else (None, a bool, a numpy scalar) takes pyarrow's conversion.
_PACKED = {pa.int64(): (int, struct.Struct("=q")), pa.float64(): (float, struct.Struct("=d"))}


def _packed(value: Any, type_: pa.DataType) -> pa.Array | None:
    found = _PACKED.get(type_)
    if found is None or type(value) is not found[0]:
        return None
    try:
        data = found[1].pack(value)
    except struct.error:  # out of range: pyarrow's conversion says so in its own words
        return None
    return pa.Array.from_buffers(type_, 1, [None, pa.py_buffer(data)])


@functools.lru_cache(maxsize=1024)
def _param_struct(types: tuple[pa.DataType, ...]) -> pa.StructType:
    return pa.struct([(f"p{i}", t) for i, t in enumerate(types)])


@functools.lru_cache(maxsize=1024)
def _param_schema(types: tuple[pa.DataType, ...]) -> pa.Schema:
    return pa.schema(_param_struct(types))
