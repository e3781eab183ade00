"""Query and run metrics for one DataFlow: counts, timings, a slow-query log and health.

Everything is recorded synchronously by the caller (no background threads), under one lock, so
numbers are exact even when several runtimes share a DataFlow. Memory stays bounded: the
slow-query log and the p95 reservoir are fixed-size deques.
"""

from __future__ import annotations

import html
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dataflow_nb.backends.errors import loggable_error
from dataflow_nb.exceptions import DataflowError
from dataflow_nb.observers import RunObserver, Statement

if TYPE_CHECKING:
    from dataflow_nb.cache import QueryCache
    from dataflow_nb.dataflow import DataFlow
    from dataflow_nb.frames import Frame, FrameKind
    from dataflow_nb.monitor.prometheus import PrometheusExporter
    from dataflow_nb.workflow.context import RunContext

METRICS_EXPORTS = (None, "prometheus")
RUN_STATUSES = ("ok", "failed", "interrupted", "retried")
RESERVOIR_SIZE = 10_000
SLOW_QUERY_COLUMNS = ("at", "seconds", "rows", "node_id", "run_id", "sql", "error")


@dataclass(frozen=True, slots=True)
class SlowQuery:
    """One statement that took longer than the threshold; the SQL has placeholders, not values.

    ``values`` are the statement's bound values, kept in this process's memory only so that its
    plan can be asked for with them: no repr, frame, history or cache ever holds them.
    """

    at: datetime
    seconds: float
    rows: int
    node_id: str | None
    run_id: str | None
    sql: str
    error: str | None
    values: tuple[Any, ...] = field(default=(), repr=False, compare=False)


@dataclass
class _Totals:
    """Exact counters since the last reset."""

    queries: int = 0
    failed_queries: int = 0
    rows: int = 0
    query_seconds_total: float = 0.0
    query_seconds_max: float = 0.0
    slow_queries: int = 0
    runs: int = 0
    failed_runs: int = 0
    run_seconds_total: float = 0.0
    retries: int = 0


@dataclass
class _TenantTotals:
    """Per-tenant counters: what each tenant's runs cost the database."""

    statements: int = 0
    failed: int = 0
    rows: int = 0
    seconds_total: float = 0.0
    seconds_max: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=TENANT_RESERVOIR_SIZE))


TENANT_RESERVOIR_SIZE = 1000  # per tenant: p50/p95 over its last 1000 statements
TENANT_COLUMNS = (
    "tenant",
    "statements",
    "failed",
    "rows",
    "seconds_total",
    "seconds_avg",
    "seconds_max",
    "p50_seconds",
    "p95_seconds",
)


def _p95(samples: list[float], rank: float = 0.95) -> float:
    """Nearest-rank percentile (95th by default): always a time that was actually observed."""
    if not samples:
        return 0.0
    samples.sort()
    return samples[max(math.ceil(rank * len(samples)) - 1, 0)]


def _seconds(value: float) -> float:
    """Clock skew can make a duration slightly negative; metrics must not go backwards."""
    return max(float(value), 0.0)


class Monitor:
    """Collects metrics for one database; ``DataFlow(monitoring=True)`` creates it.

    Args:
        database: a password-free label for the database, e.g. ``"duckdb:///:memory:"``.
        slow_query_threshold: statements taking longer than this many seconds are logged.
        metrics_export: ``None`` or ``"prometheus"`` (needs the ``prometheus-client`` package).
        ping: runs a trivial query (``SELECT 1``) and raises when the database is unreachable.
        cache: the DataFlow's result cache, whose counts and health are reported here too.
        max_slow_queries: how many of the most recent slow queries are kept.
        health_timeout: seconds ``get_health_status()`` waits for the ping before it answers.
        replica_health: reports each read replica (status, lag); its list is the health's ``replicas``.

    Raises:
        DataflowError: for an unknown ``metrics_export``, a negative threshold, a
            ``max_slow_queries`` below 1, or prometheus export without prometheus-client.

    Examples:
        >>> monitor = Monitor(database="duckdb:///:memory:")
        >>> monitor.record_query("SELECT 1", 0.002, 1)
        >>> monitor.get_metrics()["queries"]
        1
    """

    def __init__(
        self,
        *,
        database: str,
        slow_query_threshold: float = 1.0,
        metrics_export: str | None = None,
        ping: Callable[[], None] | None = None,
        max_slow_queries: int = 1000,
        cache: QueryCache | None = None,
        health_timeout: float = 2.0,
        replica_health: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        if metrics_export not in METRICS_EXPORTS:
            raise DataflowError(
                f"metrics_export={metrics_export!r} is not supported; choose one of "
                f"{list(METRICS_EXPORTS)} (None records metrics for get_metrics() only)."
            )
        if (
            isinstance(slow_query_threshold, bool)
            or not isinstance(slow_query_threshold, int | float)
            or not (slow_query_threshold >= 0)
        ):
            raise DataflowError(
                f"slow_query_threshold={slow_query_threshold!r}: give a number of seconds >= 0, e.g. 1.0."
            )
        if isinstance(max_slow_queries, bool) or not isinstance(max_slow_queries, int) or max_slow_queries < 1:
            raise DataflowError(f"max_slow_queries={max_slow_queries!r}: give a whole number >= 1, e.g. 1000.")
        self.database = database
        self.slow_query_threshold = float(slow_query_threshold)
        self.metrics_export = metrics_export
        self._ping = ping
        self._health = HealthCheck(ping, health_timeout) if ping is not None else None
        self._replica_health = replica_health
        self._runs_by_server: dict[str, int] = {}  # "primary" or a replica's masked URL -> runs it served
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._totals = _Totals()
        self._tenants: dict[str, _TenantTotals] = {}
        self._recent: deque[float] = deque(maxlen=RESERVOIR_SIZE)
        self._slow: deque[SlowQuery] = deque(maxlen=max_slow_queries)
        self.cache = cache
        self._exporter: PrometheusExporter | None = None
        if metrics_export == "prometheus":
            self._exporter = _load_exporter(database)
            if cache is not None:
                self._exporter.watch_cache(cache.stats, lambda: cache.degraded)

    @property
    def registry(self) -> Any:
        """This monitor's prometheus_client ``CollectorRegistry``; None without prometheus export.

        Serve it with ``prometheus_client.make_wsgi_app(registry)`` or ``start_http_server``.
        """
        return None if self._exporter is None else self._exporter.registry

    def record_query(
        self,
        sql: str,
        seconds: float,
        rows: int,
        *,
        node_id: str | None = None,
        run_id: str | None = None,
        error: str | None = None,
        tenant: str | None = None,
        values: Callable[[], Sequence[Any]] | None = None,
    ) -> None:
        """Count one SQL statement; called once per statement by the run context.

        ``tenant`` (the run's tenant) also counts it in ``tenant_metrics()``. ``values`` gives
        the statement's bound values; they are asked for only when the statement is slow.

        A statement with an ``error`` counts as failed. One slower than ``slow_query_threshold``
        is also kept in the slow-query log. A negative ``rows`` (a driver's "unknown") counts as 0.
        """
        seconds = _seconds(seconds)
        rows = max(int(rows), 0)
        failed = error is not None
        slow = seconds > self.slow_query_threshold
        entry = None
        if slow:
            bound = tuple(values()) if values is not None else ()
            entry = SlowQuery(datetime.now(UTC), seconds, rows, node_id, run_id, sql, error, bound)
        with self._lock:
            totals = self._totals
            totals.queries += 1
            totals.failed_queries += failed
            totals.rows += rows
            totals.query_seconds_total += seconds
            totals.query_seconds_max = max(totals.query_seconds_max, seconds)
            self._recent.append(seconds)
            if tenant is not None:
                per = self._tenants.setdefault(tenant, _TenantTotals())
                per.statements += 1
                per.failed += failed
                per.rows += rows
                per.seconds_total += seconds
                per.seconds_max = max(per.seconds_max, seconds)
                per.recent.append(seconds)
            if entry is not None:
                totals.slow_queries += 1
                self._slow.append(entry)
        if self._exporter is not None:
            self._exporter.query(seconds, rows, failed=failed)

    def record_run(
        self, run_id: str, seconds: float, *, status: str, nodes: int, retries: int = 0, served_by: str = "primary"
    ) -> None:
        """Count one workflow run; the runtime calls this after every run, failed or not.

        Args:
            run_id: the run's id.
            seconds: wall-clock seconds of the whole run, retries included.
            status: ``"ok"``; ``"failed"`` when the run raised and was rolled back, ``"interrupted"``
                when an interrupt (Ctrl-C) stopped it, ``"retried"`` when it ran again after a failure.
            nodes: how many nodes the run has; accepted from the runtime, not aggregated yet.
            retries: how many times the run was tried again (each was counted by ``record_retry``).
            served_by: where the run went: ``"primary"`` or a read replica's masked URL.

        Raises:
            DataflowError: if ``status`` is none of those.
        """
        if status not in RUN_STATUSES:
            raise DataflowError(f"record_run(status={status!r}) for run {run_id!r}: use one of {list(RUN_STATUSES)}.")
        seconds = _seconds(seconds)
        failed = status in ("failed", "interrupted")
        with self._lock:
            self._totals.runs += 1
            self._totals.failed_runs += failed
            self._totals.run_seconds_total += seconds
            self._runs_by_server[served_by] = self._runs_by_server.get(served_by, 0) + 1
        if self._exporter is not None:
            self._exporter.run(seconds, failed=failed)

    def record_retry(self, run_id: str) -> None:
        """Count one retry of a run (the runtime tries a run again after a safe failure)."""
        with self._lock:
            self._totals.retries += 1
        if self._exporter is not None:
            self._exporter.retry()

    def get_metrics(self) -> dict[str, Any]:
        """Exact totals since creation or the last ``reset()``, for a quick look in a notebook.

        p95 covers the last 10,000 queries. Averages, maxima and p95 are 0.0 before the first
        query; uptime counts from creation. ``runs_by_server`` counts runs by where they went
        (``"primary"`` or a read replica's URL, password masked).
        """
        with self._lock:
            totals = _Totals(**vars(self._totals))
            recent = list(self._recent)
            by_server = dict(self._runs_by_server)
        return {
            "database": self.database,
            "queries": totals.queries,
            "failed_queries": totals.failed_queries,
            "rows": totals.rows,
            "query_seconds_total": totals.query_seconds_total,
            "query_seconds_avg": totals.query_seconds_total / totals.queries if totals.queries else 0.0,
            "query_seconds_max": totals.query_seconds_max,
            "p95_query_seconds": _p95(recent),
            "slow_queries": totals.slow_queries,
            "runs": totals.runs,
            "failed_runs": totals.failed_runs,
            "run_seconds_total": totals.run_seconds_total,
            "retries": totals.retries,
            "runs_by_server": by_server,
            "uptime_seconds": time.monotonic() - self._started,
            **({} if self.cache is None else {"cache": self.cache.stats()}),
        }

    def tenant_metrics(self, frame: FrameKind = "polars") -> Any:
        """Statements, failed statements, rows and seconds (total, mean, max, p50 and p95 of the last
        1000) per tenant, one row each, by tenant name.

        Counts come from runs with a ``tenant_id``; the tenant metrics view shows this frame.

        Examples:
            >>> monitor = Monitor(database="duckdb:///:memory:")
            >>> monitor.record_query("SELECT 1", 0.002, 3, tenant="acme")
            >>> monitor.tenant_metrics().select("tenant", "statements", "rows").rows()
            [('acme', 1, 3)]
        """
        import pyarrow as pa

        from dataflow_nb.frames import to_frame

        with self._lock:
            rows = [
                (t, _TenantTotals(**{**vars(v), "recent": list(v.recent)})) for t, v in sorted(self._tenants.items())
            ]
        table = pa.table(
            {
                "tenant": pa.array([t for t, _ in rows], pa.string()),
                "statements": pa.array([v.statements for _, v in rows], pa.int64()),
                "failed": pa.array([v.failed for _, v in rows], pa.int64()),
                "rows": pa.array([v.rows for _, v in rows], pa.int64()),
                "seconds_total": pa.array([v.seconds_total for _, v in rows], pa.float64()),
                "seconds_avg": pa.array([v.seconds_total / v.statements for _, v in rows], pa.float64()),
                "seconds_max": pa.array([v.seconds_max for _, v in rows], pa.float64()),
                "p50_seconds": pa.array([_p95(list(v.recent), 0.5) for _, v in rows], pa.float64()),
                "p95_seconds": pa.array([_p95(list(v.recent)) for _, v in rows], pa.float64()),
            }
        )
        return to_frame(table, {}, frame)

    def get_health_status(self) -> dict[str, Any]:
        """Ping the database now and say whether it answered within ``health_timeout``; never raises.

        Without a ping function nothing can be checked: status is "healthy" and latency_ms None.
        """
        latency_ms: float | None = None
        error: str | None = None
        if self._health is not None:
            latency_ms, error = self._health.check()
        status = "healthy" if error is None else "unhealthy"
        cache = None if self.cache is None else {**self.cache.health(), **self.cache.stats()}
        if cache is not None and cache["status"] != "ok" and status == "healthy":
            status = "degraded"  # answers are right, from the database, but the cache is not helping
        replicas = None if self._replica_health is None else self._replica_health()
        return {
            "status": status,
            **({} if cache is None else {"cache": cache}),
            **({} if replicas is None else {"replicas": replicas}),
            "database": self.database,
            "latency_ms": latency_ms,
            "error": error,
            "checked_at": datetime.now(UTC),
        }

    def slow_queries(self, frame: FrameKind = "polars") -> Frame:
        """The slow-query log, oldest first, as a polars (default) or pandas frame.

        Columns: at (UTC), seconds, rows, node_id, run_id, sql, error. An empty log gives an
        empty frame with the same columns and types, so code written against it never breaks.
        """
        if frame not in ("polars", "pandas"):
            raise DataflowError(f"slow_queries(frame={frame!r}): choose 'polars' or 'pandas'.")
        import pyarrow as pa

        from dataflow_nb.frames import to_frame

        with self._lock:
            entries = list(self._slow)
        schema = pa.schema(
            [
                ("at", pa.timestamp("us", tz="UTC")),
                ("seconds", pa.float64()),
                ("rows", pa.int64()),
                ("node_id", pa.string()),
                ("run_id", pa.string()),
                ("sql", pa.string()),
                ("error", pa.string()),
            ]
        )
        columns = {name: [getattr(entry, name) for entry in entries] for name in SLOW_QUERY_COLUMNS}
        return to_frame(pa.table(columns, schema=schema), {}, frame)

    def slow_query_entries(self) -> list[SlowQuery]:
        """The slow-query log, oldest first, with each statement's values (for its plan; never shown)."""
        with self._lock:
            return list(self._slow)

    def prometheus_text(self) -> str:
        """The metrics in Prometheus' text format, for a ``/metrics`` endpoint.

        Raises:
            DataflowError: if this monitor was created without ``metrics_export="prometheus"``.
        """
        if self._exporter is None:
            raise DataflowError(
                f"Prometheus export is off for {self.database}: create the DataFlow with "
                "monitoring=True, metrics_export='prometheus' "
                "(needs the prometheus-client package)."
            )
        return self._exporter.text()

    def reset(self) -> None:
        """Forget the counts and slow queries shown by ``get_metrics()`` and ``slow_queries()``.

        Prometheus counters keep counting: they must only go up for ``rate()`` to be right.
        """
        with self._lock:
            self._totals = _Totals()
            self._runs_by_server.clear()
            self._tenants.clear()
            self._recent.clear()
            self._slow.clear()

    def _summary(self) -> dict[str, str]:
        metrics = self.get_metrics()
        return {name: f"{value:.4f}" if isinstance(value, float) else str(value) for name, value in metrics.items()}

    def __repr__(self) -> str:
        m = self.get_metrics()
        return (
            f"Monitor(database={self.database!r}, queries={m['queries']}, "
            f"failed_queries={m['failed_queries']}, slow_queries={m['slow_queries']}, "
            f"runs={m['runs']}, failed_runs={m['failed_runs']}, "
            f"p95_query_seconds={m['p95_query_seconds']:.4f}, export={self.metrics_export!r})"
        )

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
            f"<td style='text-align:right'>{html.escape(value)}</td></tr>"
            for name, value in self._summary().items()
        )
        return f"<table><caption>Monitor</caption>{body}</table>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Plain text for a notebook without HTML: the same numbers, one per line."""
        summary = self._summary()
        width = max(map(len, summary), default=0)
        printer.text("Monitor\n" + "\n".join(f"  {k.ljust(width)}  {v}" for k, v in summary.items()))


class MonitorObserver(RunObserver):
    """``DataFlow(monitoring=True)``: every statement and run of the DataFlow's runs is counted."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def open(self, run: RunContext, db: DataFlow) -> RunObserver:
        return MonitorRun(self.monitor, db)


class MonitorRun(RunObserver):
    """One run on one database, told to that database's monitor (its runs, by where they went)."""

    def __init__(self, monitor: Monitor, db: DataFlow) -> None:
        self.monitor = monitor
        self.db = db

    def on_statement(self, run: RunContext, db: DataFlow, statement: Statement) -> None:
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

    def on_retry(self, run: RunContext) -> None:
        self.monitor.record_retry(run.run_id)

    def on_run_end(self, run: RunContext, status: str, *, seconds: float, nodes: int, retries: int) -> None:
        self.monitor.record_run(
            run.run_id, seconds, status=status, nodes=nodes, retries=retries, served_by=run.served_by(self.db)
        )


class HealthCheck:
    """Runs the ping on a daemon thread and waits at most ``seconds`` for it.

    A hung server (paused, or cut off) never answers a ping, and a ping cannot be stopped from
    outside; so it runs on its own thread, and the check answers "unhealthy" when the time is up.
    While such a ping is still waiting, later checks do not start another one.
    """

    def __init__(self, ping: Callable[[], None], seconds: float) -> None:
        self._ping = ping
        self.seconds = seconds
        self._lock = threading.Lock()
        self._pending: tuple[float, threading.Event] | None = None  # a ping that has not answered yet

    def check(self) -> tuple[float, str | None]:
        """``(latency_ms, error)``; the error reads ``"ConnectionError: ..."``."""
        started = time.perf_counter()
        with self._lock:
            if self._pending is not None and not self._pending[1].is_set():
                waited = time.perf_counter() - self._pending[0]
                return 0.0, f"ConnectionError: the database has not answered a ping for {waited:.1f} s"
            done = threading.Event()
            self._pending = (started, done)
        failure: list[BaseException] = []

        def ping() -> None:
            try:
                self._ping()
            except BaseException as exc:  # reported by check(), never raised
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=ping, name="dataflow_nb-health", daemon=True).start()
        answered = done.wait(self.seconds)
        latency_ms = (time.perf_counter() - started) * 1000.0
        if not answered:
            return latency_ms, f"ConnectionError: no answer within {self.seconds:g} s (health_timeout)"
        if failure:
            return latency_ms, f"ConnectionError: {failure[0]}"
        return latency_ms, None


def _load_exporter(database: str) -> PrometheusExporter:
    """Import prometheus_client only when asked for, with an install hint when it is missing."""
    try:
        from dataflow_nb.monitor.prometheus import PrometheusExporter
    except ImportError as exc:
        raise DataflowError(
            "metrics_export='prometheus' needs the prometheus-client package: "
            "pip install prometheus-client (or use metrics_export=None)."
        ) from exc
    return PrometheusExporter(database)
