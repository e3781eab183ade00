"""Arrow results to polars or pandas frames, with each model column in its declared type.

Each backend evens out its own driver's quirks before a result leaves it
(``backends/*_results.py``); here model columns are cast to their declared types (a column
the database typed wider or narrower, a cached result), so the same query gives the same frame
on both backends.

A polars frame never holds ``Object`` columns (they cannot be written to Parquet, joined,
sorted, grouped or pickled): UUID is a String in canonical form and JSON a String of JSON text,
or with ``json="decode"`` a Struct/List from polars' own decoder. pandas keeps Python objects
(``uuid.UUID``, ``dict``/``list``), its convention for such values.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, overload

import pyarrow as pa
import pyarrow.compute as pc

from dataflow_nb.core.spec import Field
from dataflow_nb.core.types import canonical_json, pandas_dtypes
from dataflow_nb.exceptions import ValidationError

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

FrameKind = Literal["polars", "pandas"]
JsonMode = Literal["text", "decode"]
JSON_MODES = ("text", "decode")
SMALL_RESULT = 64  # rows: a result this small becomes a polars frame without polars' thread pool
Frame: TypeAlias = "pl.DataFrame | pd.DataFrame"
"""What a node, a log or a plan returns: a polars frame, or pandas with ``frame="pandas"``."""


def _json_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """JSON in one canonical text (PostgreSQL's jsonb reorders keys; DuckDB keeps what was written)."""
    texts = [None if s is None else canonical_json(json.loads(s)) for s in column.to_pylist()]
    return pa.chunked_array([pa.array(texts, pa.string())], type=pa.string())


def _to_objects(column: pa.ChunkedArray, field: Field) -> list[Any]:
    """pandas: UUID and JSON columns become the Python objects that were written."""
    if field.type.label == "UUID":
        return [None if s is None else uuid.UUID(s) for s in column.to_pylist()]
    return [None if s is None else json.loads(s) for s in column.to_pylist()]


def normalize(
    table: pa.Table, fields: Mapping[str, Field], kind: FrameKind = "polars"
) -> tuple[pa.Table, dict[str, list[Any]]]:
    """Cast model columns to their Arrow types; for pandas, pull UUID/JSON columns out as Python objects."""
    objects: dict[str, list[Any]] = {}
    if casts_nothing(table, fields):
        return table, objects  # the common case costs one pass over the schema
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        field = fields.get(name)
        if field is None:
            columns.append(column)
        elif field.type.as_object and kind == "pandas":
            objects[name] = _to_objects(column, field)
            columns.append(pa.nulls(len(column), pa.null()))
        elif field.type.label == "UUID":
            columns.append(_cast(column, pa.string()))  # canonical text from every backend (backends/arrow_text.py)
        elif field.type.as_object:
            columns.append(_json_text(column))
        elif not _same(field.type.arrow, column.type):
            columns.append(_cast(column, field.type.arrow))
        else:
            columns.append(column)
    return pa.table(columns, names=table.column_names), objects


def casts_nothing(table: pa.Table, fields: Mapping[str, Field]) -> bool:
    """Every model column of ``table`` is in its declared Arrow type already (and none is a UUID
    or JSON, which ``normalize`` rewrites)."""
    typed = [(f, kind) for n, kind in zip(table.column_names, table.schema.types, strict=True) if (f := fields.get(n))]
    return all(not f.type.as_object and _same(f.type.arrow, kind) for f, kind in typed)


def _same(wanted: pa.DataType, actual: pa.DataType) -> bool:
    """String views (how the result cache keeps polars text: it becomes a frame without a copy) are strings."""
    return bool(wanted == actual or (wanted == pa.string() and actual == pa.string_view()))


def _cast(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    return pc.cast(column, target)


def check_json_mode(node: str, mode: Any) -> JsonMode:
    """``json=`` of a node or a DataFlow, checked."""
    if mode not in JSON_MODES:
        raise ValidationError(
            f"{node}: json={mode!r}; choose 'text' (JSON as a String column) or 'decode' (Struct/List columns)"
        )
    result: JsonMode = mode
    return result


@overload
def to_frame(
    table: pa.Table, fields: Mapping[str, Field], kind: Literal["polars"] = "polars", *, json: JsonMode = "text"
) -> pl.DataFrame: ...
@overload
def to_frame(
    table: pa.Table, fields: Mapping[str, Field], kind: Literal["pandas"], *, json: JsonMode = "text"
) -> pd.DataFrame: ...
@overload
def to_frame(table: pa.Table, fields: Mapping[str, Field], kind: FrameKind, *, json: JsonMode = "text") -> Frame: ...
def to_frame(
    table: pa.Table, fields: Mapping[str, Field], kind: FrameKind = "polars", *, json: JsonMode = "text"
) -> Frame:
    """A polars (default) or pandas frame from an Arrow result.

    Args:
        table: the result.
        fields: the model fields that type its columns (others pass through as they are).
        kind: ``"polars"`` or ``"pandas"``.
        json: polars only: ``"text"`` keeps JSON columns as String, ``"decode"`` decodes them
            to Struct/List with polars' decoder (all values of a column must share one shape).
    """
    table, objects = normalize(table, fields, kind)
    if kind == "pandas":
        import pandas as pd

        frame = table.to_pandas(types_mapper=pandas_dtypes().get)
        for name, values in objects.items():
            frame[name] = pd.Series(values, dtype=object, index=frame.index)
        return frame
    frame = polars_frame(table)
    if json == "decode":
        for name in table.column_names:
            field = fields.get(name)
            if field is not None and field.type.label in ("dict", "list"):
                frame = frame.with_columns(_decoded(frame[name], field))
    return frame


def polars_frame(rows: Any) -> pl.DataFrame:
    """A polars frame of Arrow rows as they are: a table, or any Arrow C stream (a driver's own)."""
    import polars as pl

    if not isinstance(rows, pa.Table):
        return _stream_import()(rows)
    if rows.num_rows <= SMALL_RESULT:
        # Through the Arrow C stream too: a third of from_arrow's CPU for a one-row result (a
        # Read, a Create's RETURNING), and polars' thread pool is not woken.
        return _stream_import()(_ArrowStream(rows))
    frame = pl.from_arrow(rows, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame


@functools.cache
def _stream_import() -> Callable[[Any], pl.DataFrame]:
    """What ``pl.DataFrame(stream)`` calls for an Arrow C stream, without its constructor's walk
    past a dozen other kinds of data first: between one statement and the next that walk is cold,
    and skipping it saves 10-25 us of CPU a one-row node (issue 24). The function is polars' own
    (``polars._utils.pycapsule``); where a polars release has moved it, the constructor is used."""
    import polars as pl

    try:
        from polars._utils.pycapsule import pycapsule_to_frame
    except ImportError:  # pragma: no cover - another polars layout
        return pl.DataFrame
    return pycapsule_to_frame


class _ArrowStream:
    """A table seen only as an Arrow C stream, so that polars imports it through the PyCapsule
    interface rather than its pyarrow path."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)


def _decoded(column: Any, field: Field) -> Any:
    import polars as pl

    try:
        return column.str.json_decode(infer_schema_length=None)
    except pl.exceptions.PolarsError as exc:
        reason = str(exc).splitlines()[0]
        raise ValidationError(
            f"field {field.name!r}: json='decode' needs every value of the column to share one shape, and "
            f"polars' decoder found values that do not ({reason}); read it with json='text' (the default) "
            "and decode the rows you need, or keep one shape per field"
        ) from None
