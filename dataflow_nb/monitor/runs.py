"""Run history kept in the database itself, so a restarted kernel, another kernel or the CLI sees it.

One table with the reserved prefix, ``dataflow_nb_runs``, created on first use and never listed
as a model: one row per run, its nodes kept in the row as JSON text (one statement writes a run
of any size). An in-memory DuckDB keeps it in memory, like everything else it holds.

Writing is kept cheap, because every run pays for it (``benchmarks/history.py``):

- an ok run's outcome and its nodes are one statement on the run's own connection: on DuckDB just
  before its commit (so it commits with it), on PostgreSQL just after it, in a transaction of its
  own (no bookkeeping statement inside the run's transaction, where serializable checks could
  fail it); older runs are pruned now and then, with an insert;
- on a database other processes share (PostgreSQL), a run that lasts longer than
  ``PROGRESS_INTERVAL`` gets a ``running`` row, refreshed with its nodes so far once an interval
  by a timer thread, in short transactions of its own, so other kernels see it while it executes;
  a short run pays for none of that. DuckDB (one process at a time) has no use for it;
- a failed or interrupted run is written after the rollback, in its own short transaction, never
  inside the run's transaction (which is gone by then).

Runs executing in this process are also kept in memory (``live_run``), so a view shows their
nodes changing state as they finish without any extra statement.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa

from dataflow_nb.backends.base import CompiledSQL, Connection, compile_statement
from dataflow_nb.exceptions import DataflowError

if TYPE_CHECKING:
    from dataflow_nb.backends.base import Backend

log = logging.getLogger("dataflow_nb")

RUNS_TABLE = "dataflow_nb_runs"
RUN_STATUSES = ("running", "ok", "failed", "interrupted", "retried")
DEFAULT_KEEP = 10_000
PROGRESS_INTERVAL = 1.0  # seconds: when a run first shows to other kernels, and how often it is refreshed

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


@dataclass
class NodeRecord:
    """One node of a run: what it did, how long it took, how it ended."""

    node_id: str
    node_type: str
    started: float  # seconds after the run started
    status: str = "running"
    seconds: float = 0.0
    rows_read: int = 0
    rows_written: int = 0
    error: str | None = None
    loaded: str | None = None  # a BulkCreate's "table|mode|source fingerprint" (``bulk/reload.py``)


@dataclass
class RunLog:
    """A run as it happens: the runtime fills it, the history writes it, views read it live."""

    run_id: str
    tenant_id: str | None
    nodes_planned: int
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    clock: float = field(default_factory=time.perf_counter)
    nodes: list[NodeRecord] = field(default_factory=list)
    status: str = "running"
    seconds: float | None = None
    finished_at: datetime | None = None
    error_node: str | None = None
    error: str | None = None
    # Database identity -> its row's number: 0 until the row is written, None when not recorded.
    numbers: dict[str, int | None] = field(default_factory=dict)
    # Guards the row between the run and its progress timers; ``closed``: the outcome is written.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    timers: list[threading.Timer] = field(default_factory=list, repr=False)
    closed: bool = False
    # Primary's masked URL -> where the run went there: "primary" or a replica's masked URL.
    served_by: dict[str, str] = field(default_factory=dict)

    def start_node(self, node_id: str, node_type: str) -> NodeRecord:
        record = NodeRecord(node_id, node_type, time.perf_counter() - self.clock)
        self.nodes.append(record)
        return record

    def finish(self, status: str, *, error_node: str | None = None, error: str | None = None) -> None:
        self.seconds = time.perf_counter() - self.clock
        self.finished_at = datetime.now(UTC)
        self.status = status
        self.error_node = error_node
        self.error = error

    def row(self, database: str) -> dict[str, Any]:
        """The run as a row of ``db.runs()``."""
        return {
            "run_id": self.run_id,
            "database": database,
            "tenant_id": self.tenant_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": self.seconds,
            "status": self.status,
            "nodes": self.nodes_planned,
            "error_node": self.error_node,
            "error": self.error,
            "rows_read": sum(n.rows_read for n in self.nodes),
            "rows_written": sum(n.rows_written for n in self.nodes),
            "served_by": self.served_by.get(database),
        }

    def node_rows(self) -> list[dict[str, Any]]:
        """The nodes as rows of ``db.run(run_id)``; a running node's seconds count up."""
        now = time.perf_counter() - self.clock
        return [
            {
                "position": i,
                **vars(n),
                "seconds": (now - n.started) if n.status == "running" else n.seconds,
            }
            for i, n in enumerate(list(self.nodes))
        ]


_live_lock = threading.Lock()
_live: dict[str, dict[str, RunLog]] = {}  # database identity -> run id -> the run executing here


def live_runs(identity: str) -> list[RunLog]:
    """Runs executing in this process on the database ``identity`` (any DataFlow on it)."""
    with _live_lock:
        return list(_live.get(identity, {}).values())


def live_run(identity: str, run_id: str) -> RunLog | None:
    with _live_lock:
        return _live.get(identity, {}).get(run_id)


@contextmanager
def _short_transaction(backend: Backend) -> Iterator[Connection]:
    connection = backend.connect()
    try:
        yield connection
        connection.commit()
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
        self._lock = threading.Lock()
        self._compiled: dict[str, CompiledSQL] = {}

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

    # -- writing -----------------------------------------------------------------------------

    def start(self, run: RunLog) -> bool:
        """Note ``run`` as executing here; whether it is recorded on this database.

        A database that refuses (a role that may not create or write the table) keeps no history
        for this DataFlow, said once in the log, and the run goes on.
        """
        if self.identity in run.numbers:  # a retry: the run already started here
            return run.numbers[self.identity] is not None
        with _live_lock:
            _live.setdefault(self.identity, {})[run.run_id] = run
        recorded = self.record and self._tables_ready()
        run.numbers[self.identity] = 0 if recorded else None
        if recorded and self.backend.capabilities.supports_concurrent_processes:
            self._show_later(run)
        return recorded

    @property
    def writes_in_run(self) -> bool:
        """An ok run's row is written inside its transaction (DuckDB), not just after its commit."""
        return not self.backend.capabilities.supports_concurrent_processes

    def _tables_ready(self) -> bool:
        try:
            self.ensure_tables()
        except Exception as exc:
            self.record = False
            log.warning("run history is off for %s: %s", self.backend.safe_url, exc)
            return False
        return True

    def _show_later(self, run: RunLog) -> None:
        timer = threading.Timer(PROGRESS_INTERVAL, self._show, (run,))
        timer.daemon = True
        with run.lock:
            if run.closed:
                return
            run.timers.append(timer)
        timer.start()

    def _show(self, run: RunLog) -> None:
        """On a timer: let other kernels see a run that is still executing, with its nodes so far;
        then again an interval later. A short transaction of its own, only when the pool has a
        connection free (a run never waits for its own history)."""
        if run.closed or not self.record or not self.backend.has_spare_connection():
            self._show_later(run)
            return
        try:
            with _short_transaction(self.backend) as connection, run.lock:  # connect first: never wait holding it
                if not run.closed:
                    self._write(connection, run, running=True)
        except Exception as exc:  # progress is a courtesy; the run goes on
            log.debug("run %s: progress not shown on %s: %s", run.run_id, self.backend.safe_url, exc)
        self._show_later(run)

    def _write(self, connection: Connection, run: RunLog, *, running: bool = False) -> None:
        """The run's row as it stands: inserted the first time, updated after that."""
        values = {**_finish_values(run), "served_by": run.served_by.get(self.backend.safe_url)}
        if running:
            values.update(status="running", finished_at=None, seconds=None)
        # A row that is gone (inserted by a transaction that then failed to commit) is inserted anew.
        if not run.numbers.get(self.identity) or not connection.execute_count(self._statement("finish"), values):
            run.numbers[self.identity] = self._insert(connection, {**run.row(self.backend.safe_url), **values})

    def _insert(self, connection: Connection, values: dict[str, Any]) -> int:
        """Insert a run's row; every ``keep // 100`` runs, prune the oldest beyond ``keep``."""
        inserted = connection.execute(self._statement("start"), values)
        assert inserted is not None
        seq = int(inserted.column(0)[0].as_py())
        every = max(1, self.keep // 100)
        if seq % every == 0 and seq > self.keep:
            connection.execute_count(self._statement("prune"), {"cut": seq - self.keep})
        return seq

    def finish_in(self, connection: Connection, run: RunLog) -> None:
        """Write an ok run's outcome and nodes on its own ``connection``: inside its transaction
        where ``writes_in_run``, else after its commit (then committed here)."""
        with run.lock:
            _close(run)
            self._write(connection, run)
        if not self.writes_in_run:
            connection.commit(flush=False)  # the run itself committed durably; its row needs no second fsync

    def finish_after_commit(self, connection: Connection, run: RunLog) -> None:
        """``finish_in`` for a run that has committed: a failure here is logged, the run stays ok."""
        try:
            self.finish_in(connection, run)
        except Exception as exc:
            _quietly(connection.rollback)
            log.warning("run %s could not be recorded on %s: %s", run.run_id, self.backend.safe_url, exc)

    def finish_apart(self, run: RunLog) -> None:
        """Write a failed or interrupted run's outcome after its rollback, in a short transaction
        of its own."""
        try:
            with _short_transaction(self.backend) as connection, run.lock:
                _close(run)
                self._write(connection, run)
        except Exception as exc:  # the run's own error is what the user must see
            log.warning("run %s could not be recorded on %s: %s", run.run_id, self.backend.safe_url, exc)

    def forget(self, run: RunLog) -> None:
        """The run is over: views read it from the tables from now on."""
        with run.lock:
            _close(run)
        with _live_lock:
            self_runs = _live.get(self.identity, {})
            self_runs.pop(run.run_id, None)
            if not self_runs:
                _live.pop(self.identity, None)

    # -- reading -----------------------------------------------------------------------------

    def read_runs(self, last: int) -> pa.Table:
        """The newest ``last`` runs, newest first (runs executing in this process as they stand)."""
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
        self.ensure_tables()
        with self.backend_connection() as connection:
            table = connection.execute(self._statement("nodes"), {"run_id": run_id})
        assert table is not None
        logged = table.column(0).to_pylist() if table.num_rows else []
        rows = json.loads(logged[0]) if logged and logged[0] else []
        return pa.Table.from_pylist([{"position": i, **row} for i, row in enumerate(rows)], schema=schema)

    def tenant_summary(self) -> pa.Table:
        """Per tenant (null: runs without one): runs, failed runs, rows read and written by their nodes."""
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
        when the history cannot be read (a role that may not create or read it)."""
        if not self._tables_ready():
            return []
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
        self.ensure_tables()
        with self.backend_connection() as connection:
            found = connection.execute(self._statement("has_run"), {"run_id": run_id})
        return found is not None and found.num_rows > 0

    def backend_connection(self) -> closing[Connection]:
        """A connection of its own for reading the history, closed (rolled back) at the end."""
        return closing(self.backend.connect())


def _close(run: RunLog) -> None:
    """The run is over (call with ``run.lock`` held): its progress timers stop."""
    run.closed = True
    for timer in run.timers:
        timer.cancel()
    run.timers.clear()


def _quietly(call: Callable[[], object]) -> None:
    try:
        call()
    except Exception as exc:  # cleaning up after an error already reported
        log.debug("run history: %s", exc)


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
        "node_log": json.dumps(nodes, separators=(",", ":")),
    }


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


_STATEMENTS: dict[str, Any] = {
    "tenants": _tenants,
    "start": lambda: (
        sa.insert(runs_table).values(_bind(runs_table, (*RUN_COLUMNS, "node_log"))).returning(runs_table.c.seq)
    ),
    "finish": lambda: (
        sa.update(runs_table)
        .where(runs_table.c.run_id == sa.bindparam("run_id", type_=sa.Text))
        .values(_bind(runs_table, _FINISHED))
    ),
    "prune": lambda: sa.delete(runs_table).where(runs_table.c.seq <= sa.bindparam("cut", type_=sa.BigInteger)),
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
