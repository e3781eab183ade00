"""Bulk writes inside the run's transaction: stream conformed batches, then set-based SQL.

Create streams straight into the table (PostgreSQL: ADBC ``adbc_ingest``, a binary COPY;
DuckDB: an Arrow scan). Upsert, update and delete stream into a temporary staging table and
finish with one statement each (``INSERT ... ON CONFLICT``, ``UPDATE ... FROM``,
``DELETE ... USING``), so the database does the work and the counts are exact.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable, DropTable

from dataflow_nb.backends.base import CompiledSQL, compile_statement
from dataflow_nb.backends.csv_text import CSVSplitter
from dataflow_nb.backends.deadline import call_interruptibly
from dataflow_nb.backends.errors import naming_conflicts
from dataflow_nb.backends.load_job import FileScan, ScanColumn
from dataflow_nb.backends.sql import Insert, distinct_on, insert
from dataflow_nb.backends.typed_read import typed_select
from dataflow_nb.bulk.ahead import ReadAhead
from dataflow_nb.bulk.conform import ROW, Conformer, Rejection, rejection_error
from dataflow_nb.bulk.progress import Progress, wanted
from dataflow_nb.bulk.report import BulkReport
from dataflow_nb.bulk.sources import BatchSource, csv_header, one_batch, read_columns
from dataflow_nb.core.spec import Field, ModelSpec
from dataflow_nb.exceptions import ConflictError, DataflowError, NotFoundError
from dataflow_nb.observers.digests import InputDigests
from dataflow_nb.query.scope import scope_clauses, tenant_of, upsert_assignments, upsert_differs

T = TypeVar("T")
# Seconds an interrupted ingest gets to end (its streams stopped) before the run stops waiting.
INTERRUPT_GRACE = 10.0

if TYPE_CHECKING:
    from dataflow_nb.protocols import Run, RunDatabase


class KeyHashes:
    """Whether the rows streamed repeat a key, told on the client while they stream.

    Each row's key is kept as a 64-bit hash (8 bytes a row, whatever the key's width). Equal keys
    always hash alike, so a repeat is never missed; two different keys that collide only make the
    load take the careful way (``BulkLoad.latest``). Only keys whose values compare in Arrow as in
    the database are hashed (ints, text, booleans, dates and times, bytes): a float's ``-0.0``, a
    decimal's scale or a UUID's spelling could differ, and those loads always take the careful way.
    """

    MAX_ROWS = 8_000_000  # 64 MB of hashes; a larger input takes the careful way

    def __init__(self, model: ModelSpec, keys: Sequence[str]):
        fields = [model.fields[k] for k in keys if k != "tenant_id"]  # one tenant a run: a constant
        self.names = [f.name for f in fields]
        self.usable = bool(fields) and all(_compares_as_stored(f) for f in fields)
        self.rows = 0
        self.hashes: list[Any] = []

    def add(self, batch: pa.RecordBatch) -> None:
        if not self.usable:
            return
        self.rows += batch.num_rows
        if self.rows > self.MAX_ROWS:
            self.usable, self.hashes = False, []
            return
        import polars as pl

        keys = pl.from_arrow(batch.select(self.names))
        assert isinstance(keys, pl.DataFrame)
        self.hashes.append(keys.hash_rows(seed=0))

    def unique(self) -> bool:
        """True when no key was written twice (checked on every row streamed)."""
        if not self.usable:
            return False
        if not self.hashes:
            return True
        import polars as pl

        hashes = pl.concat(self.hashes)
        return bool(hashes.n_unique() == hashes.len())


def _compares_as_stored(field: Field) -> bool:
    kind = field.type.arrow
    if field.type.as_object:
        return False
    checks = [pa.types.is_integer, pa.types.is_string, pa.types.is_boolean, pa.types.is_binary, pa.types.is_date]
    checks += [pa.types.is_timestamp, pa.types.is_time]
    return any(bool(check(kind)) for check in checks)


class BulkLoad:
    """One bulk node's run: conformed batches in, a report out."""

    def __init__(
        self,
        ctx: Run,
        db: RunDatabase,
        model: ModelSpec,
        node: str,
        *,
        on_error: str,
        progress: bool | None,
        report: BulkReport,
    ):
        self.ctx, self.db, self.model, self.node = ctx, db, model, node
        self.on_error = on_error
        self.progress = progress
        self.report = report
        self.tenant = tenant_of(model, ctx.scope)
        self.capabilities = db.backend.capabilities
        self.job = db.backend.load_job  # what this database's ingest accepts
        self.error: BaseException | None = None  # what the stream raised, before a driver wrapped it
        self.pending: list[ReadAhead[Any]] = []  # streams made and not yet ingested
        self.bars: list[Progress] = []  # their bars: red when the ingest fails, else full until the node ends
        self.filled: list[Progress] = []  # bars of ingests done, ended with the node's outcome (end_bars)

    # -- streaming -------------------------------------------------------------------------------

    def stream(
        self,
        source: BatchSource,
        raw_batches: Iterator[pa.RecordBatch],
        conformer: Conformer,
        *,
        with_row: bool = False,
        keys: KeyHashes | None = None,
    ) -> pa.RecordBatchReader:
        """Conformed batches as a reader the database pulls from; bad rows handled per ``on_error``.

        ``keys`` hashes each written row's key on the way, to tell afterwards whether any repeats.
        """
        names = self.stamped(conformer.output)
        fields = [pa.field(n, self.job.wire_type(self.model.fields[n])) for n in names]
        schema = pa.schema([pa.field(ROW, pa.int64()), *fields] if with_row else fields)
        bar = Progress(
            wanted(self.progress),
            description=f"{self.node}",
            total_rows=source.total_rows,
            total_bytes=source.total_bytes,
        )

        digest = None
        if self.db.security_enabled:  # the audit keeps a digest of what a bulk node writes
            keeper = self.ctx.observer(InputDigests, self.db)
            digest = None if keeper is None else keeper.running(self.ctx.node_id or "")

        tenant = None if self.tenant is None else pa.scalar(self.tenant, pa.string())

        def conformed() -> Iterator[tuple[int, pa.RecordBatch, list[Rejection]]]:
            """Each input batch in the model's types, with its bad rows (on the read-ahead thread)."""
            first_row = 1
            for raw in raw_batches:
                batch, rejected = conformer.conform(raw, first_row)
                first_row += raw.num_rows
                if keys is not None:
                    keys.add(batch)
                columns = list(batch.columns)[0 if with_row else 1 :]
                if tenant is not None:
                    columns.append(pa.repeat(tenant, batch.num_rows))
                columns = [self.job.to_wire(c, f.type) for c, f in zip(columns, schema, strict=True)]
                yield raw.num_rows, pa.RecordBatch.from_arrays(columns, schema=schema), rejected

        return self._reader(schema, conformed(), bar, source.bytes_read, digest)

    def _reader(
        self,
        schema: pa.Schema,
        items: Iterator[tuple[int, pa.RecordBatch, list[Rejection]]],
        bar: Progress,
        bytes_read: Callable[[], int | None],
        digest: Any = None,
        on_interrupt: Callable[[], None] | None = None,
    ) -> pa.RecordBatchReader:
        """The batches ``items`` makes on a read-ahead thread (rows read, batch, bad rows), as a
        reader the database pulls from; the report counts them on the way. ``on_interrupt`` stops
        the read ``items`` may be blocked in (Ctrl-C)."""
        ahead = ReadAhead(items, on_interrupt=on_interrupt)  # making batches starts now, while the ingest gets ready
        self.pending.append(ahead)
        self.bars.append(bar)

        def batches() -> Iterator[pa.RecordBatch]:
            started = time.perf_counter()
            try:
                for number, (read, out, rejected) in enumerate(ahead, start=1):
                    self.report.rows_read += read
                    if rejected:
                        self._handle(rejected)
                    now = time.perf_counter()
                    self.report.batch_log.append((number, out.num_rows, now - started))
                    started = now
                    bar.update(read, bytes_read())
                    if digest is not None:
                        digest.update(out)
                    yield out
            except BaseException as exc:
                self.error = exc  # drivers wrap what a stream raises: keep the original to re-raise
                raise
            finally:
                ahead.close()

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _handle(self, rejected: list[Rejection]) -> None:
        if self.on_error == "rollback":
            raise rejection_error(self.node, self.model, rejected)
        self.report.rows_rejected += len({r.row for r in rejected})
        if self.on_error == "quarantine":
            self.report.rejections.extend(rejected)

    def ingest(self, table: str, reader: pa.RecordBatchReader, *, temporary: bool = False) -> int:
        """Stream into a table; an error raised by the stream itself comes back unwrapped.

        The ingest runs on a thread while this one waits: a driver goes on reading a stream after
        Ctrl-C cancelled its statement, so Ctrl-C stops the streams themselves (and the reads
        they wait for), and the ingest ends within moments with the KeyboardInterrupt.
        """
        self.error = None
        ok = False
        try:
            with naming_conflicts(self.model, self.node):
                ingest = partial(self.ctx.ingest, self.db, table, reader, temporary=temporary)
                rows = call_interruptibly(ingest, on_interrupt=self._interrupt_streams, grace=INTERRUPT_GRACE)
            ok = True
            return rows
        except Exception as exc:
            if self.error is not None and self.error is not exc:
                raise self.error from None
            raise
        finally:
            while self.pending:  # a stream the ingest failed to read to its end stops reading ahead
                self.pending.pop().close()
            while self.bars:
                self._ingested(self.bars.pop(), ok=ok)

    def _ingested(self, bar: Progress, *, ok: bool) -> None:
        """An ingest's bar: full while the node's statements after it run (a Ctrl-C or an error
        there still rolls the rows back, and the bar says so), red at once when it failed."""
        if ok:
            bar.fill()
            self.filled.append(bar)
        else:
            bar.close(ok=False)

    def end_bars(self, *, ok: bool) -> None:
        """The node ended: its bars close, red and saying the rows were rolled back unless ``ok``."""
        while self.filled:
            self.filled.pop().close(ok=ok)

    def _interrupt_streams(self) -> None:
        """Ctrl-C during an ingest: the streams stop, and so does the statement (PostgreSQL would
        otherwise take the COPY's rows already sent to the end before the rollback begins)."""
        for ahead in self.pending:
            ahead.interrupt()
        self.ctx.connection(self.db).interrupt()

    def scan(self, source: BatchSource, conformer: Conformer, first: pa.RecordBatch, batch_size: int) -> bool:
        """Have DuckDB read and type the input file itself, where it can: True when the rows are
        written. A Parquet file is read by the database inside one INSERT; CSV text is typed by
        DuckDB on the client's side, in parallel, and streamed in (an INSERT into a table with an
        id sequence runs on one thread). Bad values stop the read; the rows are then checked as a
        stream would check them (nothing written), so the error is the streamed path's.
        """
        plan = self._file_scan(source, conformer, first)
        if plan is None:
            return False
        table = self.model.table_name
        write: Callable[[], int]
        if plan.kind == "csv":
            select = typed_select(plan)
            if select is None:
                return False
            write = partial(self.ingest, table, self._typed_csv(source, plan, select, batch_size))
        else:
            compiled = self.job.scan_file(table, plan)
            if compiled is None:
                return False
            write = partial(self._whole_file, source, compiled)
        try:
            rows = write()
        except ConflictError:
            raise
        except DataflowError:
            self._check_rows(source, conformer)  # raises the streamed path's error when it finds bad rows
            raise
        self.report.inserted = rows
        return True

    def _whole_file(self, source: BatchSource, compiled: CompiledSQL) -> int:
        """One statement that reads the file in the database: one batch in the report."""
        bar = Progress(
            wanted(self.progress), description=self.node, total_rows=source.total_rows, total_bytes=source.total_bytes
        )
        started = time.perf_counter()
        ok = False
        try:
            with naming_conflicts(self.model, self.node):
                rows = self.interruptible(partial(self.ctx.execute_count, self.db, compiled))
            bar.update(rows, source.total_bytes)
            ok = True
        finally:
            self._ingested(bar, ok=ok)
        self.report.rows_read += rows
        self.report.batch_log.append((1, rows, time.perf_counter() - started))
        return rows

    def _typed_csv(
        self, source: BatchSource, plan: FileScan, select: tuple[str, list[Any]], batch_size: int
    ) -> pa.RecordBatchReader:
        """The file's rows typed by DuckDB (``typed_read.py``), with the fields it lacks at their defaults."""
        fields = [c.field for c in plan.columns] + [self.model.fields[n] for n, _ in plan.defaults]
        schema = pa.schema([pa.field(f.name, self.job.wire_type(f)) for f in fields])
        bar = Progress(
            wanted(self.progress), description=self.node, total_rows=source.total_rows, total_bytes=source.total_bytes
        )
        default_types = [(value, self.model.fields[name].type.arrow) for name, value in plan.defaults]
        splitter = CSVSplitter()
        position = [0]  # bytes of the file read so far, as DuckDB tracks them

        def typed() -> Iterator[tuple[int, pa.RecordBatch, list[Rejection]]]:
            assert plan.options is not None
            with splitter:
                for batch in splitter.typed_batches(plan.path, select, plan.options, batch_size):
                    fraction = splitter.fraction_read()
                    position[0] = int(fraction * (source.total_bytes or 0)) if fraction is not None else 0
                    size = batch.num_rows
                    columns = [*batch.columns, *(pa.repeat(pa.scalar(v, t), size) for v, t in default_types)]
                    arrays = [
                        self.job.to_wire(c.cast(f.type.arrow) if c.type != f.type.arrow else c, s.type)
                        for c, f, s in zip(columns, fields, schema, strict=True)
                    ]
                    yield size, pa.RecordBatch.from_arrays(arrays, schema=schema), []

        return self._reader(schema, typed(), bar, lambda: position[0] or None, on_interrupt=splitter.interrupt)

    def head(self, source: BatchSource, rows: int) -> pa.RecordBatch | None:
        """The first rows of the input file as its first batch holds them: a CSV file's read by the
        database in the run where its load job can (a statement of the run), else by the source."""
        assert source.head is not None and source.file is not None
        kind, path = source.file
        compiled = None
        if kind == "csv":
            header, skip = csv_header(path, source.options)
            selected = read_columns(str(path), header, None, source.options)
            compiled = self.job.head_file(str(path), header, selected, skip, source.options, rows)
        if compiled is None:
            return source.head(rows)
        try:
            result = self.ctx.execute(self.db, compiled)
        except DataflowError:
            source.head(rows)  # the reader's own error, which names the malformed line
            raise
        assert result is not None
        return one_batch(result)

    def may_scan(self, source: BatchSource) -> bool:
        """One CSV or Parquet file, rows created with ``on_error="rollback"``, and nothing the
        stream adds on the way (a tenant, the audit's digest of the input)."""
        return (
            source.file is not None
            and self.on_error == "rollback"
            and self.tenant is None
            and not self.db.security_enabled
        )

    def _file_scan(self, source: BatchSource, conformer: Conformer, first: pa.RecordBatch) -> FileScan | None:
        """What the database would read of the file, or None when the stream must read it."""
        if not self.may_scan(source) or source.file is None:
            return None
        kind, path = source.file
        options = conformer.options
        sources = {new: old for old, new in options.rename.items()}
        fields = [self.model.fields[n] for n in conformer.columns]
        if any(f.type.choices is not None or f.type.as_object for f in fields):
            return None  # Literal choices, UUID and JSON are checked by the stream
        columns = []
        for f in fields:
            fmt = conformer.format_of(f, first.column(f.name)) if kind == "csv" else None
            source_type = None if kind == "csv" else first.schema.field(f.name).type
            columns.append(ScanColumn(f, sources.get(f.name, f.name), source_type, fmt))
        if any(not c.source for c in columns):
            return None  # a Parquet column named "": SQL has no name for it, the stream reads it
        header, skip = csv_header(path, options) if kind == "csv" else ([], 0)
        defaults = tuple(conformer.defaults.items())
        return FileScan(kind, str(path), tuple(columns), defaults, tuple(header), skip, options)

    def _check_rows(self, source: BatchSource, conformer: Conformer) -> None:
        """Conform the input again, writing nothing: the first bad rows raise as the stream raises them."""
        first_row = 1
        for raw in source:
            _, rejected = conformer.conform(raw, first_row)
            if rejected:
                raise rejection_error(self.node, self.model, rejected) from None
            first_row += raw.num_rows

    def needs_staging(self, names: Sequence[str]) -> bool:
        """Whether a create must stage the rows and move them with INSERT ... SELECT (the backend's call)."""
        return self.job.needs_staging(self.model, names)

    def stamped(self, names: Sequence[str]) -> list[str]:
        """The columns a stream carries: the input's, then ``tenant_id`` when the run stamps one."""
        return [*names, "tenant_id"] if self.tenant is not None else list(names)

    # -- statements: every one through the run context, which counts and times it ----------------

    def compiled(self, statement: sa.sql.ClauseElement) -> CompiledSQL:
        return compile_statement(statement, self.db.backend.dialect)

    def run(self, statement: sa.sql.ClauseElement) -> pa.Table | None:
        return self.interruptible(partial(self.ctx.execute, self.db, self.compiled(statement)))

    def interruptible(self, call: Callable[[], T]) -> T:
        """Run a statement of the load so that Ctrl-C stops it at once: DuckDB looks for signals
        only between its tasks, which on a large load can be seconds apart."""
        connection = self.ctx.connection(self.db)
        return call_interruptibly(call, on_interrupt=connection.interrupt, grace=INTERRUPT_GRACE)

    def count(self, statement: sa.sql.ClauseElement) -> int:
        return self.counts(statement)[0]

    def counts(self, statement: sa.sql.ClauseElement) -> list[int]:
        """The integers of a one-row query (several counts in one pass over the data)."""
        result = self.run(statement)
        assert result is not None
        return [int(column[0].as_py()) for column in result.columns]

    def upsert_counts(self, upsert: Insert, flag: sa.ColumnElement[bool]) -> list[int]:
        """Run an upsert whose RETURNING tells inserted rows (``flag``) from updated ones: the
        rows inserted and written, in one statement."""
        written = upsert.returning(flag.label("inserted")).cte("written")
        statement = sa.select(sa.func.count().filter(written.c.inserted), sa.func.count()).select_from(written)
        self.ctx.note_writes(self.db, {self.model.table_name})
        with naming_conflicts(self.model, self.node):
            return self.counts(statement)

    def changed(self, statement: sa.sql.ClauseElement) -> int:
        """Run a write; return the rows it changed (a unique violation names the model's key)."""
        with naming_conflicts(self.model, self.node):
            return self.interruptible(partial(self.ctx.execute_count, self.db, self.compiled(statement)))

    def scope(self, table: sa.Table) -> list[sa.ColumnElement[Any]]:
        return scope_clauses(self.model, table, self.ctx.scope)

    def staging(self, names: Sequence[str]) -> sa.Table:
        """A temporary table for the input (UUID and JSON as text where the ingest cannot write them)."""
        columns = [sa.Column(ROW, sa.BigInteger)]
        for name in names:
            kind = self.job.staged_type(self.model.fields[name], self.model.table.c[name])
            columns.append(sa.Column(name, kind))
        table = sa.Table(f"dataflow_stage_{uuid.uuid4().hex[:16]}", sa.MetaData(), *columns, prefixes=["TEMPORARY"])
        self.run(CreateTable(table))
        return table

    def drop(self, table: sa.Table) -> None:
        self.run(DropTable(table))

    def casted(self, stage: sa.Table | sa.Subquery, name: str) -> sa.ColumnElement[Any]:
        """A staged column in the model's type (text to UUID/JSON where staged as text)."""
        target = self.model.table.c[name].type
        column = stage.c[name]
        return (
            sa.cast(column, target) if isinstance(column.type, sa.Text) and not isinstance(target, sa.Text) else column
        )

    def latest(self, stage: sa.Table, keys: Sequence[str]) -> sa.Subquery:
        """One row per key, the last in the source winning (DISTINCT ON, on both databases)."""
        return (
            sa.select(stage)
            .ext(distinct_on(*(stage.c[k] for k in keys)))
            .order_by(*(stage.c[k] for k in keys), stage.c[ROW].desc())
            .subquery("latest")
        )

    def missing(self, latest: sa.Table | sa.Subquery, key: str, limit: int = 1000) -> list[Rejection]:
        """Input rows whose ``id`` matches no record the run may see."""
        table = self.model.table
        exists = sa.exists().where(table.c.id == latest.c[key], *self.scope(table))
        result = self.run(sa.select(latest.c[ROW], latest.c[key]).where(~exists).order_by(latest.c[ROW]).limit(limit))
        assert result is not None
        return [
            Rejection(row, key, str(value), f"{key}: no {self.model.name} with id {value}")
            for row, value in zip(result.column(0).to_pylist(), result.column(1).to_pylist(), strict=True)
        ]

    def advance_id_sequence(self) -> None:
        """After rows arrive with explicit ids, move the id sequence past them so creates never collide."""
        table = self.model.table
        sequence = table.c.id.default
        assert isinstance(sequence, sa.Sequence)
        highest = self.count(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0)))
        if self.capabilities.supports_sequence_setval:
            self.run(sa.select(sa.func.setval(sequence.name, sa.func.greatest(highest, sequence.next_value()))))
            return
        gap = highest - self.count(sa.select(sequence.next_value()))
        if gap > 0:  # DuckDB cannot set a sequence: draw the gap's values in one vectorised query
            self.run(sa.select(sa.func.max(sequence.next_value())).select_from(sa.func.range(gap)))

    def handle_missing(self, rejected: list[Rejection], total: int) -> None:
        if not rejected:
            return
        if self.on_error == "rollback":
            shown = ", ".join(r.value or "" for r in rejected[:5])
            raise NotFoundError(
                f"{self.node}: {total} input row(s) name an id with no {self.model.name} "
                f"(first: {shown}); nothing was written. Pass on_error='skip' to ignore them"
            )
        self.report.rows_rejected += total
        if self.on_error == "quarantine":
            self.report.rejections.extend(rejected)


def upsert_statement(
    load: BulkLoad, latest: sa.Table | sa.Subquery, names: Sequence[str], keys: Sequence[str], update: Sequence[str]
) -> Insert:
    table = load.model.table
    rows = insert(table).from_select(list(names), sa.select(*(load.casted(latest, n) for n in names)))
    changes = upsert_assignments(load.model, table, rows.excluded, list(update))
    differs = upsert_differs(load.model, table, rows.excluded, list(update))
    return rows.on_conflict_do_update(index_elements=list(keys), set_=changes, where=differs)


def unchanged_rows(
    load: BulkLoad, latest: sa.Table | sa.Subquery, keys: Sequence[str], update: Sequence[str], *scope: Any
) -> sa.ColumnElement[bool]:
    """Whether an input row matches a stored row the upsert would leave as it is."""
    table = load.model.table
    incoming = {c: load.casted(latest, c) for c in update}
    differs = upsert_differs(load.model, table, incoming, list(update))
    return sa.exists().where(*(table.c[k] == load.casted(latest, k) for k in keys), *scope, ~differs)
