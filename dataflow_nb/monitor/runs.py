"""Run history kept in the database itself, so a restarted kernel, another kernel or the CLI sees it.

One table with the reserved prefix, ``dataflow_nb_runs``, created on first use and never listed
as a model: one row per run, its nodes kept in the row as JSON text (one row holds a run of any
size). An in-memory DuckDB keeps it in memory, like everything else it holds.

Writing is kept off the runs' path, because every run pays for what is on it
(``benchmarks/load.py``, ``benchmarks/history.py``): a run that ends (ok, failed, interrupted,
retried) hands its ``RunLog`` to this history's writer (``run_writer.py``, one thread per
DataFlow) and returns; no statement of the history is ever in a run's transaction or on its
connection. The writer inserts the runs that queued in one transaction of its own and one
statement (each column bound as one array), committed without waiting for the disk, and prunes
older runs now and then. On a database other processes share (PostgreSQL), it also writes a
``running`` row for a run executing here longer than half a second, refreshed once a second, so
other kernels see it; the row is updated when the run ends.

What a crash can lose: runs that ended within the last ``BATCH_DELAY`` (0.5 s; DuckDB 1 s)
before the process died, and on PostgreSQL those committed in the moments before a server crash
(their commit does not wait for the disk). Never a run's own data.

Runs of this process are kept in memory (``live_run``) from their start until their row is in
the table, so a view never loses one between "ended" and "written", and every reading method
first waits for the writer to write what ended before it (read-your-writes in this process).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa

from dataflow_nb.backends.base import CompiledSQL, Connection, compile_statement
from dataflow_nb.exceptions import DataflowError
from dataflow_nb.monitor.run_log import RunLog
from dataflow_nb.monitor.run_writer import CLOSE_TIMEOUT, HistoryWriter

if TYPE_CHECKING:
    from dataflow_nb.backends.base import Backend

log = logging.getLogger("dataflow_nb")

RUNS_TABLE = "dataflow_nb_runs"
RUN_STATUSES = ("running", "ok", "failed", "interrupted", "retried")
DEFAULT_KEEP = 10_000
READ_TIMEOUT = 5.0  # seconds a reader waits for this process's runs to be written before reading
SQL_READ_TIMEOUT = 1.0  # the same for a run's SQL that reads the history (it holds a connection)

_metadata = sa.MetaData()
_sequence = sa.Sequence(f"{RUNS_TABLE}_seq", metadata=_metadata)
runs_table = sa.Table(
    RUNS_TABLE,
    _metadata,
    # Runs are numbered by the database when their row is first written: pruning keeps the newest N.
    sa.Column("seq", sa.BigInteger, server_default=_sequence.next_value(), primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.Text, nullable=False, unique=True),
    sa.Column("database", sa.Text, nullable=False),  # the URL with any password masked
    sa.Column("tenant_id", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("seconds", sa.Float),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("nodes", sa.Integer, nullable=False),  # nodes in the workflow
    sa.Column("error_node", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("rows_read", sa.BigInteger),  # summed over the run's nodes
    sa.Column("rows_written", sa.BigInteger),
    sa.Column("served_by", sa.Text),  # "primary", or the read replica (URL, password masked) that ran it
    sa.Column("node_log", sa.Text),  # the nodes as a JSON list (NODE_COLUMNS each), written at the end
)
RUN_COLUMNS = tuple(c.name for c in runs_table.columns if c.name not in ("seq", "node_log"))
NODE_COLUMNS = ("node_id", "node_type", "status", "started", "seconds", "rows_read", "rows_written", "error")
_NODE_SCHEMA = pa.schema(
    [
        ("position", pa.int32()),
        ("node_id", pa.string()),
        ("node_type", pa.string()),
        ("status", pa.string()),
        ("started", pa.float64()),
        ("seconds", pa.float64()),
        ("rows_read", pa.int64()),
        ("rows_written", pa.int64()),
        ("error", pa.string()),
    ]
)


# Reentrant: a DataFlow's finalizer (``close``) may run in any thread at any allocation, even one
# holding the lock.
_live_lock = threading.RLock()
_live: dict[str, dict[str, RunLog]] = {}  # database identity -> run id -> a run of this process not written yet
_writers: dict[str, set[RunHistory]] = {}  # database identity -> the histories writing to it in this process


def live_runs(identity: str) -> list[RunLog]:
    """Runs of this process on the database ``identity`` (any DataFlow on it) that are executing,
    or ended and not in its table yet."""
    with _live_lock:
        return list(_live.get(identity, {}).values())


def live_run(identity: str, run_id: str) -> RunLog | None:
    with _live_lock:
        return _live.get(identity, {}).get(run_id)


@contextmanager
def _short_transaction(backend: Backend, *, flush: bool = True) -> Iterator[Connection]:
    """A transaction of its own on a pooled connection; ``flush=False``: its commit does not wait
    for the disk (history rows: the run's own commit was durable, a server crash may lose a row,
    never a run's data)."""
    connection = backend.connect()
    try:
        yield connection
        connection.commit(flush=flush)
    finally:
        connection.close()


class RunHistory:
    """The run history of one DataFlow's database: written by runs, read by ``db.runs()`` and views.

    Args:
        backend: the database.
        keep: how many of the newest runs are kept; older ones are pruned (checked every
            ``max(1, keep // 100)`` runs, so the tables hold at most that many more in between).
        record: write runs (``False`` still reads what others wrote).
    """

    def __init__(self, backend: Backend, *, keep: int = DEFAULT_KEEP, record: bool = True) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise DataflowError(f"keep_runs={keep!r}: give a whole number >= 1, e.g. 10_000.")
        self.backend = backend
        self.identity = backend.identity()
        self.keep = keep
        self.record = record
        self._ready = False
        self._lock = threading.RLock()
        self._compiled: dict[str, CompiledSQL] = {}
        self._writer: HistoryWriter | None = None
        self._closed = False
        self._unpruned = 0  # rows inserted since the last prune

    # -- tables ------------------------------------------------------------------------------

    def ensure_tables(self) -> None:
        """Create the history tables when they are missing, and protect them from tenants' SQL where
        the database can (once per DataFlow, in their own transaction)."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            with _short_transaction(self.backend) as connection:
                connection.ensure_tables([runs_table])  # an older table gets the columns added since
                # It names every tenant's runs and holds their errors: a tenant's SQL sees only its own.
                self.backend.protect_bookkeeping_table(connection, RUNS_TABLE)
            self._ready = True

    def _statement(self, name: str) -> CompiledSQL:
        """Each statement compiled once per DataFlow: compiling costs more than running it."""
        compiled = self._compiled.get(name)
        if compiled is None:
            compiled = compile_statement(_STATEMENTS[name](), self.backend.dialect)
            self._compiled[name] = compiled
        return compiled

    # -- what runs call ------------------------------------------------------------------------

    def start(self, run: RunLog) -> bool:
        """Note ``run`` as executing here; whether this history records it.

        A database that refuses (a role that may not create the table) keeps no history for this
        DataFlow, said once in the log, and the run goes on. Another DataFlow on the same database
        that records the run already is left to write it (one row per run).
        """
        with _live_lock:
            _live.setdefault(self.identity, {})[run.run_id] = run
        if self.identity in run.rows or not (self.record and self._tables_ready()):
            return False
        writer = self._writer or self._start_writer()
        if writer is None:
            return False
        run.rows[self.identity] = False
        writer.started(run)
        return True

    def finish(self, run: RunLog) -> None:
        """``run`` (recorded here) ended and its outcome is set: its row is written in the
        background; the run stays live in this process until it is."""
        writer = self._writer
        if writer is None:  # closed meanwhile
            self.forget(run)
            return
        writer.finished(run)

    def forget(self, run: RunLog) -> None:
        """The run is not live in this process any more (its row is written, or nobody records it)."""
        with _live_lock:
            self_runs = _live.get(self.identity, {})
            self_runs.pop(run.run_id, None)
            if not self_runs:
                _live.pop(self.identity, None)

    def forget_unrecorded(self, run: RunLog) -> None:
        """At the run's end on a database where no history of this process records it."""
        if self.identity not in run.rows:
            self.forget(run)

    def _tables_ready(self) -> bool:
        try:
            self.ensure_tables()
        except Exception as exc:
            self.record = False
            log.warning("run history is off for %s: %s", self.backend.safe_url, exc)
            return False
        return True

    def _start_writer(self) -> HistoryWriter | None:
        with self._lock:
            if self._writer is None and not self._closed:
                self._writer = HistoryWriter(
                    self.backend.safe_url,
                    write=self._write_finished,
                    show=self._write_running,
                    can_show=self.backend.has_spare_connection,
                    settled=self._settled,
                    shared=self.backend.capabilities.supports_concurrent_processes,
                )
                with _live_lock:
                    _writers.setdefault(self.identity, set()).add(self)
            return self._writer

    # -- the writer's side (its thread) --------------------------------------------------------

    def _write_finished(self, runs: list[RunLog]) -> None:
        """One transaction: runs already shown as running are updated, the others inserted by one
        statement; older runs pruned now and then."""
        # The rows are made before a connection is taken: the runs share the pool with this writer.
        fresh, shown = [], []
        for run in runs:
            values = self._values(run)
            if run.rows.get(self.identity):
                shown.append((run, values))
            else:
                fresh.append(_inserted(run, self.backend.safe_url, values))
        with _short_transaction(self.backend, flush=False) as connection:
            for run, values in shown:
                # A running row that is gone (pruned, or its commit's fate unknown) is inserted anew.
                if not connection.execute_count(self._statement("update"), values):
                    fresh.append(_inserted(run, self.backend.safe_url, values))
            if fresh:
                self._insert(connection, fresh)
                self._unpruned += len(fresh)
            if self._unpruned >= max(1, self.keep // 100):
                connection.execute_count(self._statement("prune"), {"keep": self.keep})
                self._unpruned = 0

    def _write_running(self, runs: list[RunLog]) -> None:
        """Runs executing here, with their nodes so far, as ``running`` rows other processes see."""
        with _short_transaction(self.backend, flush=False) as connection:
            fresh = []
            for run in runs:
                values = {**self._values(run), "status": "running", "finished_at": None, "seconds": None}
                shown = run.rows.get(self.identity)
                run.rows[self.identity] = True  # from here the row may be there: the end updates it
                if not shown or not connection.execute_count(self._statement("update"), values):
                    fresh.append(_inserted(run, self.backend.safe_url, values))
            if fresh:
                self._insert(connection, fresh)

    def _insert(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        """Rows in one statement, each column bound as one array (``INSERT ... SELECT unnest``):
        one shape whatever the number of rows, and, unlike COPY, allowed on a table with
        row-level security."""
        connection.execute_count(self._statement("insert"), {c: [row[c] for row in rows] for c in _INSERTED})

    def _values(self, run: RunLog) -> dict[str, Any]:
        return {**_finish_values(run), "served_by": run.served_by.get(self.backend.safe_url)}

    def _settled(self, runs: list[RunLog]) -> None:
        for run in runs:
            self.forget(run)

    # -- waiting for the writer ----------------------------------------------------------------

    def flush(self, timeout: float = READ_TIMEOUT) -> bool:
        """Wait until the runs that ended before this call are written (at most ``timeout``
        seconds); False when they are not (a database that refuses them, or a slow one)."""
        writer = self._writer
        return writer is None or writer.flush(timeout)

    def _caught_up(self, timeout: float = READ_TIMEOUT) -> None:
        """Before a read: every history of this process on this database has written what ended."""
        with _live_lock:
            histories = list(_writers.get(self.identity, ()))
        for history in histories:
            writer = history._writer
            if writer is not None and writer.pending:
                writer.flush(timeout)

    def before_sql(self, sql: str) -> None:
        """A run is about to send SQL text: if it names the history, the runs that ended before it
        in this process are written first, so raw SQL reads them too."""
        if RUNS_TABLE in sql:
            self._caught_up_in_run()

    def _caught_up_in_run(self) -> None:
        """``_caught_up`` for a run about to read the history: only when the pool has a connection
        spare (the run holds one already, and the writer needs another), and for a second at most."""
        if _writers.get(self.identity) and self.backend.has_spare_connection():
            self._caught_up(SQL_READ_TIMEOUT)

    def close(self) -> None:
        """Write what is queued, then stop the writer (``DataFlow.close`` and its finalizer)."""
        with self._lock:
            self._closed = True
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close(CLOSE_TIMEOUT)
        with _live_lock:
            mine = _writers.get(self.identity)
            if mine is not None:
                mine.discard(self)
                if not mine:
                    _writers.pop(self.identity, None)

    # -- reading -----------------------------------------------------------------------------

    def read_runs(self, last: int) -> pa.Table:
        """The newest ``last`` runs, newest first (runs executing in this process as they stand)."""
        self._caught_up()
        self.ensure_tables()
        with self.backend_connection() as connection:
            table = connection.execute(self._statement("runs"), {"last": last})
        assert table is not None
        table = table.select(list(RUN_COLUMNS))
        live = {r.run_id: r for r in live_runs(self.identity)}
        if not live:
            return table
        rows = table.to_pylist()
        shown = {row["run_id"] for row in rows}
        for i, row in enumerate(rows):
            if row["run_id"] in live and row["status"] == "running":
                rows[i] = live[row["run_id"]].row(row["database"])
        # A run of this process that has not touched the database yet is not in the table.
        extra = [r.row(self.backend.safe_url) for r in live.values() if r.run_id not in shown]
        rows = sorted(extra, key=lambda r: r["started_at"], reverse=True) + rows
        return pa.Table.from_pylist(rows[:last], schema=table.schema)

    def read_nodes(self, run_id: str) -> pa.Table:
        """The nodes of one run in the order they ran (live for a run executing in this process)."""
        schema = pa.schema([f for f in _NODE_SCHEMA if f.name in NODE_COLUMNS])
        run = live_run(self.identity, run_id)
        if run is not None:
            return pa.Table.from_pylist(run.node_rows(), schema=schema)
        self._caught_up()
        self.ensure_tables()
        with self.backend_connection() as connection:
            table = connection.execute(self._statement("nodes"), {"run_id": run_id})
        assert table is not None
        logged = table.column(0).to_pylist() if table.num_rows else []
        rows = json.loads(logged[0]) if logged and logged[0] else []
        return pa.Table.from_pylist([{"position": i, **row} for i, row in enumerate(rows)], schema=schema)

    def tenant_summary(self) -> pa.Table:
        """Per tenant (null: runs without one): runs, failed runs, rows read and written by their nodes."""
        self._caught_up()
        self.ensure_tables()
        with self.backend_connection() as connection:
            table = connection.execute(self._statement("tenants"))
        assert table is not None
        return table.cast(
            pa.schema(
                [
                    ("tenant_id", pa.string()),
                    ("runs", pa.int64()),
                    ("failed_runs", pa.int64()),
                    ("rows_read", pa.int64()),
                    ("rows_written", pa.int64()),
                ]
            )
        )

    def loads_of(self, table: str, tenant_id: str | None, newer_than: int = 500) -> list[tuple[str, datetime, str]]:
        """What BulkCreate runs that committed loaded into ``table`` (as ``tenant_id``), newest first:
        (run id, started at, ``NodeRecord.loaded``) from the newest ``newer_than`` such runs; none
        when the history cannot be read (a role that may not create or read it). Asked inside a
        run (a load): it waits for this process's runs only as ``before_sql`` does."""
        if not self._tables_ready():
            return []
        self._caught_up_in_run()
        try:
            with self.backend_connection() as connection:
                found = connection.execute(
                    self._statement("loads"),
                    {"pattern": f'%"loaded":"{table}|%', "tenant_id": tenant_id, "last": newer_than},
                )
        except Exception as exc:  # a courtesy check: the load goes on
            log.debug("run history: loads of %s not read on %s: %s", table, self.backend.safe_url, exc)
            return []
        return [
            (row["run_id"], row["started_at"], node["loaded"])
            for row in (found.to_pylist() if found is not None else [])
            for node in json.loads(row["node_log"] or "[]")
            if (node.get("loaded") or "").startswith(f"{table}|")
        ]

    def has_run(self, run_id: str) -> bool:
        """Whether the history holds ``run_id`` (or it executes in this process now)."""
        if live_run(self.identity, run_id) is not None:
            return True
        self._caught_up()
        self.ensure_tables()
        with self.backend_connection() as connection:
            found = connection.execute(self._statement("has_run"), {"run_id": run_id})
        return found is not None and found.num_rows > 0

    def backend_connection(self) -> closing[Connection]:
        """A connection of its own for reading the history, closed (rolled back) at the end."""
        return closing(self.backend.connect())


_NODE_LOG = json.JSONEncoder(separators=(",", ":"))  # one encoder, not one per run (json.dumps with options)


def _inserted(run: RunLog, database: str, values: dict[str, Any]) -> dict[str, Any]:
    """A run's row as inserted: what its start fixed, then ``values`` (its end, or its progress)."""
    return {
        "database": database,
        "tenant_id": run.tenant_id,
        "started_at": run.started_at,
        "nodes": run.nodes_planned,
        **values,
    }


def _finish_values(run: RunLog) -> dict[str, Any]:
    nodes = [vars(n) for n in list(run.nodes)]  # NodeRecord's fields are NODE_COLUMNS
    return {
        "run_id": run.run_id,
        "finished_at": run.finished_at,
        "seconds": run.seconds,
        "status": run.status,
        "error_node": run.error_node,
        "error": run.error,
        "rows_read": sum(n.rows_read for n in run.nodes),
        "rows_written": sum(n.rows_written for n in run.nodes),
        "node_log": _NODE_LOG.encode(nodes),
    }


_INSERTED = (*RUN_COLUMNS, "node_log")
_FINISHED = (
    "finished_at", "seconds", "status", "error_node", "error", "rows_read", "rows_written", "served_by", "node_log",
)  # fmt: skip


def _bind(table: sa.Table, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: sa.bindparam(n, type_=table.c[n].type) for n in names}


def _tenants() -> sa.Select[Any]:
    failed = sa.case((runs_table.c.status.in_(["failed", "interrupted"]), 1), else_=0)

    def total(column: Any) -> Any:
        return sa.cast(sa.func.coalesce(sa.func.sum(column), 0), sa.BigInteger)

    return (
        sa.select(
            runs_table.c.tenant_id,
            sa.cast(sa.func.count(), sa.BigInteger).label("runs"),
            total(failed).label("failed_runs"),
            total(runs_table.c.rows_read).label("rows_read"),
            total(runs_table.c.rows_written).label("rows_written"),
        )
        .group_by(runs_table.c.tenant_id)
        .order_by(runs_table.c.tenant_id)
    )


def _prune() -> sa.Delete:
    """Rows beyond the newest ``keep`` go (by number: the order they were first written in)."""
    newest = runs_table.c.seq.desc()
    cut = sa.select(runs_table.c.seq).order_by(newest).limit(1).offset(sa.bindparam("keep", type_=sa.BigInteger))
    return sa.delete(runs_table).where(runs_table.c.seq <= cut.scalar_subquery())


_STATEMENTS: dict[str, Any] = {
    "tenants": _tenants,
    "insert": lambda: sa.insert(runs_table).from_select(
        list(_INSERTED),
        sa.select(*(sa.func.unnest(sa.bindparam(c, type_=sa.ARRAY(runs_table.c[c].type))).label(c) for c in _INSERTED)),
    ),
    "update": lambda: (
        sa.update(runs_table)
        .where(runs_table.c.run_id == sa.bindparam("run_id", type_=sa.Text))
        .values(_bind(runs_table, _FINISHED))
    ),
    "prune": _prune,
    "runs": lambda: (
        sa.select(*(runs_table.c[c] for c in RUN_COLUMNS))
        .order_by(runs_table.c.seq.desc())
        .limit(sa.bindparam("last", type_=sa.BigInteger))
    ),
    "loads": lambda: (
        sa.select(runs_table.c.run_id, runs_table.c.started_at, runs_table.c.node_log)
        .where(
            sa.or_(runs_table.c.status == "ok", runs_table.c.status == "retried"),  # runs that committed
            runs_table.c.node_log.like(sa.bindparam("pattern", type_=sa.Text)),
            runs_table.c.tenant_id.is_not_distinct_from(sa.bindparam("tenant_id", type_=sa.Text)),
        )
        .order_by(runs_table.c.seq.desc())
        .limit(sa.bindparam("last", type_=sa.BigInteger))
    ),
    "has_run": lambda: sa.select(runs_table.c.seq).where(runs_table.c.run_id == sa.bindparam("run_id", type_=sa.Text)),
    "nodes": lambda: sa.select(runs_table.c.node_log).where(
        runs_table.c.run_id == sa.bindparam("run_id", type_=sa.Text)
    ),
}
