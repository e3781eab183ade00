"""A statement's parameters as the one-row Arrow record batch ADBC binds, each value with the
Arrow type its SQL expects (ADBC does no coercion on the way in)."""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import pyarrow as pa


def param_batch(values: Sequence[Any], types: Sequence[pa.DataType | None]) -> pa.RecordBatch:
    """One row of parameters with explicit Arrow types: ADBC does no coercion on the way in."""
    plan = _plan(tuple(types))
    if plan.struct is None:  # a type unknown: pyarrow infers it from the value
        arrays = [pa.array([v], type=t) if t is not None else pa.array([v]) for v, t in zip(values, types, strict=True)]
        return pa.record_batch(arrays, names=[f"p{i}" for i in range(len(arrays))])
    if plan.packers is not None:
        packed = _packed(values, plan.packers, plan.schema)
        if packed is not None:
            return packed
    # One conversion for the whole row: pyarrow's fixed cost per pa.array (it reads an environment
    # variable each time) is most of a small bind's cost (one int: ~55 -> ~38 us, five: ~85 -> ~50).
    return pa.RecordBatch.from_struct_array(pa.array([tuple(values)], type=plan.struct))


# Ids and floats, most of the values bound, go as their bytes: pyarrow wraps them without
# converting Python objects (a two-value bind ~18 -> ~10 us; with 8 threads running runs, ~3% more
# runs a second, issue 24). A row with anything else (None, a bool, a numpy scalar) takes
# pyarrow's conversion.
Packer = tuple[type, Callable[[Any], bytes], pa.DataType]
_PACKERS: dict[pa.DataType, tuple[type, Callable[[Any], bytes]]] = {
    pa.int64(): (int, struct.Struct("=q").pack),
    pa.float64(): (float, struct.Struct("=d").pack),
}


class _Plan(NamedTuple):
    """How a row of these types is bound, worked out once per statement shape."""

    struct: pa.StructType | None  # None: a type is unknown
    schema: pa.Schema | None
    packers: tuple[Packer, ...] | None  # None: a type is not packed from its bytes


@functools.lru_cache(maxsize=1024)
def _plan(types: tuple[pa.DataType | None, ...]) -> _Plan:
    if any(t is None for t in types):
        return _Plan(None, None, None)
    row = pa.struct([(f"p{i}", t) for i, t in enumerate(types)])
    packers = tuple((*_PACKERS[t], t) for t in types) if all(t in _PACKERS for t in types) else None
    return _Plan(row, pa.schema(row), packers)


def _packed(values: Sequence[Any], packers: tuple[Packer, ...], schema: pa.Schema | None) -> pa.RecordBatch | None:
    arrays = []
    try:
        for value, (kind, pack, type_) in zip(values, packers, strict=True):
            if type(value) is not kind:
                return None
            arrays.append(pa.Array.from_buffers(type_, 1, [None, pa.py_buffer(pack(value))]))
    except struct.error:  # out of range: pyarrow's conversion says so in its own words
        return None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
