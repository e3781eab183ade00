"""Infer a model from data: a CSV or Parquet file, or a frame, becomes a model's fields.

Parquet and frames carry Arrow types. CSV text is typed the way polars' reader would type it
(ints, floats, ``true``/``false``, dates and times in one format per column, else text), with
the same parser the bulk nodes use, so a model inferred from a file always loads that file. A
column is ``Optional`` where the data has nulls. Column names that are not valid identifiers
become snake_case ASCII (``Sample Number`` -> ``sample_number``, ``Größe`` -> ``grosse``); a CSV
header's empty and repeated names are read as DuckDB names them (``column0``, ``a_1``); a
source ``id`` column (in any case) stays the key when it holds unique integers, and it and any
other column named like a managed one (``created_at``, ``ID``) becomes ``source_<name>``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import pyarrow as pa

from dataflow_nb.bulk.parse import choose_format, is_text, parse_text
from dataflow_nb.bulk.sources import (
    DEFAULT_BATCH_SIZE,
    csv_source,
    distinct_names,
    matching_paths,
    open_input,
    parquet_source,
    raw_csv_header,
)
from dataflow_nb.core.identifiers import IDENTIFIER
from dataflow_nb.core.reading import ReadOptions
from dataflow_nb.core.spec import LIFECYCLE_COLUMNS, MANAGED_TIMESTAMPS
from dataflow_nb.core.types import field_type_for, field_type_for_arrow
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model import SAMPLE_ROWS

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


# Letters NFKD does not split into an ASCII letter and an accent.
_LETTERS = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "ð": "d"})
_LETTERS.update(str.maketrans({"Ð": "D", "þ": "th", "Þ": "TH", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D"}))
_LETTERS[0x131] = "i"  # the dotless i
# Columns dataflow_nb manages on every model (or on some): a source column of that name, in any
# case, is kept as source_<name> (``id`` stays the key when it holds unique integers).
MANAGED_NAMES = ("id", "tenant_id", *MANAGED_TIMESTAMPS, *LIFECYCLE_COLUMNS)


def ascii_letters(name: str) -> str:
    """Latin letters without their accents (``Größe`` -> ``Grosse``); any other character that is
    not ASCII becomes ``u`` and its code point (``名`` -> ``u540d``), so none is dropped."""
    text = unicodedata.normalize("NFKD", name.translate(_LETTERS))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return "".join(c if c.isascii() else f"_u{ord(c):04x}_" for c in text)


def identifier(name: str) -> str:
    """A valid field name for a column name: unchanged when it is one, else snake_case ASCII."""
    if IDENTIFIER.match(name):
        return name
    text = re.sub(r"[^0-9a-zA-Z]+", "_", ascii_letters(name)).strip("_").lower() or "column"
    return (f"c_{text}" if text[0].isdigit() else text)[:63]


def column_names(names: list[str], rename: dict[str, str]) -> dict[str, str]:
    """Source name -> field name for every column: ``rename`` first, then identifiers, a managed
    column's name as ``source_<name>``, all made distinct (also in case: DuckDB's names ignore it)."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        chosen = rename.get(name) or identifier(name)
        if name not in rename and chosen.lower() in MANAGED_NAMES:
            chosen = f"source_{chosen.lower()}"
        base, number = chosen, 2
        while chosen.lower() in used:
            chosen, number = f"{base}_{number}", number + 1
        used.add(chosen.lower())
        mapping[name] = chosen
    return mapping


@dataclass
class Inferred:
    """The fields inferred from a source, and how its columns map to them."""

    annotations: dict[str, Any]
    source_columns: dict[str, str]  # source column -> field, where they differ
    sampled: int | None = None  # rows the types were inferred from, when the source has more
    renames: list[str] = field(default_factory=list)  # each renamed column, as printed

    def describe_renames(self, header: dict[str, str]) -> None:
        """``renames`` from ``source_columns`` and a CSV header's names as read (``distinct_names``:
        read name -> the header's own name and place)."""
        names = dict.fromkeys([*header, *self.source_columns])
        self.renames = [f"{header.get(n, repr(n))} -> {self.source_columns.get(n, n)}" for n in names]


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


class _FirstRows:
    """A source's batches up to ``limit`` rows (all when None); ``cut`` tells whether rows were left."""

    def __init__(self, batches: Iterable[pa.RecordBatch], limit: int | None):
        self.batches, self.limit, self.cut = batches, limit, False

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        batches = iter(self.batches)
        read = 0
        try:
            for batch in batches:
                if self.limit is not None and read >= self.limit:
                    self.cut = True  # a batch beyond the sample: the file has more rows
                    return
                kept = batch if self.limit is None else batch.slice(0, self.limit - read)
                read += kept.num_rows
                yield kept
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # stop the file's reader now, not when it is collected


def infer_model(source: Any, options: ReadOptions | None = None, sample: int | None = SAMPLE_ROWS) -> Inferred:
    """Fields and column mapping from the data: a file's first ``sample`` rows (all of them when
    None; Parquet statistics when present, which need no rows), a frame's every row."""
    options = options or ReadOptions()
    if _is_csv(source):
        options = csv_source(source, options=options).options  # rename={"": ...} names a header's empty name
    plain = replace(options, rename={})  # read the source's own names
    footer = _parquet_nulls(source) if _is_parquet(source) and options.columns is None else None
    columns: dict[str, _Column] = {}
    ids: list[pa.Array] = []
    rows, sampled = 0, None
    if footer is not None:
        schema, nulls = footer
        columns = {f.name: _Column(kinds=[], arrow=f.type, nulls=nulls.get(f.name, False)) for f in schema}
        key = _id_column(schema.names)
        if key is not None:
            ids = [b.column(0) for b in parquet_source(source, columns=[key])]
    else:
        text = _is_csv(source)
        size = min(sample or DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE)
        if text:
            batches = csv_source(source, options=plain, batch_size=size)
        elif _is_parquet(source):
            batches = parquet_source(source, options=plain, batch_size=size)
        else:
            batches, sample = open_input(source, None, options=plain), None  # in memory: every row
        first = _FirstRows(batches, sample)
        for batch in first:
            rows += batch.num_rows
            for name, array in zip(batch.schema.names, batch.columns, strict=True):
                column = columns.get(name)
                if column is None:
                    typed = not (text and is_text(array.type))
                    column = columns[name] = _Column(kinds=[], arrow=array.type) if typed else _Column()
                column.nulls = column.nulls or array.null_count > 0
                if column.arrow is None:
                    column.narrow(array, options)
                if name == _id_column(batch.schema.names):
                    ids.append(array)
        if not rows:
            raise ValidationError(f"{batches.label} has no rows to infer a model from")
        sampled = rows if first.cut else None
    inferred = _annotations(columns, ids, options)
    inferred.sampled = sampled
    inferred.describe_renames(_header_names(source, options) if _is_csv(source) else {})
    return inferred


def _header_names(source: Any, options: ReadOptions) -> dict[str, str]:
    """The columns a CSV header names otherwise than they are read (empty or repeated names)."""
    raw, _ = raw_csv_header(matching_paths(source)[0], options)
    return {
        n: f"{r!r} (column {i})" for i, (r, n) in enumerate(zip(raw, distinct_names(raw), strict=True), 1) if r != n
    }


def _annotations(columns: dict[str, _Column], ids: list[pa.Array], options: ReadOptions) -> Inferred:
    kinds = {name: c.python_type() if c.arrow is None else _python_type(name, c.arrow) for name, c in columns.items()}
    rename = dict(options.rename)
    key = _id_column(list(columns))
    if key is not None and key not in rename and kinds[key] is int and _unique_keys(ids):
        rename[key] = "id"
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


def _id_column(names: list[str]) -> str | None:
    """The source column that may be the key: the first named ``id`` in any case."""
    return next((n for n in names if n.lower() == "id"), None)


def _unique_keys(ids: list[pa.Array]) -> bool:
    """Whether the id column holds an integer in every row, each once."""
    import polars as pl

    if not ids:
        return False
    values = pl.concat([pl.Series(values=parse_text(a, pa.int64(), None, ReadOptions())) for a in ids])
    return values.null_count() == 0 and values.n_unique() == len(values)


__all__ = ["SAMPLE_ROWS", "Inferred", "column_names", "identifier", "infer_model"]


def infer_class(source: Any, name: str, sample: int | None, options: dict[str, Any]) -> type:
    """``DataFlow.model_from``'s class, not registered yet (the CLI widens a model inferred from a
    sample): reader options in ``options`` read the source, the others become ``__dataflow__``."""
    reading = {k: options.pop(k) for k in list(options) if k in ReadOptions.names()}
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 1):
        raise ValidationError(f"model_from({name}): sample takes a positive number of rows or None, got {sample!r}")
    inferred = infer_model(source, ReadOptions.from_params(reading, f"model_from({name})"), sample)
    origin = source if isinstance(source, str) else type(source).__name__
    renamed = ", ".join(inferred.renames)
    if inferred.source_columns:
        options["source_columns"] = inferred.source_columns
    doc = f"Inferred from {origin}."
    if inferred.sampled is not None:
        options["sampled_rows"] = inferred.sampled
        first = f"the first {inferred.sampled:,} rows of {origin}"
        print(f"{name}: types inferred from {first}; pass sample=None to scan all")
        doc = f"Types inferred from {first}."
    if renamed:
        print(f"{name}: columns renamed {renamed}")
    namespace = {
        "__annotations__": inferred.annotations,
        "__dataflow__": options,
        "__module__": "dataflow_nb.dataflow",  # where model_from made it, as before this function moved here
        "__doc__": doc + (f" Columns renamed: {renamed}." if renamed else ""),
    }
    return type(name, (), namespace)
