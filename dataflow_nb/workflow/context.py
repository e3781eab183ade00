"""A run's context: one connection and one transaction per database, and the single point
every statement passes through (queries, writes, bulk ingests and staging DDL alike).

What else follows the run (the result cache, the monitor, the run history, the audit, the
masking of sensitive values) subscribes to its events (``RunObserver`` in ``protocols.py``, and
``observers/``): this module keeps the connections, the tenant scope, the run's id and the
observers, and tells them.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from dataflow_nb.backends.base import CompiledSQL, Connection
from dataflow_nb.backends.replicas import PRIMARY, Route
from dataflow_nb.cache.results import EVERYTHING
from dataflow_nb.frames import Frame, FrameKind, JsonMode, casts_nothing, polars_frame, to_frame
from dataflow_nb.protocols import NodeEnd, RunObserver, Statement
from dataflow_nb.query.scope import Scope
from dataflow_nb.security.masking import Secrets

if TYPE_CHECKING:
    from dataflow_nb.core.spec import Field
    from dataflow_nb.nodes.base import Node
    from dataflow_nb.protocols import RunDatabase

T = TypeVar("T")
Obs = TypeVar("Obs", bound=RunObserver)
log = logging.getLogger("dataflow_nb")


def hearing(observers: tuple[RunObserver, ...], hook: str) -> tuple[RunObserver, ...]:
    """Those of ``observers`` whose ``hook`` does something: a run calls only them, once a node or
    a statement (each call to a hook that does nothing costs a one-row node ~1 us, issue 24)."""
    if not observers:
        return ()
    return tuple(o for o in observers if _overrides(type(o), hook))


_OVERRIDES: dict[tuple[type, str], bool] = {}  # (observer class, hook) -> the class has its own


def _overrides(kind: type, hook: str) -> bool:
    found = _OVERRIDES.get((kind, hook))
    if found is None:
        found = _OVERRIDES[kind, hook] = getattr(kind, hook) is not getattr(RunObserver, hook)
    return found


@dataclass(slots=True)
class Link:
    """One database of the run: its observers (opened when the run first names it), its
    connection (taken on the first statement), where that went, and what the run wrote there."""

    db: RunDatabase
    observers: tuple[RunObserver, ...]
    answering: tuple[RunObserver, ...]  # those that may answer a read themselves (the result cache)
    starting: tuple[RunObserver, ...]  # the observers with an ``on_node_start``
    ending: tuple[RunObserver, ...]  # ... an ``on_node_end``
    statements: tuple[RunObserver, ...]  # ... an ``on_statement``, then the run-wide ones that have one
    connection: Connection | None = None
    route: Route | None = None  # set when the run reads it from a replica
    written: set[str] = field(default_factory=set)
    touched: bool = False  # a connection was taken (kept after release)
    committed: bool = False


class RunContext:
    """Connections are taken lazily, the first time a node touches a database.

    Args:
        run_id: the run's id.
        scope: the tenant the run acts for.
        observers: run-wide observers (the history record, the masking of sensitive values); each
            database's own (``db.observers``) join when the run first names that database.
        writers: ids of the DataFlows some node of the run may write (None: unknown, so all of
            them); a DataFlow with replicas that the run only reads is read from one of them.
    """

    __slots__ = ("_ending", "_starting", "commit_sent", "links", "node_id", "observers", "run_id", "scope", "writers")

    def __init__(
        self,
        run_id: str,
        scope: Scope | None = None,
        *,
        observers: tuple[RunObserver, ...] = (),
        writers: frozenset[int] | None = None,
    ) -> None:
        self.run_id = run_id
        self.scope = Scope() if scope is None else scope
        self.observers = observers
        self._starting = hearing(observers, "on_node_start")
        self._ending = hearing(observers, "on_node_end")
        self.writers = writers
        self.node_id: str | None = None  # the running node
        self.links: dict[int, Link] = {}
        self.commit_sent = False  # from here on the run is never retried: a commit may have happened

    # -- databases and connections -------------------------------------------------------------

    def _link(self, db: RunDatabase) -> Link:
        link = self.links.get(id(db))
        if link is None:
            opened = tuple(o.open(self, db) for o in db.observers)
            link = self.links[id(db)] = Link(
                db,
                opened,
                answering=hearing(opened, "answer"),
                starting=hearing(opened, "on_node_start"),
                ending=hearing(opened, "on_node_end"),
                statements=hearing((*opened, *self.observers), "on_statement"),
            )
        return link

    def connection(self, db: RunDatabase) -> Connection:
        """The run's connection to ``db`` (its transaction begins with it)."""
        link = self.links.get(id(db))
        if link is None or link.connection is None:
            return self._connected(self._link(db))
        return link.connection

    def _connected(self, link: Link) -> Connection:
        if link.connection is not None:
            return link.connection
        db = link.db
        link.touched = True
        for observer in (*link.observers, *self.observers):  # before the connection: theirs never waits on it
            observer.on_connect(self, db)
        connection = link.connection = self._connect(link)
        tenant = self.scope.tenant_id or None
        if tenant is not None:
            # Before any statement of the run, on every database it touches (SQLQueryNode's db may be a
            # DataFlow without the models): the database scopes even raw SQL to this tenant, and SQL
            # cannot bind the transaction to another one.
            known = any(m.multi_tenant for m in db.models.values())
            db.backend.begin_tenant(connection, tenant, known=known)
        return connection

    def _connect(self, link: Link) -> Connection:
        """The primary's connection, or a replica's for a database the run only reads."""
        db = link.db
        if db.replicas is None:
            return db.backend.connect()
        # Binding a run to its tenant records the transaction's id: a write no standby takes.
        reads_only = self.writers is not None and id(db) not in self.writers and not self.scope.tenant_id
        route = db.replicas.connect(db.backend, reads_only=reads_only)
        if route.replica is not None:
            link.route = route
        return route.connection

    def served_by(self, db: RunDatabase) -> str:
        """Where the run's statements on ``db`` went: ``"primary"`` or a replica's masked URL."""
        link = self.links.get(id(db))
        return PRIMARY if link is None or link.route is None else link.route.served_by

    def reads_replica(self, db: RunDatabase) -> bool:
        """The run reads ``db`` from a replica (which may lag behind the primary)."""
        link = self.links.get(id(db))
        return link is not None and link.route is not None

    def written_on(self, db: RunDatabase) -> set[str]:
        """The tables the run wrote on ``db`` so far (``"*"``: SQL that may write anything)."""
        link = self.links.get(id(db))
        return set() if link is None else link.written

    @property
    def touched(self) -> tuple[RunDatabase, ...]:
        """Every database the run took a connection to, in order (kept after release)."""
        return tuple(link.db for link in self.links.values() if link.touched)

    @property
    def committed(self) -> tuple[str, ...]:
        """Names of the databases that committed, in order."""
        return tuple(link.db.name for link in self.links.values() if link.committed)

    @property
    def rolled_back(self) -> tuple[str, ...]:
        """The databases the run touched that did not commit."""
        return tuple(link.db.name for link in self.links.values() if link.touched and not link.committed)

    def observer(self, kind: type[Obs], db: RunDatabase | None = None) -> Obs | None:
        """The run's observer of type ``kind``: one of ``db``'s, or a run-wide one."""
        found = self.observers if db is None else self._link(db).observers
        return next((o for o in found if isinstance(o, kind)), None)

    def mask(self, text: str) -> str:
        """``text`` with the sensitive values the run was given or read shown as ``***``."""
        secrets = self.observer(Secrets)
        return text if secrets is None else secrets.mask(text)

    # -- nodes -------------------------------------------------------------------------------------

    def start_node(self, node_id: str, node: Node, params: Mapping[str, Any]) -> None:
        """Before a node runs: its observers hear of it, and the tables it writes are noted up
        front (so even a statement that bypasses this context is invalidated)."""
        self.node_id = node_id
        for observer in self._starting:
            observer.on_node_start(self, node_id, node, params)
        for db in node.databases(params):
            self._link(db)
        tables = node.tables_written(params)
        if tables and (written := node.db) is not None:
            self.note_writes(written, tables)
        for link in self.links.values():
            for observer in link.starting:
                observer.on_node_start(self, node_id, node, params)

    def end_node(
        self, node: Node | None, params: Mapping[str, Any], output: Any, *, status: str = "ok", error: str | None = None
    ) -> None:
        """The running node ended (``error`` masked already): each database's observers first
        (the audit row is a statement of the node), then the run-wide ones."""
        end = NodeEnd(self.node_id or "", node, params, output, status, error)
        for link in list(self.links.values()):
            for observer in link.ending:
                observer.on_node_end(self, end)
        for observer in self._ending:
            observer.on_node_end(self, end)

    def outcome(self, status: str, *, node_id: str | None = None, error: str | None = None) -> None:
        """The attempt's outcome is known (before the commit when ok, the rollback when not)."""
        for observer in self._all():
            observer.on_outcome(self, status, node_id=node_id, error=error)

    def retrying(self) -> None:
        """This attempt failed and the run is tried again."""
        for observer in self._all(touched=True):
            observer.on_retry(self)

    def end_run(self, status: str, *, seconds: float, nodes: int, retries: int) -> None:
        """The run is over; this was its last attempt."""
        for observer in self._all(touched=True):
            observer.on_run_end(self, status, seconds=seconds, nodes=nodes, retries=retries)

    def _all(self, *, touched: bool = False) -> list[RunObserver]:
        """Every observer of the run: each database's (only those it connected to, with
        ``touched``), then the run-wide ones."""
        links = [link for link in self.links.values() if link.touched or not touched]
        return [o for link in links for o in link.observers] + list(self.observers)

    # -- statements --------------------------------------------------------------------------------

    def note_writes(self, db: RunDatabase, tables: set[str] | frozenset[str]) -> None:
        """Remember what the run wrote: invalidated after its commit, read uncached until then."""
        self._link(db).written.update(tables)

    def execute(
        self,
        db: RunDatabase,
        compiled: CompiledSQL,
        params: Mapping[str, Any] | None = None,
        *,
        read_only: bool = False,
        cacheable: bool = True,
    ) -> pa.Table | None:
        """Run a statement; the rows it returns are counted. A read an observer holds (the
        result cache) is answered by it; a write is noted for invalidation after the commit.

        ``read_only`` runs the statement so that the database (or DuckDB's parser) refuses any write.
        ``cacheable=False``: its answer may differ each time (``random()``, ``now()``).
        """
        link = self._link(db)
        for observer in link.answering:
            answer = observer.answer(self, db, compiled, params, cacheable=cacheable)
            if answer is not None:
                return answer
        writes = self._before(link, compiled)

        def run(connection: Connection) -> pa.Table | None:
            if read_only:
                return db.backend.execute_read_only(connection, compiled)
            return connection.execute(compiled, params)

        return self._measured(
            link, compiled, params, run, lambda r: 0 if r is None else r.num_rows, writes=writes, returns=True
        )

    def execute_frame(
        self,
        db: RunDatabase,
        compiled: CompiledSQL,
        params: Mapping[str, Any] | None,
        fields: Mapping[str, Field],
        *,
        kind: FrameKind,
        json: JsonMode,
    ) -> Frame:
        """Run a statement whose rows become a frame, its model columns typed by ``fields``.

        Once a result of the statement needed nothing evened out or cast (``compiled.seen``), its
        rows go from the driver straight into polars: no pyarrow table between, no pass over the
        schema (on PostgreSQL ~170 of the ~300 us a one-row node cost on top of the driver's).
        With the result cache on they go through ``execute``: the cache keeps Arrow tables.
        """
        link = self._link(db)
        if kind != "polars" or link.answering or compiled.seen.cast is not False:
            table = self.execute(db, compiled, params)
            assert table is not None
            compiled.seen.cast = not casts_nothing(table, fields)
            return to_frame(table, fields, kind, json=json)
        writes = self._before(link, compiled)
        return self._measured(
            link, compiled, params, lambda c: c.execute_into(compiled, params, polars_frame), len, writes=writes
        )

    def _before(self, link: Link, compiled: CompiledSQL) -> bool:
        """Note what a statement may write (for invalidation after the commit); True if it may write."""
        if compiled.reads is None and not compiled.writes:  # SQL text: it may read the run history
            link.db.history.before_sql(compiled.sql)
        writes = compiled.writes is None or bool(compiled.writes)
        if writes:
            link.written.update(compiled.writes or {EVERYTHING})
        return writes

    def execute_count(self, db: RunDatabase, compiled: CompiledSQL, params: Mapping[str, Any] | None = None) -> int:
        """Run a write that returns no rows; the rows it changed are counted and returned."""
        link = self._link(db)
        if compiled.writes is None or compiled.writes:
            link.written.update(compiled.writes or {EVERYTHING})
        return self._measured(
            link, compiled, params, lambda c: c.execute_count(compiled, params), lambda n: n, writes=True
        )

    def ingest(self, db: RunDatabase, table: str, data: pa.RecordBatchReader, *, temporary: bool = False) -> int:
        """Append a stream of batches to a table; the rows written are counted and returned."""
        link = self._link(db)
        if not temporary:
            link.written.add(table)
        return self._measured(
            link,
            f"COPY {table} (bulk ingest)",
            None,
            lambda c: c.ingest(table, data, temporary=temporary),
            lambda n: n,
            writes=not temporary,  # a staging table's rows are counted when they reach the model's
        )

    def _measured(
        self,
        link: Link,
        statement: CompiledSQL | str,
        params: Mapping[str, Any] | None,
        call: Callable[[Connection], T],
        rows_of: Callable[[T], int],
        *,
        writes: bool = False,
        returns: bool = False,
    ) -> T:
        """The one instrumentation point: every statement of a run is timed and told to the observers."""
        connection = link.connection if link.connection is not None else self._connected(link)
        sql = statement if isinstance(statement, str) else statement.sql
        values = None if isinstance(statement, str) else functools.partial(statement.bind, params)
        started = time.perf_counter()
        try:
            result = call(connection)
        except Exception as exc:
            failed = Statement(sql, time.perf_counter() - started, 0, writes, exc, values)
            for observer in link.statements:
                observer.on_statement(self, link.db, failed)
            db = link.db
            if link.route is not None and db.replicas is not None:
                db.replicas.note_failure(link.route, exc, self.run_id)  # a replica gone: the retry reads the primary
            raise
        if link.statements:
            seconds = time.perf_counter() - started
            table = result if returns and isinstance(result, pa.Table) else None
            ran = Statement(sql, seconds, rows_of(result), writes, None, values, table)
            for observer in link.statements:
                observer.on_statement(self, link.db, ran)
        return result

    # -- commit and release --------------------------------------------------------------------

    def commit(self) -> None:
        """Commit every database the run touched, in the order it first touched them.

        There is no atomicity across databases: when one commit fails, the ones before it stay
        committed (``committed`` names them) and the rest are rolled back by ``release``. Each
        database's observers hear of its commit at once (the cache invalidates what the run
        wrote there).
        """
        links = [link for link in self.links.values() if link.connection is not None]
        for link in links:
            self._settle_partitions(link)
        for link in links:
            assert link.connection is not None
            for observer in (*link.observers, *self.observers):
                observer.before_commit(self, link.db, link.connection)
        self.commit_sent = True
        for link in links:
            db, connection = link.db, link.connection
            assert connection is not None
            connection.commit()
            link.committed = True
            if db.replicas is not None and link.written:
                db.replicas.note_commit(connection, db.backend)  # read-your-writes: replicas must replay this first
            for observer in (*link.observers, *self.observers):
                observer.on_commit(self, db, connection)

    def _settle_partitions(self, link: Link) -> None:
        """Before the commit: rows the run wrote into no partition of their own get one, created
        in the run's transaction (``backends/postgres_partitions.py``)."""
        db, written = link.db, link.written
        if not db.backend.partitions.supported or not written:
            return
        for spec in db.models.values():
            if spec.partitioning is not None and (spec.table_name in written or EVERYTHING in written):
                self._measured(
                    link,
                    f"settle partitions of {spec.table_name}",
                    None,
                    functools.partial(db.backend.partitions.settle, table=spec.table),
                    lambda moved: 0,  # the rows were counted when they were written
                    writes=True,
                )

    def release(self) -> None:
        """Roll back whatever did not commit and give every connection back; never raises.

        Runs in ``finally`` for any exception, KeyboardInterrupt included, so no session is left
        idle in a transaction holding locks. A rollback that fails (the server is gone) leaves
        the connection marked broken, and closing it then discards it instead of pooling it.
        """
        for link in self.links.values():
            connection, link.connection = link.connection, None
            if connection is None:
                continue
            url = link.db.backend.safe_url
            if not link.committed:
                try:
                    connection.rollback()
                except Exception as exc:  # the original failure is what the user needs to see
                    log.debug("run %s: rollback on %s failed: %s", self.run_id, url, exc)
            try:
                connection.close()
            except Exception as exc:
                log.debug("run %s: closing the connection to %s failed: %s", self.run_id, url, exc)
        for observer in self._all():
            try:
                observer.on_release(self)
            except Exception as exc:  # bookkeeping never hides the run's own outcome
                log.debug("run %s: an observer failed on release: %s", self.run_id, exc)
