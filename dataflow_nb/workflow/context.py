"""A run's context: one connection and one transaction per database, and the single point
every statement passes through (queries, writes, bulk ingests and staging DDL alike): timing,
row counts, metrics and the slow-query log hook in here, and so can caching and tenancy."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from dataflow_nb.backends.base import CompiledSQL, Connection
from dataflow_nb.backends.errors import loggable_error
from dataflow_nb.query.scope import Scope

if TYPE_CHECKING:
    from dataflow_nb.dataflow import DataFlow

T = TypeVar("T")


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
    connections: dict[int, tuple[DataFlow, Connection]] = field(default_factory=dict)
    stats: QueryStats = field(default_factory=QueryStats)

    def connection(self, db: DataFlow) -> Connection:
        entry = self.connections.get(id(db))
        if entry is None:
            entry = (db, db.backend.connect())
            self.connections[id(db)] = entry
            if self.scope.tenant_id and any(m.multi_tenant for m in db.models.values()):
                # Before any statement of the run: the database scopes even raw SQL to this tenant.
                db.backend.begin_tenant(entry[1], self.scope.tenant_id)
        return entry[1]

    def execute(
        self, db: DataFlow, compiled: CompiledSQL, params: Mapping[str, Any] | None = None, *, read_only: bool = False
    ) -> pa.Table | None:
        """Run a statement; the rows it returns are counted.

        ``read_only`` runs the statement so that the database (or DuckDB's parser) refuses any write.
        """

        def run(connection: Connection) -> pa.Table | None:
            if read_only:
                return db.backend.execute_read_only(connection, compiled)
            return connection.execute(compiled, params)

        return self._measured(db, compiled.sql, run, lambda r: 0 if r is None else r.num_rows)

    def execute_count(self, db: DataFlow, compiled: CompiledSQL, params: Mapping[str, Any] | None = None) -> int:
        """Run a write that returns no rows; the rows it changed are counted and returned."""
        return self._measured(db, compiled.sql, lambda c: c.execute_count(compiled, params), lambda n: n)

    def ingest(self, db: DataFlow, table: str, data: pa.RecordBatchReader, *, temporary: bool = False) -> int:
        """Append a stream of batches to a table; the rows written are counted and returned."""
        return self._measured(
            db, f"COPY {table} (bulk ingest)", lambda c: c.ingest(table, data, temporary=temporary), lambda n: n
        )

    def _measured(self, db: DataFlow, sql: str, call: Callable[[Connection], T], rows_of: Callable[[T], int]) -> T:
        """The one instrumentation point: every statement of a run is timed, counted and reported here."""
        connection = self.connection(db)
        started = time.perf_counter()
        try:
            result = call(connection)
        except Exception as exc:
            self._record(db, sql, time.perf_counter() - started, 0, error=loggable_error(exc))
            raise
        self._record(db, sql, time.perf_counter() - started, rows_of(result))
        return result

    def _record(self, db: DataFlow, sql: str, seconds: float, rows: int, *, error: str | None = None) -> None:
        self.stats.statements += 1
        self.stats.seconds += seconds
        self.stats.rows += max(rows, 0)
        if db.monitor is not None:
            db.monitor.record_query(sql, seconds, rows, node_id=self.node_id, run_id=self.run_id, error=error)

    def record_run(self, seconds: float, *, status: str, nodes: int) -> None:
        """Tell the monitor of every database the run touched how the run went."""
        for db, _ in self.connections.values():
            if db.monitor is not None:
                db.monitor.record_run(self.run_id, seconds, status=status, nodes=nodes)

    def commit(self) -> None:
        """Commit every database the run touched, in the order it touched them."""
        for _, connection in self.connections.values():
            connection.commit()

    def rollback(self) -> None:
        """Roll back every database; keep going if one of them is already gone."""
        errors = []
        for _, connection in self.connections.values():
            try:
                connection.rollback()
            except Exception as exc:  # the original failure matters more than this one
                errors.append(exc)
        if errors and len(errors) == len(self.connections):
            raise errors[0]

    def close(self) -> None:
        for _, connection in self.connections.values():
            connection.close()
        self.connections.clear()
