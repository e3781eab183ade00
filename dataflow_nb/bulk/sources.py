"""Inputs of bulk nodes as lazy streams of Arrow record batches: files, frames, tables, lists.

Nothing here reads a file whole: CSV (plain or gzip) streams block by block through pyarrow's
reader, Parquet row group by row group. Frames and tables already in memory are sliced into
batches without copying.
"""

from __future__ import annotations

import csv
import glob
import gzip
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.spec import MISSING, Field

DEFAULT_BATCH_SIZE = 50_000


@dataclass
class BatchSource:
    """Record batches, read lazily, with the totals a progress bar shows."""

    label: str
    open_batches: Callable[[], Iterator[pa.RecordBatch]]
    total_rows: int | None = None
    total_bytes: int | None = None
    bytes_read: Callable[[], int] = field(default=lambda: 0)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self.open_batches()

    def __repr__(self) -> str:
        rows = f", {self.total_rows:,} rows" if self.total_rows is not None else ""
        size = f", {self.total_bytes / 1e6:,.1f} MB" if self.total_bytes else ""
        return f"BatchSource({self.label}{rows}{size})"


def _paths(pattern: str | os.PathLike[str]) -> list[Path]:
    text = os.fspath(pattern)
    matches = sorted(glob.glob(os.path.expanduser(text))) if glob.has_magic(text) else [os.path.expanduser(text)]
    if not matches:
        raise ValidationError(f"no file matches {text!r}")
    missing = [m for m in matches if not Path(m).is_file()]
    if missing:
        raise ValidationError(f"file not found: {missing[0]!r}")
    return [Path(m) for m in matches]


class _Counter:
    """Bytes read so far across the files of one source (compressed bytes for gzip)."""

    def __init__(self) -> None:
        self.done = 0
        self.current: Any = None

    def __call__(self) -> int:
        return self.done + (self.current.tell() if self.current is not None and not self.current.closed else 0)


def _csv_header(path: Path, delimiter: str) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        try:
            return next(csv.reader(handle, delimiter=delimiter))
        except StopIteration:
            raise ValidationError(f"{path}: the CSV file is empty (no header row)") from None
        except (UnicodeDecodeError, gzip.BadGzipFile, OSError) as exc:
            raise ValidationError(f"{path}: cannot read the CSV header ({exc})") from None


def csv_source(
    pattern: str | os.PathLike[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    delimiter: str = ",",
    infer_types: bool = False,
) -> BatchSource:
    """CSV (``.csv`` or ``.csv.gz``) files as batches; values stay text unless ``infer_types``.

    Text lets a bulk node cast each value to its model type and report the ones that do not fit;
    an empty unquoted field is NULL and ``""`` an empty string, as in PostgreSQL's COPY.
    """
    from pyarrow import csv as pacsv

    paths = _paths(pattern)
    counter = _Counter()

    def batches() -> Iterator[pa.RecordBatch]:
        for path in paths:
            names = _csv_header(path, delimiter)
            raw = open(path, "rb")  # noqa: SIM115 - closed below, after the reader is done
            counter.current = raw
            stream = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "gzip") if path.suffix == ".gz" else raw
            convert = pacsv.ConvertOptions(
                column_types=None if infer_types else dict.fromkeys(names, pa.string()),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                null_values=[""],
            )
            # Small blocks: the streaming reader parses ahead of a slower database, block by block.
            block = max(1 << 20, min(4 << 20, batch_size * 64))
            try:
                reader = pacsv.open_csv(
                    stream,
                    read_options=pacsv.ReadOptions(block_size=block),
                    parse_options=pacsv.ParseOptions(delimiter=delimiter),
                    convert_options=convert,
                )
                for batch in reader:
                    yield from _slices(batch, batch_size)
            except pa.ArrowInvalid as exc:
                raise ValidationError(f"{path}: malformed CSV ({exc})") from None
            finally:
                counter.done += path.stat().st_size
                counter.current = None
                raw.close()

    total = sum(p.stat().st_size for p in paths)
    label = str(paths[0]) if len(paths) == 1 else f"{len(paths)} CSV files"
    return BatchSource(label, batches, total_bytes=total, bytes_read=counter)


def parquet_source(
    pattern: str | os.PathLike[str], *, batch_size: int = DEFAULT_BATCH_SIZE, columns: list[str] | None = None
) -> BatchSource:
    """Parquet files as batches, row group by row group."""
    import pyarrow.parquet as pq

    paths = _paths(pattern)
    try:
        # pre_buffer=False: pyarrow's default buffers the whole compressed file before the first batch.
        files = [pq.ParquetFile(p, pre_buffer=False) for p in paths]
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"cannot read Parquet {pattern!s}: {exc}") from None

    def batches() -> Iterator[pa.RecordBatch]:
        for parquet in files:
            yield from parquet.iter_batches(batch_size=batch_size, columns=columns)

    rows = sum(f.metadata.num_rows for f in files)
    label = str(paths[0]) if len(paths) == 1 else f"{len(paths)} Parquet files"
    return BatchSource(label, batches, total_rows=rows, total_bytes=sum(p.stat().st_size for p in paths))


def _slices(batch: pa.RecordBatch, size: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, size):
        yield batch.slice(start, size)


def open_input(
    data: Any, source: Any, *, batch_size: int = DEFAULT_BATCH_SIZE, fields: Mapping[str, Field] | None = None
) -> BatchSource:
    """A bulk node's ``data`` (frame, Arrow, list of dicts, BatchSource) or ``source`` (file path or glob)."""
    if (data is None) == (source is None):
        raise ValidationError("give exactly one of data= (a frame, Arrow table or list of dicts) or source= (a file)")
    if source is not None:
        name = os.fspath(source).lower()
        if name.endswith((".parquet", ".pq")):
            return parquet_source(source, batch_size=batch_size)
        if name.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
            return csv_source(source, batch_size=batch_size, delimiter="\t" if ".tsv" in name else ",")
        raise ValidationError(f"source={source!r}: use a .csv, .csv.gz or .parquet file (or a glob of them)")
    if isinstance(data, BatchSource):
        return data
    table = _to_arrow(data, fields or {})
    if isinstance(table, pa.RecordBatchReader):
        reader = table
        return BatchSource("a record batch reader", lambda: (s for b in reader for s in _slices(b, batch_size)))
    return BatchSource(
        f"{type(data).__name__}", lambda: iter(table.to_batches(max_chunksize=batch_size)), total_rows=table.num_rows
    )


def _records(rows: list[dict[str, Any]], fields: Mapping[str, Field]) -> pa.Table:
    """A list of dicts as columns typed by the model where it can (JSON and UUID values as text)."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    arrays = []
    for name in names:
        field = fields.get(name)
        default = None if field is None or field.default is MISSING else field.default
        values = [row.get(name, default) for row in rows]  # a key left out takes the field's default
        if field is not None and field.type.as_object:
            values = [_as_text(field, v) for v in values]
        try:
            arrays.append(pa.array(values, type=field.type.arrow if field is not None else None))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            try:  # let the model's cast report the bad values row by row
                arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise ValidationError(f"cannot read column {name!r} of the list of dicts: {exc}") from None
    return pa.table(arrays, names=names)


def _as_text(field: Field, value: Any) -> Any:
    try:
        return None if value is None else field.type.to_wire(value)
    except (TypeError, ValueError):
        return value if isinstance(value, str) else repr(value)


def _to_arrow(data: Any, fields: Mapping[str, Field]) -> pa.Table | pa.RecordBatchReader:
    if isinstance(data, pa.Table | pa.RecordBatchReader):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        import polars as pl

        if isinstance(data, pl.LazyFrame):
            data = data.collect()
        return data.to_arrow(compat_level=pl.CompatLevel.oldest())
    if module == "pandas":
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValidationError(f"cannot read the pandas frame as Arrow: {exc}") from None
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return _records(data, fields)
    raise ValidationError(
        f"data of type {type(data).__name__} is not supported: give a polars or pandas frame, an Arrow table, "
        "record batch or RecordBatchReader, a list of dicts, or a reader node's output"
    )
