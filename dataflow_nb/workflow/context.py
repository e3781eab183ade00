"""A run's context: one connection and one transaction per database, and the single point
every query passes through (timing now; metrics, slow-query log and caching hook in here)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataflow_nb.backends.base import CompiledSQL, Connection
from dataflow_nb.query.scope import Scope

if TYPE_CHECKING:
    from dataflow_nb.dataflow import DataFlow


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
        """The one instrumentation point for statements built by nodes.

        ``read_only`` runs the statement so that the database (or DuckDB's parser) refuses any write.
        """
        connection = self.connection(db)
        started = time.perf_counter()
        try:
            if read_only:
                result = db.backend.execute_read_only(connection, compiled)
            else:
                result = connection.execute(compiled, params)
        except Exception as exc:
            if db.monitor is not None:
                db.monitor.record_query(
                    compiled.sql,
                    time.perf_counter() - started,
                    0,
                    node_id=self.node_id,
                    run_id=self.run_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
            raise
        seconds = time.perf_counter() - started
        rows = 0 if result is None else result.num_rows
        self.stats.statements += 1
        self.stats.seconds += seconds
        self.stats.rows += rows
        if db.monitor is not None:
            db.monitor.record_query(compiled.sql, seconds, rows, node_id=self.node_id, run_id=self.run_id)
        return result

    def ingest(self, db: DataFlow, table: str, data: pa.RecordBatchReader, *, temporary: bool = False) -> None:
        """Bulk appends pass the same instrumentation point as statements."""
        connection = self.connection(db)
        started = time.perf_counter()
        error = None
        try:
            connection.ingest(table, data, temporary=temporary)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            seconds = time.perf_counter() - started
            self.stats.statements += 1
            self.stats.seconds += seconds
            if db.monitor is not None:
                db.monitor.record_query(
                    f"COPY {table} (bulk ingest)", seconds, 0, node_id=self.node_id, run_id=self.run_id, error=error
                )

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
