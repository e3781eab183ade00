"""A bulk load's job: one plan run on one database, from its first batch to its report.

A backend builds the job for a plan (``Backend.create_load_job``) and the node hands it a source
(``LoadSource``): ``job.run(source)`` streams the conformed batches, stages them where the plan
needs set-based SQL, runs the statements and returns the ``BulkReport``. The job owns the whole
strategy, Ctrl-C during its statements and streams included; what differs by database is in its
``LoadRules`` (what the ingest accepts) and, for DuckDB's file scans, in ``duckdb_load.py``.

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
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable, DropTable

from dataflow_nb.backends.base import CompiledSQL, compile_statement
from dataflow_nb.backends.deadline import call_interruptibly
from dataflow_nb.backends.errors import naming_conflicts
from dataflow_nb.backends.load_keys import KeyHashes
from dataflow_nb.backends.load_upsert import by_ids, upsert
from dataflow_nb.backends.read_ahead import ReadAhead
from dataflow_nb.backends.sql import distinct_on
from dataflow_nb.core.load_plan import ROW, Bar, Batches, FileScan, LoadPlan, LoadSource
from dataflow_nb.core.load_report import BulkReport, Rejection
from dataflow_nb.exceptions import NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

    from dataflow_nb.backends.base import Capabilities
    from dataflow_nb.core.reading import ReadOptions
    from dataflow_nb.core.spec import Field, ModelSpec

T = TypeVar("T")
# What a database's own read of a file says when a value does not fit (then the rows are checked
# the streamed way, which finds and reports them).
BAD_VALUE = "dataflow_nb: a value does not fit its column"
# Seconds an interrupted ingest gets to end (its streams stopped) before the run stops waiting.
INTERRUPT_GRACE = 10.0


class Statements(Protocol):
    """The run's statements on one database, as a job runs them: each is counted, timed and noted
    by the run (``bulk/load.py``'s RunStatements)."""

    def execute(self, compiled: CompiledSQL) -> pa.Table | None: ...

    def execute_count(self, compiled: CompiledSQL) -> int: ...

    def ingest(self, table: str, data: pa.RecordBatchReader, *, temporary: bool = False) -> int: ...

    def note_writes(self, tables: set[str]) -> None: ...

    def interrupt(self) -> None:
        """Stop the statement running on the connection (Ctrl-C)."""


class LoadRules:
    """What a database's ingest accepts. The shared rules: every field travels as its own Arrow
    type, and nothing needs staging. (Copying tables between databases follows them too.)"""

    def wire_type(self, field: Field) -> pa.DataType:
        """The Arrow type the ingest is sent for this field."""
        return field.type.arrow

    def to_wire(self, column: pa.Array, target: pa.DataType) -> pa.Array:
        """A conformed column as ``target`` (its ``wire_type``): storage wrapped as the extension type."""
        if isinstance(target, pa.ExtensionType) and column.type != target:
            return pa.ExtensionArray.from_storage(target, pc.cast(column, target.storage_type))
        return column

    def needs_staging(self, model: ModelSpec, names: Sequence[str]) -> bool:
        """Whether a create must ingest into a staging table and move the rows with INSERT ... SELECT."""
        return False

    def staged_type(self, field: Field, column: sa.Column[Any]) -> sa.types.TypeEngine[Any]:
        """A staging table's column type: text for UUID and JSON the ingest cannot write natively
        (cast to ``column``'s type when moved to the model's table)."""
        native = self.wire_type(field) != field.type.arrow
        return sa.Text() if field.type.as_object and not native else column.type

    def inserted_flag(self, model: ModelSpec) -> sa.ColumnElement[bool] | None:
        """In the RETURNING of ``INSERT ... ON CONFLICT DO UPDATE``: true for a row inserted, false
        for one updated; None when the database cannot tell (the counts are then queried first)."""
        return None

    # Whether a bulk create of one file skips the client's parser (``LoadJob.scan_file``): Parquet
    # read by the database in ``scan_file``, CSV typed by DuckDB on the client. PostgreSQL's COPY is
    # its bottleneck, so there the file streams through the client's parser, which is no slower.
    reads_files = False

    def head_file(
        self, path: str, header: Sequence[str], selected: Sequence[str], skip: int, options: ReadOptions, rows: int
    ) -> CompiledSQL | None:
        """A query of a CSV file's first ``rows`` rows as text (as its first batch holds them), run by
        the database itself; None: the file's source reads them."""
        return None

    def scan_file(self, table: str, scan: FileScan) -> CompiledSQL | None:
        """An INSERT in which the database reads the file itself; None: the rows are streamed."""
        return None


class LoadJob:
    """One bulk node's load: a plan and a source in, a report out. Subclasses add a backend's own
    ways (``scan_file``); every statement goes through ``statements``, which the run counts."""

    def __init__(
        self, plan: LoadPlan, statements: Statements, rules: LoadRules, dialect: Dialect, capabilities: Capabilities
    ):
        self.plan, self.statements, self.rules = plan, statements, rules
        self.model: ModelSpec = plan.model
        self.dialect, self.capabilities = dialect, capabilities
        self.report = BulkReport(plan.node, plan.model.name)
        self.error: BaseException | None = None  # what the stream raised, before a driver wrapped it
        self.pending: list[ReadAhead[Any]] = []  # streams made and not yet ingested
        self.bars: list[Bar] = []  # their bars: red when the ingest fails, else full until the node ends
        self.filled: list[Bar] = []  # bars of ingests done, ended with the node's outcome (end_bars)

    # -- the plan --------------------------------------------------------------------------------

    def run(self, source: LoadSource | None) -> BulkReport:
        """Carry out the plan on ``source`` (None: no input rows, or a filter instead of them)."""
        plan, table, report = self.plan, self.model.table, self.report
        if plan.action == "create":
            self.create(source)
        elif plan.action == "upsert":
            if source is not None:
                upsert(self, source)
        elif plan.condition is not None:
            if plan.action == "update":
                values = {**plan.rules.managed_values(table), **plan.values}
                statement = sa.update(table).where(plan.condition, *plan.rules.scope(table)).values(values)
                report.updated = self.write_changed(statement)
            else:
                report.deleted = self.write_changed(plan.rules.delete(plan.condition, hard=plan.hard))
        elif source is not None:
            by_ids(self, source)
        return report

    def create(self, source: LoadSource | None) -> None:
        """Insert every row: streamed into the table, staged where the ingest cannot write it, or
        read by the database from the file; ``replace`` deletes the table's rows first."""
        plan, table, report = self.plan, self.model.table, self.report
        if plan.replace:
            report.deleted = self.write_changed(plan.rules.delete(sa.true(), hard=True))
        if source is None:
            return
        columns = self.stamped(source.columns)
        if self.rules.needs_staging(self.model, columns):
            stage = self.stage_rows(source, columns)
            moved = sa.insert(table).from_select(columns, sa.select(*(self.as_stored(stage, c) for c in columns)))
            report.inserted = self.write_changed(moved)
            self.drop_stage(stage)
        elif not self.scan_file(source):  # the database reads the file, or the rows stream in
            self.ingest(self.model.table_name, self.stream(source, columns))
            report.inserted = sum(rows for _, rows, _ in report.batch_log)
        if "id" in source.columns:  # an input with ids keeps them: the id sequence moves past them
            self.advance_id_sequence()

    def may_scan(self) -> bool:
        """Whether the database may read the input file itself: rows created with
        ``on_error="rollback"``, and nothing the stream adds on the way (a tenant, the audit's digest)."""
        plan = self.plan
        return (
            self.rules.reads_files
            and plan.action == "create"
            and plan.on_error == "rollback"
            and plan.tenant is None
            and not plan.audited
        )

    def scan_file(self, source: LoadSource) -> bool:
        """Have the database read and type the input file itself: True when the rows are written."""
        return False

    def read_head(
        self, path: str, header: Sequence[str], selected: Sequence[str], skip: int, options: ReadOptions, rows: int
    ) -> pa.Table | None:
        """A CSV file's first rows read by the database in the run (a statement of it); None: the
        database cannot, the source reads them."""
        compiled = self.rules.head_file(path, header, selected, skip, options, rows)
        if compiled is None:
            return None
        return self.statements.execute(compiled)

    def end_bars(self, *, ok: bool) -> None:
        """The node ended: its bars close, red and saying the rows were rolled back unless ``ok``."""
        while self.filled:
            self.filled.pop().close(ok=ok)

    # -- streaming -------------------------------------------------------------------------------

    def stamped(self, names: Sequence[str]) -> list[str]:
        """The columns a stream carries: the input's, then ``tenant_id`` when the run stamps one."""
        return [*names, "tenant_id"] if self.plan.tenant is not None else list(names)

    def stream(
        self, source: LoadSource, columns: Sequence[str], *, with_row: bool = False, keys: KeyHashes | None = None
    ) -> pa.RecordBatchReader:
        """The source's batches in the wire types, as a reader the database pulls from; bad rows
        handled per ``on_error``. ``keys`` hashes each written row's key on the way, to tell
        afterwards whether any repeats."""
        fields = [pa.field(n, self.rules.wire_type(self.model.fields[n])) for n in columns]
        schema = pa.schema([pa.field(ROW, pa.int64()), *fields] if with_row else fields)
        items = source.batches(schema, self.rules.to_wire)
        if keys is not None:
            items = _hashed(items, keys)
        return self.reader(schema, items, source.bar(), source.bytes_read, source)

    def reader(
        self,
        schema: pa.Schema,
        items: Batches,
        bar: Bar,
        bytes_read: Callable[[], int | None],
        source: LoadSource,
        on_interrupt: Callable[[], None] | None = None,
    ) -> pa.RecordBatchReader:
        """The batches ``items`` makes on a read-ahead thread (rows read, batch, bad rows), as a
        reader the database pulls from; the report counts them on the way. ``on_interrupt`` stops
        the read ``items`` may be blocked in (Ctrl-C)."""
        ahead = ReadAhead(items, on_interrupt=on_interrupt)  # making batches starts now, while the ingest gets ready
        self.pending.append(ahead)
        self.bars.append(bar)
        report = self.report

        def batches() -> Iterator[pa.RecordBatch]:
            started = time.perf_counter()
            try:
                for number, (read, out, rejected) in enumerate(ahead, start=1):
                    report.rows_read += read
                    if rejected:
                        self.reject_rows(source, rejected)
                    now = time.perf_counter()
                    report.batch_log.append((number, out.num_rows, now - started))
                    started = now
                    bar.update(read, bytes_read())
                    source.written(out)
                    yield out
            except BaseException as exc:
                self.error = exc  # drivers wrap what a stream raises: keep the original to re-raise
                raise
            finally:
                ahead.close()

        return pa.RecordBatchReader.from_batches(schema, batches())

    def reject_rows(self, source: LoadSource, rejected: list[Rejection]) -> None:
        """Bad rows of a batch: the load stops (``rollback``), or they are counted and kept."""
        if self.plan.on_error == "rollback":
            raise source.rejection_error(rejected)
        self.report.rows_rejected += len({r.row for r in rejected})
        if self.plan.on_error == "quarantine":
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
            with naming_conflicts(self.model, self.plan.node):
                ingest = partial(self.statements.ingest, table, reader, temporary=temporary)
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
                self.ingested(self.bars.pop(), ok=ok)

    def ingested(self, bar: Bar, *, ok: bool) -> None:
        """An ingest's bar: full while the node's statements after it run (a Ctrl-C or an error
        there still rolls the rows back, and the bar says so), red at once when it failed."""
        if ok:
            bar.fill()
            self.filled.append(bar)
        else:
            bar.close(ok=False)

    def _interrupt_streams(self) -> None:
        """Ctrl-C during an ingest: the streams stop, and so does the statement (PostgreSQL would
        otherwise take the COPY's rows already sent to the end before the rollback begins)."""
        for ahead in self.pending:
            ahead.interrupt()
        self.statements.interrupt()

    def stage_rows(self, source: LoadSource, columns: Sequence[str], keys: KeyHashes | None = None) -> sa.Table:
        """Stream the input into a new temporary table, each row with its number in the input
        (UUID and JSON as text where the ingest cannot write them)."""
        staged = [sa.Column(ROW, sa.BigInteger)]
        for name in columns:
            kind = self.rules.staged_type(self.model.fields[name], self.model.table.c[name])
            staged.append(sa.Column(name, kind))
        table = sa.Table(f"dataflow_stage_{uuid.uuid4().hex[:16]}", sa.MetaData(), *staged, prefixes=["TEMPORARY"])
        self.execute(CreateTable(table))
        self.ingest(table.name, self.stream(source, columns, with_row=True, keys=keys), temporary=True)
        return table

    def drop_stage(self, table: sa.Table) -> None:
        self.execute(DropTable(table))

    # -- statements: every one through ``statements``, which counts and times it -----------------

    def compile(self, statement: sa.sql.ClauseElement) -> CompiledSQL:
        return compile_statement(statement, self.dialect)

    def execute(self, statement: sa.sql.ClauseElement) -> pa.Table | None:
        return self.interruptibly(partial(self.statements.execute, self.compile(statement)))

    def interruptibly(self, call: Callable[[], T]) -> T:
        """Run a statement of the load so that Ctrl-C stops it at once: DuckDB looks for signals
        only between its tasks, which on a large load can be seconds apart."""
        return call_interruptibly(call, on_interrupt=self.statements.interrupt, grace=INTERRUPT_GRACE)

    def count_rows(self, statement: sa.sql.ClauseElement) -> int:
        """The integer of a one-row, one-column query."""
        return self.read_counts(statement)[0]

    def read_counts(self, statement: sa.sql.ClauseElement) -> list[int]:
        """The integers of a one-row query (several counts in one pass over the data)."""
        result = self.execute(statement)
        assert result is not None
        return [int(column[0].as_py()) for column in result.columns]

    def write_counted(self, upsert: sa.Insert, flag: sa.ColumnElement[bool]) -> list[int]:
        """Run an upsert whose RETURNING tells inserted rows (``flag``) from updated ones: the
        rows inserted and written, in one statement."""
        written = upsert.returning(flag.label("inserted")).cte("written")
        statement = sa.select(sa.func.count().filter(written.c.inserted), sa.func.count()).select_from(written)
        self.statements.note_writes({self.model.table_name})
        with naming_conflicts(self.model, self.plan.node):
            return self.read_counts(statement)

    def write_changed(self, statement: sa.sql.ClauseElement) -> int:
        """Run a write; return the rows it changed (a unique violation names the model's key)."""
        with naming_conflicts(self.model, self.plan.node):
            return self.interruptibly(partial(self.statements.execute_count, self.compile(statement)))

    def as_stored(self, stage: sa.Table | sa.Subquery, name: str) -> sa.ColumnElement[Any]:
        """A staged column in the model's type (text to UUID/JSON where staged as text)."""
        target = self.model.table.c[name].type
        column = stage.c[name]
        return (
            sa.cast(column, target) if isinstance(column.type, sa.Text) and not isinstance(target, sa.Text) else column
        )

    def last_per_key(self, stage: sa.Table, keys: Sequence[str]) -> sa.Subquery:
        """One row per key, the last in the source winning (DISTINCT ON, on both databases)."""
        return (
            sa.select(stage)
            .ext(distinct_on(*(stage.c[k] for k in keys)))
            .order_by(*(stage.c[k] for k in keys), stage.c[ROW].desc())
            .subquery("latest")
        )

    def find_missing(self, latest: sa.Table | sa.Subquery, key: str, limit: int = 1000) -> list[Rejection]:
        """Input rows whose ``id`` matches no record the run may see."""
        table = self.model.table
        exists = sa.exists().where(table.c.id == latest.c[key], *self.plan.rules.scope(table))
        query = sa.select(latest.c[ROW], latest.c[key]).where(~exists).order_by(latest.c[ROW]).limit(limit)
        result = self.execute(query)
        assert result is not None
        return [
            Rejection(row, key, str(value), f"{key}: no {self.model.name} with id {value}")
            for row, value in zip(result.column(0).to_pylist(), result.column(1).to_pylist(), strict=True)
        ]

    def settle_missing(self, rejected: list[Rejection], total: int) -> None:
        """Input ids matching nothing: the load stops (``rollback``), or they are counted and kept."""
        if not rejected:
            return
        if self.plan.on_error == "rollback":
            shown = ", ".join(r.value or "" for r in rejected[:5])
            raise NotFoundError(
                f"{self.plan.node}: {total} input row(s) name an id with no {self.model.name} "
                f"(first: {shown}); nothing was written. Pass on_error='skip' to ignore them"
            )
        self.report.rows_rejected += total
        if self.plan.on_error == "quarantine":
            self.report.rejections.extend(rejected)

    def advance_id_sequence(self) -> None:
        """After rows arrive with explicit ids, move the id sequence past them so creates never collide."""
        table = self.model.table
        sequence = table.c.id.default
        assert isinstance(sequence, sa.Sequence)
        highest = self.count_rows(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0)))
        if self.capabilities.supports_sequence_setval:
            self.execute(sa.select(sa.func.setval(sequence.name, sa.func.greatest(highest, sequence.next_value()))))
            return
        gap = highest - self.count_rows(sa.select(sequence.next_value()))
        if gap > 0:  # DuckDB cannot set a sequence: draw the gap's values in one vectorised query
            self.execute(sa.select(sa.func.max(sequence.next_value())).select_from(sa.func.range(gap)))


def _hashed(items: Batches, keys: KeyHashes) -> Batches:
    """``items``, each batch's keys hashed on the way (on the read-ahead thread)."""
    for read, batch, rejected in items:
        keys.add(batch)
        yield read, batch, rejected
