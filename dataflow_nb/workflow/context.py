"""A run's context: one connection and one transaction per database, and the single point
every statement passes through (queries, writes, bulk ingests and staging DDL alike): timing,
row counts, metrics, the slow-query log and the result cache hook in here, and so can tenancy."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from dataflow_nb.backends.base import CompiledSQL, Connection
from dataflow_nb.backends.errors import loggable_error
from dataflow_nb.backends.replicas import PRIMARY, Route
from dataflow_nb.cache.results import EVERYTHING, CachePolicy, cache_policy
from dataflow_nb.core.masking import mask_values
from dataflow_nb.nodes.model_node import ModelNode
from dataflow_nb.query.scope import Scope

if TYPE_CHECKING:
    from dataflow_nb.cache.results import Lookup
    from dataflow_nb.core.digest import InputDigest
    from dataflow_nb.monitor.runs import NodeRecord, RunLog
    from dataflow_nb.nodes.base import Node
    from dataflow_nb.protocols import RunDatabase

T = TypeVar("T")
log = logging.getLogger("dataflow_nb")


@dataclass
class QueryStats:
    """Counts for one run: how many statements, how long they took, how many rows came back."""

    statements: int = 0
    seconds: float = 0.0
    rows: int = 0


@dataclass
class RunContext:
    """Connections are taken lazily, the first time a node touches a database."""

    run_id: str
    scope: Scope = field(default_factory=Scope)
    node_id: str | None = None
    connections: dict[int, tuple[RunDatabase, Connection]] = field(default_factory=dict)
    stats: QueryStats = field(default_factory=QueryStats)
    cache_policy: CachePolicy | None = None  # the running node's; None: its reads are never cached
    written: dict[int, set[str]] = field(default_factory=dict)  # tables each database was written
    snapshots: dict[int, int] = field(default_factory=dict)  # each cache's commit count at BEGIN
    # Results read on a cache miss: handed to the cache's writer once the run let go of its
    # connections, so copying them into the cache never competes with the run itself.
    cache_fills: list[tuple[RunDatabase, Lookup, pa.Table]] = field(default_factory=list)
    digests: dict[str, InputDigest] = field(default_factory=dict)  # bulk input per node, for the audit
    secrets: set[str] = field(default_factory=set)  # sensitive values the run was given: masked in errors
    retries: int = 0  # how many earlier attempts of this run failed and were retried
    commit_sent: bool = False  # from here on the run is never retried: a commit may have happened
    committed: list[str] = field(default_factory=list)  # names of the databases that committed, in order
    touched: dict[int, RunDatabase] = field(default_factory=dict)  # every database the run used, kept after release
    log: RunLog | None = None  # the run's history record (runs of the runtime; not explain's)
    recorded: dict[int, RunDatabase] = field(default_factory=dict)  # the databases whose history records the run
    current: NodeRecord | None = None  # the running node's history record: its rows are counted here
    # ids of the DataFlows some node of the run may write (None: unknown, so all of them); a
    # DataFlow with replicas that the run only reads is read from one of them.
    writers: frozenset[int] | None = None
    replica_routes: dict[int, Route] = field(default_factory=dict)  # the databases read from a replica

    def connection(self, db: RunDatabase) -> Connection:
        entry = self.connections.get(id(db))
        if entry is None:
            if db.result_cache is not None:
                self.snapshots[id(db)] = db.result_cache.commits
            self.touched[id(db)] = db
            if self.log is not None and db.history.start(self.log):  # the history starts no transaction
                self.recorded[id(db)] = db
            entry = (db, self._connect(db))
            self.connections[id(db)] = entry
            tenant = self._tenant_bound(db)
            if tenant is not None:
                # Before any statement of the run, on every database it touches (SQLQueryNode's db may be a
                # DataFlow without the models): the database scopes even raw SQL to this tenant, and SQL
                # cannot bind the transaction to another one.
                known = any(m.multi_tenant for m in db.models.values())
                db.backend.begin_tenant(entry[1], tenant, known=known)
        return entry[1]

    def _connect(self, db: RunDatabase) -> Connection:
        """The primary's connection, or a replica's for a database the run only reads."""
        if self.log is not None:
            self.log.served_by[db.backend.safe_url] = PRIMARY
        if db.replicas is None:
            return db.backend.connect()
        # Binding a run to its tenant records the transaction's id: a write no standby takes.
        reads_only = self.writers is not None and id(db) not in self.writers and self._tenant_bound(db) is None
        route = db.replicas.connect(db.backend, reads_only=reads_only)
        if route.replica is not None:
            self.replica_routes[id(db)] = route
            if self.log is not None:
                self.log.served_by[db.backend.safe_url] = route.served_by
        return route.connection

    def _tenant_bound(self, db: RunDatabase) -> str | None:
        """The tenant a tenant's run binds ``db``'s transaction to: every database it touches, since
        another DataFlow's multi-tenant tables may be there (``begin_tenant(known=False)``)."""
        return self.scope.tenant_id or None

    def served_by(self, db: RunDatabase) -> str:
        """Where the run's statements on ``db`` went: ``"primary"`` or a replica's masked URL."""
        route = self.replica_routes.get(id(db))
        return PRIMARY if route is None else route.served_by

    def start_node(self, node_id: str, node: Node, params: Mapping[str, Any]) -> None:
        """Before a node runs: its id for the monitor, its cache choice, and the model it writes
        (noted up front, so even a statement that bypasses this context is invalidated)."""
        self.node_id = node_id
        if self.log is not None:
            self.current = self.log.start_node(node_id, node.node_type)
        self.cache_policy = cache_policy(node, params)
        if self.cache_policy is None and isinstance(node, ModelNode):
            self.note_writes(node.db, {node.model.table_name})

    def note_writes(self, db: RunDatabase, tables: set[str] | frozenset[str]) -> None:
        """Remember what the run wrote: invalidated after its commit, read uncached until then."""
        self.written.setdefault(id(db), set()).update(tables)

    def execute(
        self,
        db: RunDatabase,
        compiled: CompiledSQL,
        params: Mapping[str, Any] | None = None,
        *,
        read_only: bool = False,
    ) -> pa.Table | None:
        """Run a statement; the rows it returns are counted. A read the result cache holds is
        answered from it; a write is noted for invalidation after the commit.

        ``read_only`` runs the statement so that the database (or DuckDB's parser) refuses any write.
        """
        lookup = self._cache_lookup(db, compiled, params)
        if lookup is not None:
            assert db.result_cache is not None
            cached = db.result_cache.get(lookup)
            if cached is not None:
                return cached
        self._note_statement(db, compiled)

        def run(connection: Connection) -> pa.Table | None:
            if read_only:
                return db.backend.execute_read_only(connection, compiled)
            return connection.execute(compiled, params)

        writes = compiled.writes is None or bool(compiled.writes)
        result = self._measured(db, compiled, params, run, lambda r: 0 if r is None else r.num_rows, writes=writes)
        if lookup is not None and result is not None and self._fresh(db):
            self.cache_fills.append((db, lookup, result))
        return result

    def execute_count(self, db: RunDatabase, compiled: CompiledSQL, params: Mapping[str, Any] | None = None) -> int:
        """Run a write that returns no rows; the rows it changed are counted and returned."""
        self._note_statement(db, compiled)
        return self._measured(
            db, compiled, params, lambda c: c.execute_count(compiled, params), lambda n: n, writes=True
        )

    def ingest(self, db: RunDatabase, table: str, data: pa.RecordBatchReader, *, temporary: bool = False) -> int:
        """Append a stream of batches to a table; the rows written are counted and returned."""
        if not temporary:
            self.note_writes(db, {table})
        return self._measured(
            db,
            f"COPY {table} (bulk ingest)",
            None,
            lambda c: c.ingest(table, data, temporary=temporary),
            lambda n: n,
            writes=not temporary,  # a staging table's rows are counted when they reach the model's
        )

    def _fresh(self, db: RunDatabase) -> bool:
        """The run reads the primary: a replica may not have replayed a write another process
        already invalidated the cache for, so what it answers is never kept."""
        return id(db) not in self.replica_routes

    def _note_statement(self, db: RunDatabase, compiled: CompiledSQL) -> None:
        if compiled.writes is None or compiled.writes:
            self.note_writes(db, compiled.writes or {EVERYTHING})

    def _cache_lookup(self, db: RunDatabase, compiled: CompiledSQL, params: Mapping[str, Any] | None) -> Lookup | None:
        if db.result_cache is None or self.cache_policy is None:
            return None
        # Without a transaction yet, the one opened on a miss is at least as new as the tokens.
        snapshot = self.snapshots.get(id(db), db.result_cache.commits)
        return db.result_cache.lookup(
            compiled,
            compiled.bind(params),
            policy=self.cache_policy,
            written=self.written.get(id(db), ()),
            snapshot=snapshot,
            tenant=self.scope.tenant_id,
        )

    def _measured(
        self,
        db: RunDatabase,
        statement: CompiledSQL | str,
        params: Mapping[str, Any] | None,
        call: Callable[[Connection], T],
        rows_of: Callable[[T], int],
        *,
        writes: bool = False,
    ) -> T:
        """The one instrumentation point: every statement of a run is timed, counted and reported here.

        A slow statement's values go to the monitor's memory, so its plan can be asked for with them.
        """
        connection = self.connection(db)
        sql = statement if isinstance(statement, str) else statement.sql
        values = None if isinstance(statement, str) else functools.partial(statement.bind, params)
        started = time.perf_counter()
        try:
            result = call(connection)
        except Exception as exc:
            error = mask_values(loggable_error(exc), self.secrets)
            self._record(db, sql, time.perf_counter() - started, 0, error=error, values=values)
            route = self.replica_routes.get(id(db))
            if route is not None and db.replicas is not None:
                db.replicas.note_failure(route, exc, self.run_id)  # a replica gone: the retry reads the primary
            raise
        rows = rows_of(result)
        self._record(db, sql, time.perf_counter() - started, rows, values=values)
        if self.current is not None and rows > 0:
            if writes:
                self.current.rows_written += rows
            else:
                self.current.rows_read += rows
        return result

    def _record(
        self,
        db: RunDatabase,
        sql: str,
        seconds: float,
        rows: int,
        *,
        error: str | None = None,
        values: Callable[[], list[Any]] | None = None,
    ) -> None:
        self.stats.statements += 1
        self.stats.seconds += seconds
        self.stats.rows += max(rows, 0)
        if db.monitor is not None:
            db.monitor.record_query(
                sql,
                seconds,
                rows,
                node_id=self.node_id,
                run_id=self.run_id,
                error=error,
                tenant=self.scope.tenant_id,
                values=values,
            )

    def record_run(self, seconds: float, *, status: str, nodes: int) -> None:
        """Tell the monitor of every database the run touched how the run went."""
        for db in self.touched.values():
            if db.monitor is not None:
                db.monitor.record_run(
                    self.run_id, seconds, status=status, nodes=nodes, retries=self.retries, served_by=self.served_by(db)
                )

    def record_retry(self) -> None:
        """Count a retry of this run in the monitor of every database the failed attempt touched."""
        for db in self.touched.values():
            if db.monitor is not None:
                db.monitor.record_retry(self.run_id)

    def finish_node(self, status: str = "ok", *, error: str | None = None) -> None:
        """The running node ended: its history record says how, and for how long."""
        if self.current is not None and self.log is not None:
            self.current.seconds = time.perf_counter() - self.log.clock - self.current.started
            self.current.error = None if error is None else mask_values(error, self.secrets)
            self.current.status = status
            self.current = None

    def record_history_apart(self) -> None:
        """A failed or interrupted run, after its connections were released: each database
        records it in a transaction of its own."""
        if self.log is not None:
            for db in self.recorded.values():
                db.history.finish_apart(self.log)

    def forget_history(self) -> None:
        """The run is over: it is no longer live in this process."""
        if self.log is not None:
            for db in self.touched.values():
                db.history.forget(self.log)

    def commit(self) -> None:
        """Commit every database the run touched, in the order it first touched them.

        There is no atomicity across databases: when one commit fails, the ones before it stay
        committed (``committed`` names them) and the rest are rolled back by ``release``. Each
        database's cached reads of what the run wrote are invalidated as soon as it committed.
        An ok run's history row is written on each database's own connection: inside the
        transaction where the history says so (DuckDB), else right after all the commits, so
        bookkeeping never adds a statement (or a serialization conflict) to the run's transaction.
        """
        run = self.log
        for key, (db, _) in list(self.connections.items()):
            self._settle_partitions(db, self.written.get(key, set()))
        recorded = [(db, connection) for key, (db, connection) in self.connections.items() if key in self.recorded]
        for db, connection in recorded:
            if run is not None and db.history.writes_in_run:
                db.history.finish_in(connection, run)
        self.commit_sent = True
        for key, (db, connection) in self.connections.items():
            connection.commit()
            self.committed.append(db.name)
            if db.replicas is not None and self.written.get(key):
                db.replicas.note_commit(connection, db.backend)  # read-your-writes: replicas must replay this first
            if db.result_cache is not None:
                db.result_cache.invalidate(self.written.pop(key, ()))
        for db, connection in recorded:
            if run is not None and id(db) in self.replica_routes:
                db.history.finish_apart(run)  # the history lives on the primary; the replica is read-only
            elif run is not None and not db.history.writes_in_run:
                db.history.finish_after_commit(connection, run)

    def _settle_partitions(self, db: RunDatabase, written: set[str]) -> None:
        """Before the commit: rows the run wrote into no partition of their own get one, created
        in the run's transaction (``backends/postgres_partitions.py``)."""
        if not db.backend.partitions.supported or not written:
            return
        for spec in db.models.values():
            if spec.partitioning is not None and (spec.table_name in written or EVERYTHING in written):
                self._measured(
                    db,
                    f"settle partitions of {spec.table_name}",
                    None,
                    functools.partial(db.backend.partitions.settle, table=spec.table),
                    lambda moved: 0,  # the rows were counted when they were written
                    writes=True,
                )

    @property
    def rolled_back(self) -> tuple[str, ...]:
        """The databases the run touched that did not commit."""
        return tuple(db.name for db in self.touched.values() if db.name not in self.committed)

    def release(self) -> None:
        """Roll back whatever did not commit and give every connection back; never raises.

        Runs in ``finally`` for any exception, KeyboardInterrupt included, so no session is left
        idle in a transaction holding locks. A rollback that fails (the server is gone) leaves
        the connection marked broken, and closing it then discards it instead of pooling it.
        """
        committed = set(self.committed)
        for db, connection in self.connections.values():
            if db.name not in committed:
                try:
                    connection.rollback()
                except Exception as exc:  # the original failure is what the user needs to see
                    log.debug("run %s: rollback on %s failed: %s", self.run_id, db.backend.safe_url, exc)
            try:
                connection.close()
            except Exception as exc:
                log.debug("run %s: closing the connection to %s failed: %s", self.run_id, db.backend.safe_url, exc)
        self.connections.clear()
        fills, self.cache_fills = self.cache_fills, []
        for db, lookup, table in fills:
            if db.result_cache is not None:
                try:
                    db.result_cache.put(lookup, table)
                except Exception as exc:  # the cache only ever skips an entry
                    log.debug("run %s: a result was not cached: %s", self.run_id, exc)
