"""The bulk node's side of a load: its input conformed, the model's rules and the run's statements.

A bulk node hands the backend's load job (``backends/load_job.py``) a plan and a source. What
the job cannot know from ``backends/`` lives here: how input rows become the model's types
(``ConformedSource``), what the model means for a statement (``ScopedRules``: tenant scope, soft
delete, managed columns) and how the run counts a statement (``RunStatements``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa

from dataflow_nb.backends.base import CompiledSQL
from dataflow_nb.backends.load_job import LoadJob
from dataflow_nb.bulk.conform import Conformer, rejection_error
from dataflow_nb.bulk.progress import Progress, wanted
from dataflow_nb.bulk.sources import BatchSource, csv_header, one_batch, read_columns
from dataflow_nb.core.digest import InputDigest
from dataflow_nb.core.load_plan import ROW, Batches, FileScan, ScanColumn
from dataflow_nb.core.load_report import Rejection
from dataflow_nb.core.spec import ModelSpec
from dataflow_nb.exceptions import DataflowError
from dataflow_nb.observers.digests import InputDigests
from dataflow_nb.query.scope import (
    Scope,
    delete_statement,
    managed_update_values,
    scope_clauses,
    upsert_assignments,
    upsert_differs,
)

if TYPE_CHECKING:
    from dataflow_nb.protocols import Run, RunDatabase


class RunStatements:
    """The run's statements on one database, as a load job runs them (``Statements``)."""

    def __init__(self, ctx: Run, db: RunDatabase):
        self.ctx, self.db = ctx, db

    def execute(self, compiled: CompiledSQL) -> pa.Table | None:
        return self.ctx.execute(self.db, compiled)

    def execute_count(self, compiled: CompiledSQL) -> int:
        return self.ctx.execute_count(self.db, compiled)

    def ingest(self, table: str, data: pa.RecordBatchReader, *, temporary: bool = False) -> int:
        return self.ctx.ingest(self.db, table, data, temporary=temporary)

    def note_writes(self, tables: set[str]) -> None:
        self.ctx.note_writes(self.db, tables)

    def interrupt(self) -> None:
        self.ctx.connection(self.db).interrupt()


class ScopedRules:
    """The model's statement rules (``query/scope.py``) bound to the run's scope (``ModelRules``)."""

    def __init__(self, model: ModelSpec, scope: Scope):
        self.model, self.run_scope = model, scope

    def scope(self, table: sa.Table, *, include_deleted: bool = False) -> list[sa.ColumnElement[Any]]:
        return scope_clauses(self.model, table, self.run_scope, include_deleted=include_deleted)

    def managed_values(self, table: sa.Table) -> dict[str, Any]:
        return managed_update_values(self.model, table)

    def assignments(self, table: sa.Table, incoming: Any, changed: list[str]) -> dict[str, Any]:
        return upsert_assignments(self.model, table, incoming, changed)

    def differs(self, table: sa.Table, incoming: Any, changed: list[str]) -> sa.ColumnElement[bool]:
        return upsert_differs(self.model, table, incoming, changed)

    def delete(self, condition: sa.ColumnElement[bool], *, hard: bool) -> sa.Update | sa.Delete:
        return delete_statement(self.model, self.model.table, self.run_scope, condition, hard=hard)


class ConformedSource:
    """A bulk node's input in its model's types (``LoadSource``): each raw batch conformed on the
    job's read-ahead thread, a tenant stamped, the audit's digest kept of what is written.

    ``first`` is the input file's first rows as read before the load (they choose the formats a
    database's own read of the file uses); None when the rows can only stream.
    """

    def __init__(
        self,
        source: BatchSource,
        batches: Iterator[pa.RecordBatch],
        conformer: Conformer,
        *,
        tenant: str | None,
        progress: bool | None,
        digest: InputDigest | None = None,
        first: pa.RecordBatch | None = None,
        batch_size: int = 50_000,
    ):
        self.source, self.raw, self.conformer = source, batches, conformer
        self.tenant, self.progress, self.digest = tenant, progress, digest
        self.first, self.batch_size = first, batch_size

    @property
    def columns(self) -> list[str]:
        return list(self.conformer.output)

    @property
    def input_columns(self) -> list[str]:
        return list(self.conformer.columns)

    @property
    def total_bytes(self) -> int | None:
        return self.source.total_bytes

    def bar(self) -> Progress:
        source = self.source
        return Progress(
            wanted(self.progress),
            description=self.conformer.node,
            total_rows=source.total_rows,
            total_bytes=source.total_bytes,
        )

    def bytes_read(self) -> int | None:
        return self.source.bytes_read()

    def batches(self, schema: pa.Schema, to_wire: Callable[[pa.Array, pa.DataType], pa.Array]) -> Batches:
        """Each input batch in the model's types, with its bad rows (on the read-ahead thread)."""
        with_row = schema.names[0] == ROW
        tenant = None if self.tenant is None else pa.scalar(self.tenant, pa.string())
        first_row = 1
        for raw in self.raw:
            batch, rejected = self.conformer.conform(raw, first_row)
            first_row += raw.num_rows
            columns = list(batch.columns)[0 if with_row else 1 :]
            if tenant is not None:
                columns.append(pa.repeat(tenant, batch.num_rows))
            columns = [to_wire(c, f.type) for c, f in zip(columns, schema, strict=True)]
            yield raw.num_rows, pa.RecordBatch.from_arrays(columns, schema=schema), rejected

    def written(self, batch: pa.RecordBatch) -> None:
        if self.digest is not None:
            self.digest.update(batch)

    def file_scan(self) -> FileScan | None:
        """What the database would read of the file, or None when the stream must read it."""
        source, conformer, first = self.source, self.conformer, self.first
        if source.file is None or first is None:
            return None
        kind, path = source.file
        options = conformer.options
        sources = {new: old for old, new in options.rename.items()}
        model = conformer.model
        fields = [model.fields[n] for n in conformer.columns]
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
        return FileScan(kind, str(path), tuple(columns), defaults, tuple(header), skip, options, self.batch_size)

    def check_rows(self) -> None:
        """Conform the input again, writing nothing: the first bad rows raise as the stream raises them."""
        first_row = 1
        for raw in self.source:
            _, rejected = self.conformer.conform(raw, first_row)
            if rejected:
                raise self.rejection_error(rejected) from None
            first_row += raw.num_rows

    def rejection_error(self, rejected: Sequence[Rejection]) -> Exception:
        return rejection_error(self.conformer.node, self.conformer.model, rejected)


def input_digest(ctx: Run, db: RunDatabase) -> InputDigest | None:
    """The running digest the audit keeps of what the run's bulk node writes (None: no audit)."""
    if not db.security_enabled:
        return None
    keeper = ctx.observer(InputDigests, db)  # the audit's, found through the run without naming it
    return None if keeper is None else keeper.running(ctx.node_id or "")


def read_head(job: LoadJob, source: BatchSource, rows: int) -> pa.RecordBatch | None:
    """The first rows of the input file as its first batch holds them: a CSV file's read by the
    database in the run where its load job can (a statement of the run), else by the source."""
    assert source.head is not None and source.file is not None
    kind, path = source.file
    if kind != "csv":
        return source.head(rows)
    header, skip = csv_header(path, source.options)
    selected = read_columns(str(path), header, None, source.options)
    try:
        result = job.read_head(str(path), header, selected, skip, source.options, rows)
    except DataflowError:
        source.head(rows)  # the reader's own error, which names the malformed line
        raise
    if result is None:
        return source.head(rows)
    return one_batch(result)
