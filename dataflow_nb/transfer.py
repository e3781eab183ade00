"""Move a database's model tables and run history into another database, through Arrow.

The third journey ends here: a prototype on DuckDB moves to PostgreSQL (or back) with its rows,
ids and history. The source is read in one snapshot, batch by batch; the target is written in
one transaction, so a failure or Ctrl-C anywhere leaves it as it was.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Generator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable, DropTable

from dataflow_nb.backends.base import Connection, compile_statement
from dataflow_nb.backends.deadline import call_interruptibly
from dataflow_nb.bulk.progress import Progress, wanted
from dataflow_nb.core.spec import ModelSpec, spec_from_class
from dataflow_nb.exceptions import ConflictError, DataflowError, ReadOnlyError, TenantError
from dataflow_nb.model.readback import model_tables, read_model
from dataflow_nb.monitor.runs import RUNS_TABLE, runs_table
from dataflow_nb.protocols import RunDatabase


class CopyTarget(RunDatabase, Protocol):
    """A DataFlow as a copy writes into it: it adopts each copied model and forgets its cached reads."""

    def _adopt(self, spec: ModelSpec) -> None: ...
    def _invalidate(self, tables: set[str]) -> None: ...


COPY_BATCH_ROWS = 100_000


@dataclass
class CopyReport:
    """What ``copy_to`` moved: rows per table, the runs of the history, and the time it took."""

    source: str
    target: str
    tables: list[tuple[str, str, int]] = field(default_factory=list)  # model, table, rows
    runs: int = 0
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(rows for _, _, rows in self.tables)

    def __str__(self) -> str:
        return (
            f"copied {self.rows:,} rows in {len(self.tables)} table(s) and {self.runs:,} run(s) of history "
            f"from {self.source} to {self.target} in {self.seconds:.1f}s"
        )

    def __repr__(self) -> str:
        tables = ", ".join(f"{table}={rows:,}" for _, table, rows in self.tables)
        return f"CopyReport({tables}; runs={self.runs:,}; {self.seconds:.3f}s)"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(model)}</td><td>{html.escape(table)}</td><td>{count:,}</td></tr>"
            for model, table, count in self.tables
        )
        return (
            f"<b>copy</b> {html.escape(self.source)} &rarr; {html.escape(self.target)}: {self.rows:,} rows, "
            f"{self.runs:,} run(s) of history, {self.seconds:.2f}s"
            f"<table><tr><th>model</th><th>table</th><th>rows</th></tr>{rows}</table>"
        )


def copy_database(
    source: RunDatabase,
    target: CopyTarget,
    *,
    models: Sequence[str] | None = None,
    replace: bool = False,
    history: bool = True,
    progress: bool | None = None,
    batch_rows: int = COPY_BATCH_ROWS,
) -> CopyReport:
    """Copy ``source``'s model tables (and run history) into ``target``; see ``DataFlow.copy_to``."""
    if target.read_only:
        raise ReadOnlyError(f"copy_to: the target DataFlow {target.name!r} is read-only (read_only=True)")
    started = time.perf_counter()
    report = CopyReport(source.backend.safe_url, target.backend.safe_url)
    if history:
        source.history.flush()  # the runs this process ended are in the snapshot the copy reads
    reading = source.backend.connect_snapshot()
    try:
        specs = _source_models(source, reading, models)
        for spec in specs:
            target._adopt(spec)  # creates the table, or checks that the one there matches
        history = history and _has_table(reading, RUNS_TABLE)
        if history:
            target.history.ensure_tables()  # before the copy's transaction begins, which must see them
        writing = target.backend.connect()
        try:
            _check_target(target, writing, specs, replace=replace)
            counts = [_count(source, reading, spec.table) for spec in specs]
            bar = Progress(
                wanted(progress), description=f"copy to {target.name}", total_rows=sum(counts), total_bytes=None
            )
            # The tables move on a thread of their own, so that Ctrl-C is seen at once here; it ends
            # the stream at its next batch (no driver is called from two threads at a time).
            stop = threading.Event()
            try:
                for spec in specs:
                    copy = partial(_copy_table, source, reading, target, writing, spec, bar, batch_rows, stop)
                    rows = call_interruptibly(copy, on_interrupt=stop.set)
                    report.tables.append((spec.name, spec.table_name, rows))
                if history:
                    report.runs = _copy_runs(source, reading, target, writing)
            finally:
                bar.close()
            writing.commit()
        finally:
            writing.close()
    finally:
        reading.close()
    target._invalidate({spec.table_name for spec in specs})
    report.seconds = time.perf_counter() - started
    return report


def _source_models(source: RunDatabase, reading: Connection, wanted_models: Sequence[str] | None) -> list[ModelSpec]:
    """The source's registered models, then the models its migration history holds a table for."""
    specs = dict(source.models)
    for name in model_tables(reading, source.backend):
        if name not in specs:
            cls = read_model(reading, source.backend, name)
            if cls is not None:
                specs[name] = spec_from_class(cls)
    if wanted_models is not None:
        unknown = sorted(set(wanted_models) - set(specs))
        if unknown:
            raise DataflowError(
                f"copy_to(models=...): no model {', '.join(map(repr, unknown))} in {source.backend.safe_url}; "
                f"its models are {sorted(specs)}"
            )
        return [specs[name] for name in wanted_models]
    return list(specs.values())


def _count(db: RunDatabase, connection: Connection, table: sa.Table) -> int:
    counted = connection.execute(compile_statement(sa.select(sa.func.count()).select_from(table), db.backend.dialect))
    assert counted is not None
    return int(counted.column(0)[0].as_py())


def _check_target(target: CopyTarget, writing: Connection, specs: list[ModelSpec], *, replace: bool) -> None:
    """Before any row moves: the target's tables are empty (or emptied, with ``replace``), and a
    database that scopes tenants itself lets this role write every tenant's rows."""
    if any(spec.multi_tenant for spec in specs) and not target.backend.bypasses_tenant_scope(writing):
        tenants = [spec.name for spec in specs if spec.multi_tenant]
        raise TenantError(
            f"copy_to: {target.backend.safe_url} keeps each transaction to one tenant's rows of {tenants} "
            "(row-level security), and the copy writes every tenant's rows in one transaction: run it as a "
            "role that bypasses row-level security (a superuser or one with BYPASSRLS), or leave those "
            "models out with models=[...]"
        )
    full = [(spec, rows) for spec in specs if (rows := _count(target, writing, spec.table))]
    if full and not replace:
        shown = ", ".join(f"{spec.table_name} ({rows:,} rows)" for spec, rows in full)
        raise ConflictError(
            f"copy_to: the target {target.backend.safe_url} already has rows in {shown}; nothing was copied. "
            "Pass replace=True (CLI: --replace) to replace them in the same transaction, or copy into an "
            "empty database"
        )
    for spec, _ in full:
        writing.execute(compile_statement(sa.delete(spec.table), target.backend.dialect))


def _source_batches(
    source: RunDatabase, reading: Connection, spec: ModelSpec, batch_rows: int
) -> Generator[pa.RecordBatch, None, None]:
    select = compile_statement(sa.select(spec.table), source.backend.dialect)
    return reading.stream(select, batch_rows=batch_rows)


def _copy_table(
    source: RunDatabase,
    reading: Connection,
    target: CopyTarget,
    writing: Connection,
    spec: ModelSpec,
    bar: Progress,
    batch_rows: int,
    stop: threading.Event,
) -> int:
    """Stream one table across in the target's wire types; its id sequence then moves past the ids.
    ``stop`` (Ctrl-C) ends the stream at its next batch."""
    job = target.backend.load_rules
    names = list(spec.fields)
    staged = job.needs_staging(spec, names)
    fields = [spec.fields[n] for n in names]
    wire = pa.schema([pa.field(f.name, job.wire_type(f)) for f in fields])

    def batches() -> Generator[pa.RecordBatch, None, None]:
        # closing: a stream left early (Ctrl-C) gives its source connection back at once.
        with closing(_source_batches(source, reading, spec, batch_rows)) as stream:
            for batch in stream:
                if stop.is_set():
                    return
                columns = [
                    job.to_wire(_as_type(batch.column(f.name), f.type.arrow), w.type)
                    for f, w in zip(fields, wire, strict=True)
                ]
                bar.update(batch.num_rows)
                yield pa.RecordBatch.from_arrays(columns, schema=wire)

    dialect = target.backend.dialect
    produced = batches()
    reader = pa.RecordBatchReader.from_batches(wire, produced)
    try:
        if not staged:
            rows = writing.ingest(spec.table_name, reader)
        else:  # what COPY cannot write straight into the table (UUID text, a table under row-level security)
            stage = sa.Table(
                f"dataflow_copy_{spec.table_name}"[:63],
                sa.MetaData(),
                *(sa.Column(f.name, job.staged_type(f, spec.table.c[f.name])) for f in fields),
                prefixes=["TEMPORARY"],
            )
            writing.execute(compile_statement(CreateTable(stage), dialect))
            writing.ingest(stage.name, reader, temporary=True)
            casts = [sa.cast(stage.c[n], spec.table.c[n].type) for n in names]
            rows = writing.execute_count(
                compile_statement(sa.insert(spec.table).from_select(names, sa.select(*casts)), dialect)
            )
            writing.execute(compile_statement(DropTable(stage), dialect))
    finally:
        produced.close()  # an ingest stopped midway (Ctrl-C) leaves the source's stream open otherwise
    target.backend.advance_sequence(writing, spec.table)
    target.backend.partitions.settle(writing, spec.table)  # rows of a partitioned table into their partitions
    return rows


def _as_type(column: pa.Array, kind: pa.DataType) -> pa.Array:
    """A source column in the field's Arrow type (an unconstrained numeric, a wider int...)."""
    return column if column.type == kind else pc.cast(column, kind)


def _copy_runs(source: RunDatabase, reading: Connection, target: CopyTarget, writing: Connection) -> int:
    """The source's run history, oldest first, after the target's own; runs it already has are skipped."""
    # A history made by an older version lacks the newer columns: those stay empty on the target.
    kept = reading.execute(
        compile_statement(sa.select(sa.text("*")).select_from(runs_table).where(sa.false()), source.backend.dialect)
    )
    assert kept is not None
    columns = [c for c in runs_table.columns if c.name != "seq" and c.name in kept.column_names]
    dialect = target.backend.dialect
    have = writing.execute(compile_statement(sa.select(*columns).where(sa.false()), dialect))
    assert have is not None
    known = writing.execute(compile_statement(sa.select(runs_table.c.run_id), dialect))
    assert known is not None
    query = compile_statement(sa.select(*columns).order_by(runs_table.c.seq), source.backend.dialect)
    result = reading.execute(query)
    assert result is not None
    fresh = result.filter(pc.invert(pc.is_in(result.column("run_id"), known.column(0))))
    if not fresh.num_rows:
        return 0
    # As the target's table types them (DuckDB's FLOAT is PostgreSQL's real, say), which COPY needs exactly.
    fresh = fresh.cast(have.schema)
    return writing.ingest(RUNS_TABLE, pa.RecordBatchReader.from_batches(fresh.schema, fresh.to_batches()))


def _has_table(connection: Connection, table: str) -> bool:
    found = connection.execute_sql(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1",
        [table],
    )
    return found is not None and bool(found.column(0)[0].as_py())


__all__ = ["CopyReport", "copy_database"]
