"""Arrow results to polars or pandas frames, with each model column in its declared type.

Both drivers return Arrow; this is the one place that evens out what differs (PostgreSQL's
numeric arrives as text, UUID and JSON as extension types, DuckDB's time zone is named
``Etc/UTC``), so the same query gives the same frame on both backends.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from dataflow_nb.model.spec import Field

FrameKind = Literal["polars", "pandas"]


def _storage(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if isinstance(column.type, pa.ExtensionType) or hasattr(column.type, "storage_type"):
        return pa.chunked_array([chunk.storage for chunk in column.chunks], type=column.type.storage_type)
    return column


def _to_objects(column: pa.ChunkedArray, field: Field) -> list[Any]:
    """UUID and JSON columns become the Python objects that were written."""
    if field.type.label == "UUID":
        raw = _storage(column)
        if pa.types.is_fixed_size_binary(raw.type):
            return [None if b is None else uuid.UUID(bytes=b) for b in raw.to_pylist()]
        return [None if s is None else uuid.UUID(s) for s in raw.to_pylist()]
    return [None if s is None else json.loads(s) for s in _storage(column).to_pylist()]


def normalize(table: pa.Table, fields: Mapping[str, Field]) -> tuple[pa.Table, dict[str, list[Any]]]:
    """Cast model columns to their Arrow types; pull UUID/JSON columns out as Python objects."""
    objects: dict[str, list[Any]] = {}
    if all(f.type.arrow == table.schema.field(n).type for n in table.column_names if (f := fields.get(n))):
        return table, objects  # the common case costs one pass over the schema
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        field = fields.get(name)
        if field is None:
            columns.append(column)
        elif field.type.as_object:
            objects[name] = _to_objects(column, field)
            columns.append(pa.nulls(len(column), pa.null()))
        elif column.type != field.type.arrow:
            columns.append(_cast(column, field.type.arrow))
        else:
            columns.append(column)
    return pa.table(columns, names=table.column_names), objects


def _cast(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    # DuckDB names UTC "Etc/UTC": the same instants, so relabel without computing anything.
    if pa.types.is_timestamp(column.type) and pa.types.is_timestamp(target) and column.type.unit == target.unit:
        return pa.chunked_array([chunk.view(target) for chunk in column.chunks], type=target)
    return pc.cast(_storage(column), target)


def to_frame(table: pa.Table, fields: Mapping[str, Field], kind: FrameKind = "polars") -> Any:
    """A polars (default) or pandas frame from an Arrow result."""
    table, objects = normalize(table, fields)
    if kind == "pandas":
        import pandas as pd

        mapping = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype(), pa.float64(): pd.Float64Dtype()}
        frame = table.to_pandas(types_mapper=mapping.get)
        for name, values in objects.items():
            frame[name] = pd.Series(values, dtype=object, index=frame.index)
        return frame
    import polars as pl

    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    if objects:
        frame = frame.with_columns(pl.Series(name, values, dtype=pl.Object) for name, values in objects.items())
    return frame
