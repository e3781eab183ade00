"""Infer a model from data: a CSV or Parquet file, or a frame, becomes a model's fields.

Parquet and frames carry Arrow types. CSV text is typed the way polars' reader would type it
(ints, floats, ``true``/``false``, dates and times in one format per column, else text), with
the same parser the bulk nodes use, so a model inferred from a file always loads that file. A
column is ``Optional`` where the data has nulls. Column names that are not valid identifiers
become snake_case (``Sample Number`` -> ``sample_number``); a source ``id`` column stays the key
when it holds unique integers and becomes ``source_id`` otherwise.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import pyarrow as pa

from dataflow_nb.bulk.parse import ReadOptions, choose_format, is_text, parse_text
from dataflow_nb.bulk.sources import csv_source, matching_paths, open_input, parquet_source
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.spec import _IDENTIFIER, MANAGED_TIMESTAMPS
from dataflow_nb.model.types import field_type_for, field_type_for_arrow

# What polars' CSV reader tries, in its order; each kind's Arrow type comes from the registry.
_TEXT_KINDS: tuple[tuple[str, pa.DataType, type], ...] = tuple(
    (f.label, f.arrow, f.python)
    for f in map(field_type_for, (int, float, bool, dt.date, dt.datetime, dt.time))
    if f is not None
)


def _python_type(name: str, arrow: pa.DataType) -> type:
    """The model type for one Arrow type, as the type registry reads it."""
    found = field_type_for_arrow(arrow)
    if found is None:
        raise ValidationError(
            f"column {name!r} has Arrow type {arrow}, which no model field type holds; convert or drop the column first"
        )
    kind: type = found.python
    return kind


@dataclass
class _Column:
    """What one column may still be, narrowed batch by batch."""

    kinds: list[str] = field(default_factory=lambda: [k for k, _, _ in _TEXT_KINDS])
    formats: dict[str, str] = field(default_factory=dict)
    arrow: pa.DataType | None = None
    nulls: bool = False
    values: bool = False  # a column of nulls only stays text

    def narrow(self, array: pa.Array, options: ReadOptions) -> None:
        """Keep the first kind, in polars' order, that every value of this text batch parses as."""
        import polars as pl

        if array.null_count == len(array):
            return
        self.values = True
        raw = pl.Series(values=array).cast(pl.String).drop_nulls()
        if (raw.str.len_chars() != raw.str.strip_chars().str.len_chars()).any():
            self.kinds = []  # values with surrounding spaces stay text, as polars reads them
            return
        for kind, _target, _ in _TEXT_KINDS:
            if kind not in self.kinds:
                continue
            if self._fits(kind, raw, options):
                self.kinds = ["int", "float"] if kind == "int" else [kind]  # a later batch may widen int to float
                return
            self.kinds.remove(kind)

    def _fits(self, kind: str, raw: Any, options: ReadOptions) -> bool:
        import polars as pl

        if kind == "int":
            return bool(raw.str.contains(r"^[+-]?[0-9]+$").all())
        if kind == "float":
            return bool(raw.cast(pl.Float64, strict=False).null_count() == 0)
        if kind == "bool":
            return bool(raw.str.to_lowercase().is_in(["true", "false"]).all())
        given = getattr(options, f"{kind}_format")
        if kind not in self.formats:
            if given is None and not _polars_reads(raw.head(2000), kind):
                return False
            try:
                self.formats[kind] = given or choose_format(raw, kind, "")
            except ValidationError:  # day and month both fit: text, unless a format is given
                return False
        target = {k: t for k, t, _ in _TEXT_KINDS}[kind]
        return bool(parse_text(raw.to_arrow(), target, self.formats[kind], options).null_count == 0)

    def python_type(self) -> type:
        return next((python for kind, _, python in _TEXT_KINDS if kind in self.kinds and self.values), str)


def _polars_reads(sample: Any, kind: str) -> bool:
    """Whether polars, finding a format itself, reads every sampled value as this kind."""
    import polars as pl

    parse = {"date": sample.str.to_date, "datetime": sample.str.to_datetime, "time": sample.str.to_time}[kind]
    try:
        return bool(parse(strict=False).null_count() == 0)
    except pl.exceptions.PolarsError:
        return False


def identifier(name: str) -> str:
    """A valid field name for a column name: unchanged when it is one, else snake_case."""
    if _IDENTIFIER.match(name):
        return name
    text = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "column"
    return (f"c_{text}" if text[0].isdigit() else text)[:63]


def column_names(names: list[str], rename: dict[str, str]) -> dict[str, str]:
    """Source name -> field name for every column (``rename`` first, then identifiers, made distinct)."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        chosen = rename.get(name) or identifier(name)
        base, number = chosen, 2
        while chosen in used:
            chosen, number = f"{base}_{number}", number + 1
        used.add(chosen)
        mapping[name] = chosen
    return mapping


@dataclass
class Inferred:
    """The fields inferred from a source, and how its columns map to them."""

    annotations: dict[str, Any]
    source_columns: dict[str, str]  # source column -> field, where they differ


def _is_parquet(source: Any) -> bool:
    return isinstance(source, str | os.PathLike) and os.fspath(source).lower().endswith((".parquet", ".pq"))


def _is_csv(source: Any) -> bool:
    if not isinstance(source, str | os.PathLike):
        return False
    name = os.fspath(source).lower().removesuffix(".gz").removesuffix(".zst")
    return name.endswith((".csv", ".tsv", ".txt"))


def _parquet_nulls(pattern: Any) -> tuple[pa.Schema, dict[str, bool]] | None:
    """Schema and null flags from Parquet footers alone, when every column chunk has statistics."""
    import pyarrow.parquet as pq

    schema: pa.Schema | None = None
    nulls: dict[str, bool] = {}
    for path in matching_paths(pattern):
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


def infer_model(source: Any, options: ReadOptions | None = None) -> Inferred:
    """Fields and column mapping from the data (one streamed pass; Parquet statistics when present)."""
    options = options or ReadOptions()
    plain = replace(options, rename={})  # read the source's own names
    footer = _parquet_nulls(source) if _is_parquet(source) and options.columns is None else None
    columns: dict[str, _Column] = {}
    ids: list[pa.Array] = []
    rows = 0
    if footer is not None:
        schema, nulls = footer
        columns = {f.name: _Column(kinds=[], arrow=f.type, nulls=nulls.get(f.name, False)) for f in schema}
        if "id" in schema.names:
            ids = [b.column(0) for b in parquet_source(source, columns=["id"])]
    else:
        text = _is_csv(source)
        if text:
            batches = csv_source(source, options=plain)
        elif _is_parquet(source):
            batches = parquet_source(source, options=plain)
        else:
            batches = open_input(source, None, options=plain)
        for batch in batches:
            rows += batch.num_rows
            for name, array in zip(batch.schema.names, batch.columns, strict=True):
                column = columns.get(name)
                if column is None:
                    typed = not (text and is_text(array.type))
                    column = columns[name] = _Column(kinds=[], arrow=array.type) if typed else _Column()
                column.nulls = column.nulls or array.null_count > 0
                if column.arrow is None:
                    column.narrow(array, options)
                if name == "id":
                    ids.append(array)
        if not rows:
            raise ValidationError(f"{batches.label} has no rows to infer a model from")
    return _annotations(columns, ids, options)


def _annotations(columns: dict[str, _Column], ids: list[pa.Array], options: ReadOptions) -> Inferred:
    kinds = {name: c.python_type() if c.arrow is None else _python_type(name, c.arrow) for name, c in columns.items()}
    rename = dict(options.rename)
    if "id" in columns and "id" not in rename:
        rename["id"] = "id" if kinds["id"] is int and _unique_keys(ids) else "source_id"
    mapping = column_names(list(columns), rename)
    annotations: dict[str, Any] = {}
    for name, column in columns.items():
        field_name = mapping[name]
        if field_name == "id":
            continue  # the source's unique integer ids become the model's key
        kind = kinds[name]
        if field_name in MANAGED_TIMESTAMPS and kind is not dt.datetime:
            raise ValidationError(
                f"column {name!r} is managed by dataflow_nb and must hold timestamps; pass rename={{{name!r}: ...}}"
            )
        annotations[field_name] = Optional[kind] if column.nulls else kind  # noqa: UP045 - a runtime type object
    return Inferred(annotations, {s: f for s, f in mapping.items() if s != f})


def _unique_keys(ids: list[pa.Array]) -> bool:
    """Whether the id column holds an integer in every row, each once."""
    import polars as pl

    if not ids:
        return False
    values = pl.concat([pl.Series(values=parse_text(a, pa.int64(), None, ReadOptions())) for a in ids])
    return values.null_count() == 0 and values.n_unique() == len(values)


__all__ = ["Inferred", "column_names", "identifier", "infer_model"]
