"""The run history as a run observer: one ``RunRecorder`` per run (across its attempts), over
every database the run touches, writing its ``RunLog`` through each one's ``RunHistory``.

When it writes is the history's cost to every run (``monitor/runs.py`` says how it is kept
cheap): an ok run's row on the run's own connection, at its commit; a failed or interrupted
run's after its rollback, in a short transaction of its own. Moving those writes off the run's
path changes this class only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dataflow_nb.backends.replicas import PRIMARY
from dataflow_nb.monitor.runs import NodeRecord, RunLog
from dataflow_nb.protocols import NodeEnd, Run, RunDatabase, RunNode, RunObserver, Statement

if TYPE_CHECKING:
    from dataflow_nb.backends.base import Connection


class RunRecorder(RunObserver):
    """Keeps ``log`` (the run as it happens: nodes, rows, outcome) and has each database's
    history record it."""

    def __init__(self, log: RunLog) -> None:
        self.log = log
        self.touched: dict[int, RunDatabase] = {}  # every database the run used: live there until it ends
        self.recorded: dict[int, RunDatabase] = {}  # the databases whose history records the run
        self.current: NodeRecord | None = None  # the running node's record: its rows are counted here
        self._unrouted: list[RunDatabase] = []  # connected, where the statements went not noted yet

    def on_connect(self, run: Run, db: RunDatabase) -> None:
        self.touched[id(db)] = db
        if db.history.start(self.log):  # the history starts no transaction
            self.recorded[id(db)] = db
        self.log.served_by[db.backend.safe_url] = PRIMARY
        if db.replicas is not None:
            self._unrouted.append(db)

    def on_node_start(self, run: Run, node_id: str, node: RunNode, params: Mapping[str, Any]) -> None:
        self.current = self.log.start_node(node_id, node.node_type)

    def on_statement(self, run: Run, db: RunDatabase, statement: Statement) -> None:
        if self._unrouted:  # a replica's run: its first statement went where the run reads
            for routed in self._unrouted:
                self.log.served_by[routed.backend.safe_url] = run.served_by(routed)
            self._unrouted.clear()
        current = self.current
        if current is not None and statement.rows > 0:
            if statement.writes:
                current.rows_written += statement.rows
            else:
                current.rows_read += statement.rows

    def on_node_end(self, run: Run, end: NodeEnd) -> None:
        current = self.current
        if current is not None:
            current.seconds = time.perf_counter() - self.log.clock - current.started
            current.error = end.error
            current.status = end.status
            self.current = None

    def on_outcome(self, run: Run, status: str, *, node_id: str | None = None, error: str | None = None) -> None:
        self.log.finish(status, error_node=node_id, error=error)

    def before_commit(self, run: Run, db: RunDatabase, connection: Connection) -> None:
        """Where the history says so (DuckDB), an ok run's row commits with it."""
        if id(db) in self.recorded and db.history.writes_in_run:
            db.history.finish_in(connection, self.log)

    def on_commit(self, run: Run, db: RunDatabase, connection: Connection) -> None:
        """Elsewhere, right after the commit on the same connection: bookkeeping never adds a
        statement (or a serialization conflict) to the run's transaction."""
        if id(db) not in self.recorded:
            return
        if run.reads_replica(db):
            db.history.finish_apart(self.log)  # the history lives on the primary; the replica is read-only
        elif not db.history.writes_in_run:
            db.history.finish_after_commit(connection, self.log)

    def on_retry(self, run: Run) -> None:
        self.log.nodes.clear()  # the history shows the last attempt's nodes

    def on_run_end(self, run: Run, status: str, *, seconds: float, nodes: int, retries: int) -> None:
        """A failed or interrupted run is recorded after its rollback, each database in a
        transaction of its own; then the run is no longer live in this process."""
        if status != "ok":
            for db in self.recorded.values():
                db.history.finish_apart(self.log)
        for db in self.touched.values():
            db.history.forget(self.log)


def note_loaded(run: Run, loaded: str) -> None:
    """Keep what a bulk load loaded in its node's history record (``bulk/reload.py`` reads it)."""
    recorder = run.observer(RunRecorder)
    if recorder is not None and recorder.current is not None:
        recorder.current.loaded = loaded
