"""The monitor as a run observer: every statement and run of a DataFlow's runs is counted
(``monitor/monitor.py`` keeps them)."""

from __future__ import annotations

from dataflow_nb.backends.errors import loggable_error
from dataflow_nb.monitor.monitor import Monitor
from dataflow_nb.protocols import Run, RunDatabase, RunObserver, Statement


class MonitorObserver(RunObserver):
    """``DataFlow(monitoring=True)``: every statement and run of the DataFlow's runs is counted."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def open(self, run: Run, db: RunDatabase) -> RunObserver:
        return MonitorRun(self.monitor, db)


class MonitorRun(RunObserver):
    """One run on one database, told to that database's monitor (its runs, by where they went)."""

    def __init__(self, monitor: Monitor, db: RunDatabase) -> None:
        self.monitor = monitor
        self.db = db

    def on_statement(self, run: Run, db: RunDatabase, statement: Statement) -> None:
        """A slow statement's values go to the monitor's memory, so its plan can be asked for with them."""
        error = None if statement.error is None else run.mask(loggable_error(statement.error))
        self.monitor.record_query(
            statement.sql,
            statement.seconds,
            statement.rows,
            node_id=run.node_id,
            run_id=run.run_id,
            error=error,
            tenant=run.scope.tenant_id,
            values=statement.values,
        )

    def on_retry(self, run: Run) -> None:
        self.monitor.record_retry(run.run_id)

    def on_run_end(self, run: Run, status: str, *, seconds: float, nodes: int, retries: int) -> None:
        self.monitor.record_run(
            run.run_id, seconds, status=status, nodes=nodes, retries=retries, served_by=run.served_by(self.db)
        )
