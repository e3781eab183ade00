"""DuckDB's load job: an INSERT ... SELECT over the Arrow stream, or over the input file itself.

The stream path casts text to UUID and JSON in DuckDB, so every field travels as its own Arrow
type. A bulk create from one Parquet file may instead hand DuckDB the file: DuckDB reads it in
parallel inside the INSERT, with no batch crossing into Python (``typed_read.py`` says which
columns can be; a value that does not fit stops the INSERT). A CSV file is not handed over: the
table's id sequence makes DuckDB run such an INSERT on one thread, while typing CSV text is the
bulk of the work, so the text is typed on the client's side, in parallel, and streamed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataflow_nb.backends.base import CompiledSQL
from dataflow_nb.backends.csv_text import CSVSplitter, csv_query
from dataflow_nb.backends.errors import naming_conflicts
from dataflow_nb.backends.load_job import LoadJob, LoadRules
from dataflow_nb.backends.sql import quoted
from dataflow_nb.backends.typed_read import typed_select
from dataflow_nb.core.load_plan import Batches, FileScan, LoadSource
from dataflow_nb.exceptions import ConflictError, DataflowError

if TYPE_CHECKING:
    from dataflow_nb.core.reading import ReadOptions


class DuckDBLoadRules(LoadRules):
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
            return None  # CSV text is typed by DuckDB on the client's side and streamed (DuckDBLoadJob.scan_file)
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


class DuckDBLoadJob(LoadJob):
    """A load on DuckDB: a create of one file may have DuckDB read and type it itself."""

    rules: DuckDBLoadRules

    def scan_file(self, source: LoadSource) -> bool:
        """Have DuckDB read and type the input file itself, where it can: True when the rows are
        written. A Parquet file is read by the database inside one INSERT; CSV text is typed by
        DuckDB on the client's side, in parallel, and streamed in (an INSERT into a table with an
        id sequence runs on one thread). Bad values stop the read; the rows are then checked as a
        stream would check them (nothing written), so the error is the streamed path's.
        """
        scan = source.file_scan() if self.may_scan() else None
        if scan is None:
            return False
        table = self.model.table_name
        write: Callable[[], int]
        if scan.kind == "csv":
            select = typed_select(scan)
            if select is None:
                return False
            write = partial(self.ingest, table, self._typed_csv(source, scan, select))
        else:
            compiled = self.rules.scan_file(table, scan)
            if compiled is None:
                return False
            write = partial(self._whole_file, source, compiled)
        try:
            rows = write()
        except ConflictError:
            raise
        except DataflowError:
            source.check_rows()  # raises the streamed path's error when it finds bad rows
            raise
        self.report.inserted = rows
        return True

    def _whole_file(self, source: LoadSource, compiled: CompiledSQL) -> int:
        """One statement that reads the file in the database: one batch in the report."""
        bar = source.bar()
        started = time.perf_counter()
        ok = False
        try:
            with naming_conflicts(self.model, self.plan.node):
                rows = self.interruptibly(partial(self.statements.execute_count, compiled))
            bar.update(rows, source.total_bytes)
            ok = True
        finally:
            self.ingested(bar, ok=ok)
        self.report.rows_read += rows
        self.report.batch_log.append((1, rows, time.perf_counter() - started))
        return rows

    def _typed_csv(self, source: LoadSource, scan: FileScan, select: tuple[str, list[Any]]) -> pa.RecordBatchReader:
        """The file's rows typed by DuckDB (``typed_read.py``), with the fields it lacks at their defaults."""
        fields = [c.field for c in scan.columns] + [self.model.fields[n] for n, _ in scan.defaults]
        schema = pa.schema([pa.field(f.name, self.rules.wire_type(f)) for f in fields])
        default_types = [(value, self.model.fields[name].type.arrow) for name, value in scan.defaults]
        splitter = CSVSplitter()
        position = [0]  # bytes of the file read so far, as DuckDB tracks them
        total_bytes = source.total_bytes or 0

        def typed() -> Batches:
            assert scan.options is not None
            with splitter:
                for batch in splitter.typed_batches(scan.path, select, scan.options, scan.batch_size):
                    fraction = splitter.fraction_read()
                    position[0] = int(fraction * total_bytes) if fraction is not None else 0
                    size = batch.num_rows
                    columns = [*batch.columns, *(pa.repeat(pa.scalar(v, t), size) for v, t in default_types)]
                    arrays = [
                        self.rules.to_wire(c.cast(f.type.arrow) if c.type != f.type.arrow else c, s.type)
                        for c, f, s in zip(columns, fields, schema, strict=True)
                    ]
                    yield size, pa.RecordBatch.from_arrays(arrays, schema=schema), []

        bar = source.bar()
        return self.reader(schema, typed(), bar, lambda: position[0] or None, source, on_interrupt=splitter.interrupt)
