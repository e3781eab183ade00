"""CSV files read by DuckDB's CSV reader, the same for both backends (DuckDB is a core dependency).

Every option is set and nothing is sniffed, so the reader stops at a malformed row with its line:
a quote never closed, too few or too many fields. Values stay text for the bulk node to parse, or
are typed by DuckDB's SQL (``typed_read.py``). The reads run on cursors of one in-memory DuckDB
of this process, started on first use, never on a user's database (whose settings they need).
"""

from __future__ import annotations

import contextlib
import csv
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataflow_nb.backends.load_plan import BAD_VALUE
from dataflow_nb.backends.sql import quoted
from dataflow_nb.exceptions import ValidationError

if TYPE_CHECKING:
    from dataflow_nb.backends.load_plan import CSVOptions


# Reads of a CSV file stream in chunks of this many bytes: DuckDB hands a query's rows on in order
# only once a chunk is read, so smaller chunks start a load's writes sooner (DuckDB's default is
# 16 times max_line_size, 32 MB: a small file's writes would wait for all of it). It cannot be
# smaller than max_line_size, 2 MB, the longest line DuckDB reads either way.
BUFFER_SIZE = 2 << 20

COMPRESSED = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd")  # gzip, zstd: their text is not their bytes

_reader: tuple[int, Any] | None = None  # (process id, DuckDB instance): a forked child starts its own
_reader_lock = threading.Lock()


def reading_database() -> Any:
    """This process's in-memory DuckDB for reading files (starting one costs ~15 ms a load); its
    parser also reads SQL for the DuckDB backend's checks (``duckdb_sql.py``). A cursor of it."""
    global _reader
    import duckdb

    with _reader_lock:
        if _reader is None or _reader[0] != os.getpid():
            database = duckdb.connect()
            database.execute("SET TimeZone = 'UTC'")  # naive timestamps are UTC, as the stream reads them
            # DuckDB turns a long constant list (a boolean column's spellings) into a join, which does
            # not keep the file's row order; ids must follow the file.
            database.execute("SET disabled_optimizers = 'in_clause'")
            _reader = (os.getpid(), database)
        return _reader[1].cursor()


class CSVSplitter:
    """A DuckDB cursor that reads CSV files as batches of text columns, or of typed ones."""

    def __init__(self) -> None:
        import duckdb

        # DuckDB's Arrow reader raises OSError for an error met after its first batch.
        self.error: tuple[type[Exception], ...] = (duckdb.Error, OSError)
        self.connection = reading_database()
        # Progress tracked, never printed: ``fraction_read`` tells tqdm how far into the file the read
        # is. In a Jupyter kernel without ipywidgets DuckDB refuses any progress-bar setting
        # (ipywidgets is a core dependency, but a user's kernel may lack it): no fraction then.
        with contextlib.suppress(duckdb.InvalidInputException):
            self.connection.execute("SET enable_progress_bar_print = false")
            self.connection.execute("SET enable_progress_bar = true")

    def __enter__(self) -> CSVSplitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.connection.close()

    def fraction_read(self) -> float | None:
        """How far the running read is into its file (0 to 1, from DuckDB's bytes read); None when
        DuckDB does not track it. Call it on the thread that reads the batches."""
        done = float(self.connection.query_progress())
        return min(done, 100.0) / 100 if done >= 0 else None

    def interrupt(self) -> None:
        """Stop the running read (from any thread): a load interrupted stops reading at once."""
        self.connection.interrupt()

    def batches(
        self, path: Path, names: list[str], selected: list[str], skip: int, options: CSVOptions, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """The ``selected`` columns (renamed per ``options.rename``) of a file whose header is ``names``."""
        query, values = csv_query(str(path), names, selected, skip, options)
        try:
            yield from self.connection.sql(query, params=values).to_arrow_reader(batch_size)
        except self.error as exc:
            raise ValidationError(f"{path}: {_csv_problem(str(exc), options)}") from None

    def typed_batches(
        self, path: str, select: tuple[str, list[Any]], options: CSVOptions, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """The rows of ``typed_read.typed_select``'s query, in the file's order; a value that does not
        fit raises ValidationError naming ``BAD_VALUE`` (the caller finds the rows)."""
        sql, values = select
        try:
            yield from self.connection.sql(sql, params=values).to_arrow_reader(batch_size)
        except self.error as exc:
            problem = BAD_VALUE if BAD_VALUE in str(exc) else _csv_problem(str(exc), options)
            raise ValidationError(f"{path}: {problem}") from None

    def head(
        self, path: Path, names: list[str], selected: list[str], skip: int, options: CSVOptions, rows: int
    ) -> pa.Table:
        """The first ``rows`` rows, as ``batches`` gives them (DuckDB stops reading after them)."""
        query, values = csv_query(str(path), names, selected, skip, options)
        try:
            return self.connection.sql(f"{query} LIMIT ?", params=[*values, rows]).to_arrow_table()
        except self.error as exc:
            raise ValidationError(f"{path}: {_csv_problem(str(exc), options)}") from None


def bytes_per_row(path: Path) -> float | None:
    """The average bytes of a line in the file's first megabyte; None for a compressed file (its
    bytes are not its text). With the rows read, it tells how far into the file a read is where
    DuckDB does not track it (a plain streaming read)."""
    with open(path, "rb") as file:
        head = file.read(1 << 20)
    if head.startswith(COMPRESSED) or not head:
        return None
    return len(head) / max(head.count(b"\n"), 1)


def csv_query(
    path: str, names: list[str], selected: list[str], skip: int, options: CSVOptions
) -> tuple[str, list[Any]]:
    """DuckDB's ``read_csv`` with every option set (no sniffing): all columns text, errors with their line."""
    encoding = options.encoding.lower().replace("_", "-").replace("utf8", "utf-8").replace("-sig", "")
    encoding = "latin-1" if encoding in ("latin1", "iso-8859-1") else encoding
    settings = {
        "auto_detect": "false",
        "header": "true",
        "delim": "?",
        "quote": "?",
        "escape": "?",
        "skip": str(skip),
        "nullstr": "?",
        "allow_quoted_nulls": "false",
        "encoding": "?",
        "columns": "?",
        "compression": "'auto'",
        "buffer_size": str(BUFFER_SIZE),
    }
    values: list[Any] = [options.delimiter, options.quote_char or "", options.quote_char or ""]
    values += [["", *options.null_values], encoding, dict.fromkeys(names, "VARCHAR")]
    if options.comment_prefix:
        settings["comment"] = "?"
        values.append(options.comment_prefix)
    arguments = ", ".join(f"{k} = {v}" for k, v in settings.items())
    columns = ", ".join(f"{quoted(n)} AS {quoted(options.rename.get(n, n))}" for n in selected)
    return f"SELECT {columns} FROM read_csv(?, {arguments})", [path, *values]


def _csv_problem(message: str, options: CSVOptions) -> str:
    """DuckDB's CSV error as one sentence: the line, the problem, the line's text."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    where = next((line for line in lines if "CSV Error on Line:" in line), None)
    if where is None:
        return f"cannot read the CSV file ({lines[0] if lines else message})"
    line = where.split("CSV Error on Line:")[1].strip()
    original = next((x.removeprefix("Original Line:").strip() for x in lines if x.startswith("Original Line")), "")
    if any("unterminated quote" in x for x in lines):
        problem = "a quoted field is never closed"
    else:
        problem = next((x for x in lines if x.startswith("Expected Number of Columns")), "a malformed row")
        if problem.startswith("Expected Number of Columns") and original:
            # DuckDB stops counting one field past the expected number: count them all.
            expected = problem.split("Found:")[0].strip()
            problem = f"{expected} Found: {_field_count(original, options)}"
    return f"malformed CSV at line {line}: {problem} (line starts {original[:80]!r})"


def _field_count(line: str, options: CSVOptions) -> int:
    """The fields of one CSV line, read with the file's delimiter and quote."""
    quote = options.quote_char or None
    try:
        if quote is None:
            return len(next(csv.reader([line], delimiter=options.delimiter, quoting=csv.QUOTE_NONE), []))
        return len(next(csv.reader([line], delimiter=options.delimiter, quotechar=quote), []))
    except (csv.Error, TypeError):  # a delimiter of several characters, which DuckDB takes and csv does not
        return line.count(options.delimiter) + 1
