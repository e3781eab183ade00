"""Inputs of bulk nodes as lazy streams of Arrow record batches: files, frames, tables, lists.

Nothing here reads a file whole: CSV streams batch by batch through DuckDB's CSV reader (plain,
gzip or zstd; UTF-8 or latin-1), Parquet row group by row group. Frames and tables already in memory are sliced into
batches without copying.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataflow_nb.backends.csv_text import CSVSplitter, bytes_per_row
from dataflow_nb.bulk.reload import files_fingerprint, table_fingerprint
from dataflow_nb.core.reading import ReadOptions
from dataflow_nb.core.spec import MISSING, Field
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.notebook_values import as_list, is_sequence

DEFAULT_BATCH_SIZE = 50_000


@dataclass
class BatchSource:
    """Record batches, read lazily, with the totals a progress bar shows."""

    label: str
    open_batches: Callable[[], Iterator[pa.RecordBatch]]
    total_rows: int | None = None
    total_bytes: int | None = None
    bytes_read: Callable[[], int] = field(default=lambda: 0)
    options: ReadOptions = field(default_factory=ReadOptions)  # how text values are parsed downstream
    file: tuple[str, Path] | None = None  # ("csv" or "parquet", path) when it reads one file
    # The first rows of that file (none of a Parquet file: its columns), as the first batch holds
    # them, read without reading ahead.
    head: Callable[[int], pa.RecordBatch | None] | None = None
    # What the input is, to tell a load of the same source again (``bulk/reload.py``); None: unknown.
    fingerprint: Callable[[], str | None] = field(default=lambda: None)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self.open_batches()

    def __repr__(self) -> str:
        rows = f", {self.total_rows:,} rows" if self.total_rows is not None else ""
        size = f", {self.total_bytes / 1e6:,.1f} MB" if self.total_bytes else ""
        return f"BatchSource({self.label}{rows}{size})"


def matching_paths(pattern: str | os.PathLike[str]) -> list[Path]:
    """The files a path or glob names, sorted; a ValidationError when there are none."""
    text = os.fspath(pattern)
    matches = sorted(glob.glob(os.path.expanduser(text))) if glob.has_magic(text) else [os.path.expanduser(text)]
    if not matches:
        raise ValidationError(f"no file matches {text!r}")
    missing = [m for m in matches if not Path(m).is_file()]
    if missing:
        raise ValidationError(f"file not found: {missing[0]!r}")
    return [Path(m) for m in matches]


def distinct_names(raw: list[str]) -> list[str]:
    """A header's names as DuckDB's reader names them: an empty name is ``column<i>`` (counted
    from 0), a name repeated, or equal to an earlier one but for case, gets ``_1``, ``_2``, ..."""
    names: list[str] = []
    used: set[str] = set()
    repeats: dict[str, int] = {}
    for index, name in enumerate(raw):
        chosen = name or f"column{index}"
        base = chosen
        while chosen.lower() in used:
            repeats[base.lower()] = repeats.get(base.lower(), 0) + 1
            chosen = f"{base}_{repeats[base.lower()]}"
        used.add(chosen.lower())
        names.append(chosen)
    return names


def header_renames(options: ReadOptions, raw: list[str]) -> ReadOptions:
    """``rename`` keyed on the names a file's header holds (``""``, a repeated name's first
    occurrence) as well as on the names it is read under (``distinct_names``)."""
    names = distinct_names(raw)
    given = dict(options.rename)
    for old in options.rename:
        if old not in names and old in raw:
            given[names[raw.index(old)]] = given.pop(old)
    return options if given == dict(options.rename) else replace(options, rename=given)


def csv_header(path: Path, options: ReadOptions) -> tuple[list[str], int]:
    """The column names of a CSV file (its first row after ``skip_rows`` and comment lines), made
    distinct as DuckDB's reader makes them (``distinct_names``).

    Also the rows DuckDB is told to skip: it passes over comment lines itself and counts the rest.
    """
    raw, skip = raw_csv_header(path, options)
    return distinct_names(raw), skip


def raw_csv_header(path: Path, options: ReadOptions) -> tuple[list[str], int]:
    """The header row as the file holds it, and the rows to skip (see ``csv_header``)."""
    encoding = "utf-8-sig" if options.encoding.lower().replace("_", "-") in ("utf-8", "utf8") else options.encoding
    for size in (1 << 16, 1 << 20):  # most headers end in the first 64 kB
        try:
            with pa.input_stream(str(path), compression="detect") as stream:
                head = stream.read(size)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValidationError(f"{path}: cannot read the file ({exc})") from None
        lines = head.decode(encoding, errors="replace").splitlines()
        skipped, lines = lines[: options.skip_rows], lines[options.skip_rows :]
        skip = len(skipped)
        if options.comment_prefix:
            lines = [line for line in lines if not line.startswith(options.comment_prefix)]
            skip = len([line for line in skipped if not line.startswith(options.comment_prefix)])
        if options.quote_char:
            reader = csv.reader(lines, delimiter=options.delimiter, quotechar=options.quote_char)
        else:
            reader = csv.reader(lines, delimiter=options.delimiter, quoting=csv.QUOTE_NONE)
        names = next(reader, None)
        if len(head) < size or reader.line_num < len(lines):  # the whole file, or a header not cut off
            break
    if not names:
        raise ValidationError(f"{path}: the CSV file is empty (no header row)")
    return names, skip


def read_columns(label: str, names: list[str], expected: list[str] | None, options: ReadOptions) -> list[str]:
    """The columns read from one file: those of the first file (or ``columns=``); others an error or left out."""
    wanted = list(options.columns) if options.columns is not None else expected
    if wanted is None:
        return names
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ValidationError(f"{label} has no column(s) {missing} (its columns are {names})")
    extra = [c for c in names if c not in wanted]
    if extra and options.columns is None and options.extra != "ignore":
        raise ValidationError(
            f"{label} has column(s) {extra} that the first file does not have; pass extra='ignore' to leave them out"
        )
    return wanted


def csv_source(
    pattern: str | os.PathLike[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    options: ReadOptions | None = None,
    infer_types: bool = False,
) -> BatchSource:
    """CSV files (plain, ``.gz`` or ``.zst``) as batches of text, split by DuckDB's CSV reader.

    Every option is set, none sniffed, so a row with too few fields or a quote never closed is an
    error with its line. An empty unquoted field and the ``null_values`` markers are null, ``""``
    an empty string; a UTF-8 byte-order mark is dropped. A bulk node parses each column to its
    model type and reports the values that do not fit; ``infer_types`` types them here instead.
    """
    paths = matching_paths(pattern)
    options = (options or ReadOptions()).for_path(paths[0])
    if options.rename:
        options = header_renames(options, raw_csv_header(paths[0], options)[0])
    done = [0]  # bytes read: the files before, and how far into this one DuckDB's reader is

    def batches() -> Iterator[pa.RecordBatch]:
        expected: list[str] | None = None
        finished = 0
        with CSVSplitter() as splitter:
            for path in paths:
                names, skip = csv_header(path, options)
                selected = read_columns(str(path), names, expected, options)
                expected = expected or selected
                size, per_row, rows = path.stat().st_size, bytes_per_row(path) or 0, 0
                for batch in splitter.batches(path, names, selected, skip, options, batch_size):
                    rows += batch.num_rows
                    tracked = (splitter.fraction_read() or 0) * size
                    done[0] = finished + int(min(max(tracked, rows * per_row), size))
                    yield _typed(batch) if infer_types else batch
                finished += size
                done[0] = finished

    total = sum(p.stat().st_size for p in paths)
    label = str(paths[0]) if len(paths) == 1 else f"{len(paths)} CSV files"

    def head(rows: int) -> pa.RecordBatch | None:
        path = paths[0]
        names, skip = csv_header(path, options)
        with CSVSplitter() as splitter:
            return one_batch(
                splitter.head(path, names, read_columns(str(path), names, None, options), skip, options, rows)
            )

    one = len(paths) == 1
    return BatchSource(
        label,
        batches,
        total_bytes=total,
        bytes_read=lambda: done[0],
        options=options,
        file=("csv", paths[0]) if one else None,
        head=head if one and not infer_types else None,
        fingerprint=lambda: files_fingerprint(paths),
    )


def one_batch(table: pa.Table) -> pa.RecordBatch | None:
    """A table's rows as one batch; None when it has none."""
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches and batches[0].num_rows else None


def _typed(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Text columns typed as polars would infer them (CSVReaderNode ``infer_types=True``)."""
    import polars as pl

    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    typed = pl.read_csv(frame.write_csv().encode(), try_parse_dates=True, infer_schema_length=None)
    return typed.to_arrow(compat_level=pl.CompatLevel.oldest()).to_batches()[0]


def parquet_source(
    pattern: str | os.PathLike[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    columns: list[str] | None = None,
    options: ReadOptions | None = None,
) -> BatchSource:
    """Parquet files as batches, row group by row group; every file must have the first one's columns."""
    import pyarrow.parquet as pq

    options = options or ReadOptions()
    if columns is not None:
        options = ReadOptions.from_params({"columns": columns}, "ParquetReaderNode", base=options)
    paths = matching_paths(pattern)
    try:
        # pre_buffer=False: pyarrow's default buffers the whole compressed file before the first batch.
        files = [pq.ParquetFile(p, pre_buffer=False) for p in paths]
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"cannot read Parquet {pattern!s}: {exc}") from None
    expected: list[str] | None = None
    selected: list[list[str]] = []
    for path, parquet in zip(paths, files, strict=True):
        chosen = read_columns(str(path), parquet.schema_arrow.names, expected, options)
        expected = expected or chosen
        selected.append(chosen)

    def batches() -> Iterator[pa.RecordBatch]:
        for parquet, chosen in zip(files, selected, strict=True):
            for batch in parquet.iter_batches(batch_size=batch_size, columns=chosen):
                yield _renamed(batch, options.rename)

    rows = sum(f.metadata.num_rows for f in files)
    label = str(paths[0]) if len(paths) == 1 else f"{len(paths)} Parquet files"

    def head(size: int) -> pa.RecordBatch | None:
        # No rows: a Parquet file's types are in its schema, which is all a look ahead needs.
        if not files[0].metadata.num_rows:
            return None
        schema = pa.schema([files[0].schema_arrow.field(n) for n in selected[0]])
        empty = pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)  # no pandas import
        return _renamed(empty, options.rename)

    size = sum(p.stat().st_size for p in paths)
    one = len(paths) == 1
    return BatchSource(
        label,
        batches,
        total_rows=rows,
        total_bytes=size,
        options=options,
        file=("parquet", paths[0]) if one else None,
        head=head if one else None,
        fingerprint=lambda: files_fingerprint(paths),
    )


def _renamed(batch: pa.RecordBatch, rename: Mapping[str, str]) -> pa.RecordBatch:
    if not rename or not any(n in rename for n in batch.schema.names):
        return batch
    return batch.rename_columns([rename.get(n, n) for n in batch.schema.names])


def _slices(batch: pa.RecordBatch, size: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, size):
        yield batch.slice(start, size)


def open_input(
    data: Any,
    source: Any,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fields: Mapping[str, Field] | None = None,
    options: ReadOptions | None = None,
) -> BatchSource:
    """A bulk node's ``data`` (frame, Arrow, list of dicts, BatchSource) or ``source`` (file path or glob)."""
    if (data is None) == (source is None):
        raise ValidationError("give exactly one of data= (a frame, Arrow table or list of dicts) or source= (a file)")
    options = options or ReadOptions()
    if source is not None:
        name = os.fspath(source).lower()
        if name.endswith((".parquet", ".pq")):
            return parquet_source(source, batch_size=batch_size, options=options)
        if name.removesuffix(".gz").removesuffix(".zst").endswith((".csv", ".tsv", ".txt")):
            return csv_source(source, batch_size=batch_size, options=options)
        raise ValidationError(
            f"source={source!r}: use a .csv, .tsv, .csv.gz, .csv.zst or .parquet file (or a glob of them)"
        )
    if isinstance(data, BatchSource):
        return data
    table = _to_arrow(data, fields or {})
    if isinstance(table, pa.RecordBatchReader):
        reader = table
        return BatchSource(
            "a record batch reader",
            lambda: (_renamed(s, options.rename) for b in reader for s in _slices(b, batch_size)),
            options=options,
        )
    if options.columns is not None:
        table = table.select(list(options.columns))
    return BatchSource(
        f"{type(data).__name__}",
        lambda: (_renamed(b, options.rename) for b in table.to_batches(max_chunksize=batch_size)),
        total_rows=table.num_rows,
        options=options,
        # A frame or table is a source a cell may load again; rows listed in code are not.
        fingerprint=(lambda: None) if isinstance(data, list) or is_sequence(data) else lambda: table_fingerprint(table),
    )


def _records(rows: list[dict[str, Any]], fields: Mapping[str, Field]) -> pa.Table:
    """A list of dicts as columns typed by the model where it can (JSON, UUID and choices as text)."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    arrays = []
    for name in names:
        field = fields.get(name)
        default = None if field is None or field.default is MISSING else field.default
        values = [row.get(name, default) for row in rows]  # a key left out takes the field's default
        if field is not None and (field.type.as_object or field.type.choices is not None):
            values = [_as_text(field, v) for v in values]  # an Enum member as its value, not 'Color.red'
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
    if is_sequence(data):  # a Series or numpy array of ids: BulkDelete's input rows, keyed on id
        return pa.table({"id": pa.array(as_list(data))})
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
        "record batch or RecordBatchReader, a list of dicts, a Series or array of ids, or a reader node's output"
    )
