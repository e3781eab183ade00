"""DuckDB's load job: an INSERT ... SELECT over the Arrow stream, or over a Parquet file itself.

The stream path casts text to UUID and JSON in DuckDB, so every field travels as its own Arrow
type. A bulk create from one Parquet file may instead hand DuckDB the file: DuckDB reads it in
parallel inside the INSERT, with no batch crossing into Python (``typed_read.py`` says which
columns can be; a value that does not fit stops the INSERT). A CSV file is not handed over: the
table's id sequence makes DuckDB run such an INSERT on one thread, while typing CSV text is the
bulk of the work, so the text is typed on the client's side, in parallel, and streamed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dataflow_nb.backends.base import CompiledSQL
from dataflow_nb.backends.csv_text import csv_query
from dataflow_nb.backends.load_job import FileScan, LoadJob
from dataflow_nb.backends.sql import quoted
from dataflow_nb.backends.typed_read import typed_select

if TYPE_CHECKING:
    from dataflow_nb.core.reading import ReadOptions


class DuckDBLoadJob(LoadJob):
    """Every field as its own Arrow type (UUID and JSON as text, cast by DuckDB); no row-level
    security, so nothing is staged; one Parquet file read by DuckDB itself where it can."""

    def __init__(self, *, reads_files: bool = True) -> None:
        self.reads_files = reads_files  # False: SQL on this database reaches no file (enable_external_access)

    def head_file(
        self, path: str, header: Sequence[str], selected: Sequence[str], skip: int, options: ReadOptions, rows: int
    ) -> CompiledSQL | None:
        if not self.reads_files:
            return None
        # The run's own connection reads it: no second DuckDB instance to start (a tenth of a small load).
        query, values = csv_query(path, list(header), list(selected), skip, options)
        binds = [*values, rows]
        return CompiledSQL(
            f"{query} LIMIT ?",
            tuple(f"p{i}" for i in range(len(binds))),
            (None,) * len(binds),
            tuple(binds),
            True,
            reads=frozenset(),  # a file, no table: never answered from the result cache
            writes=frozenset(),
        )

    def scan_file(self, table: str, scan: FileScan) -> CompiledSQL | None:
        if scan.kind != "parquet" or not self.reads_files:
            return None  # CSV text is typed by DuckDB on the client's side and streamed (BulkLoad.scan)
        select = typed_select(scan)
        if select is None:
            return None
        sql, values = select
        defaults = [name for name, _ in scan.defaults]
        columns = ", ".join(quoted(n) for n in [*(c.field.name for c in scan.columns), *defaults])
        outputs = ", ".join(["typed.*", *("?" for _ in defaults)])
        # Positional parameters in the order they appear: the defaults', then the file's.
        binds = [*(value for _, value in scan.defaults), *values]
        return CompiledSQL(
            f"INSERT INTO {quoted(table)} ({columns}) SELECT {outputs} FROM ({sql}) AS typed",
            tuple(f"p{i}" for i in range(len(binds))),
            (None,) * len(binds),
            tuple(binds),
            False,
            reads=frozenset(),
            writes=frozenset({table}),
        )
