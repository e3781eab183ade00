"""Infer a model class from an Arrow schema: a CSV or Parquet file, or a frame, becomes a model.

A column is ``Optional`` where the data has nulls (Parquet statistics, or a scan of the CSV or
frame), so a model inferred from a file accepts that whole file.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from typing import Any, Optional

import pyarrow as pa

from dataflow_nb.bulk.sources import BatchSource, csv_source, open_input, parquet_source
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.spec import MANAGED_TIMESTAMPS, check_identifier


def _python_type(name: str, arrow: pa.DataType) -> type:
    """The model type for one Arrow type (checked in order: bool before ints, timestamps before dates)."""
    checks: list[tuple[Any, type]] = [
        (pa.types.is_boolean, bool),
        (pa.types.is_integer, int),
        (pa.types.is_floating, float),
        (pa.types.is_decimal, Decimal),
        (pa.types.is_timestamp, dt.datetime),
        (pa.types.is_date, dt.date),
        (pa.types.is_time, dt.time),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t), str),
        (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), bytes),
    ]
    for check, kind in checks:
        if check(arrow):
            return kind
    raise ValidationError(
        f"column {name!r} has Arrow type {arrow}, which no model field type holds; convert or drop the column first"
    )


def _infer_source(source: Any) -> BatchSource:
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source).lower()
        if name.endswith((".csv", ".csv.gz", ".tsv")):
            return csv_source(source, infer_types=True, delimiter="\t" if ".tsv" in name else ",")
        if name.endswith((".parquet", ".pq")):
            return parquet_source(source)
    return open_input(source, None)


def _parquet_nulls(pattern: Any) -> tuple[pa.Schema, dict[str, bool]] | None:
    """Schema and null flags from Parquet footers alone, when every column chunk has statistics."""
    import pyarrow.parquet as pq

    from dataflow_nb.bulk.sources import _paths

    schema: pa.Schema | None = None
    nulls: dict[str, bool] = {}
    for path in _paths(pattern):
        parquet = pq.ParquetFile(path)
        schema = schema or parquet.schema_arrow
        meta = parquet.metadata
        for group in range(meta.num_row_groups):
            for index in range(meta.num_columns):
                chunk = meta.row_group(group).column(index)
                stats = chunk.statistics
                if stats is None or not stats.has_null_count:
                    return None
                name = chunk.path_in_schema
                nulls[name] = nulls.get(name, False) or stats.null_count > 0
    return (schema, nulls) if schema is not None else None


def infer_annotations(source: Any) -> dict[str, Any]:
    """Field name to type hint, read from the data (one streamed pass; Parquet statistics when present)."""
    batches = _infer_source(source)
    schema: pa.Schema | None = None
    nulls: dict[str, bool] = {}
    footer = (
        _parquet_nulls(source)
        if isinstance(source, str | os.PathLike) and os.fspath(source).lower().endswith((".parquet", ".pq"))
        else None
    )
    if footer is not None:
        schema, nulls = footer
    for batch in batches if footer is None else ():
        if schema is None:
            schema = batch.schema
        elif batch.schema != schema:
            raise ValidationError(f"the batches of {batches.label} do not share one schema: {schema} vs {batch.schema}")
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            nulls[name] = nulls.get(name, False) or column.null_count > 0
    if schema is None:
        raise ValidationError(f"{batches.label} has no rows to infer a model from")
    annotations: dict[str, Any] = {}
    for field in schema:
        name = check_identifier(field.name, "column")
        if name == "id":
            continue  # a source's own id does not replace the managed primary key
        kind = _python_type(name, field.type)
        if name in MANAGED_TIMESTAMPS and kind is not dt.datetime:
            raise ValidationError(f"column {name!r} is managed by dataflow_nb and must hold timestamps; rename it")
        annotations[name] = Optional[kind] if nulls.get(name) else kind  # noqa: UP045 - a runtime type object
    return annotations


__all__ = ["infer_annotations"]
