"""The run history as a run observer: one ``RunRecorder`` per run (across its attempts), over
every database the run touches, keeping its ``RunLog`` and handing it to each one's
``RunHistory`` when the run is over.

Nothing here touches the run's connection or transaction: the history's writer writes the row
in the background (``monitor/runs.py`` and ``monitor/run_writer.py`` say when), so the run pays
for keeping its log in memory and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from dataflow_nb.backends.replicas import PRIMARY
from dataflow_nb.monitor.run_log import NodeRecord, RunLog
from dataflow_nb.protocols import NodeEnd, Run, RunDatabase, RunNode, RunObserver, Statement


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
        if id(db) not in self.touched:  # not again when the run is retried
            self.touched[id(db)] = db
            if db.history.start(self.log):  # no statement: the history only notes the run
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

    def on_retry(self, run: Run) -> None:
        self.log.nodes.clear()  # the history shows the last attempt's nodes

    def on_run_end(self, run: Run, status: str, *, seconds: float, nodes: int, retries: int) -> None:
        """The run is over, whatever its outcome (set by ``on_outcome``): each history that
        records it queues its row; where none does, it is no longer live in this process."""
        for db in self.touched.values():
            if id(db) in self.recorded:
                db.history.finish(self.log)
            else:
                db.history.forget_unrecorded(self.log)


def note_loaded(run: Run, loaded: str) -> None:
    """Keep what a bulk load loaded in its node's history record (``bulk/reload.py`` reads it)."""
    recorder = run.observer(RunRecorder)
    if recorder is not None and recorder.current is not None:
        recorder.current.loaded = loaded
