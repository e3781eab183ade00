"""Prometheus metrics for one Monitor, kept in a registry of its own.

Each Monitor gets a private ``CollectorRegistry`` rather than prometheus_client's global one:
two DataFlows in one kernel (or a notebook cell re-run) would otherwise register the same
metric names twice and fail with "Duplicated timeseries".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

_STATUSES = ("ok", "failed")


class PrometheusExporter:
    """The five dataflow metrics, every series labelled with the database it belongs to."""

    def __init__(self, database: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        queries = Counter(
            "dataflow_queries",
            "SQL statements executed, by outcome.",
            labelnames=("database", "status"),
            registry=self.registry,
        )
        query_seconds = Histogram(
            "dataflow_query_seconds",
            "Wall-clock seconds per SQL statement.",
            labelnames=("database",),
            registry=self.registry,
        )
        rows = Counter(
            "dataflow_rows",
            "Rows returned by SQL statements.",
            labelnames=("database",),
            registry=self.registry,
        )
        runs = Counter(
            "dataflow_runs",
            "Workflow runs, by outcome.",
            labelnames=("database", "status"),
            registry=self.registry,
        )
        run_seconds = Histogram(
            "dataflow_run_seconds",
            "Wall-clock seconds per workflow run.",
            labelnames=("database",),
            registry=self.registry,
        )
        retries = Counter(
            "dataflow_run_retries",
            "Workflow runs tried again after a safe failure (connect, serialization failure, deadlock).",
            labelnames=("database",),
            registry=self.registry,
        )
        # Bind every label set up front: series exist (at 0) before the first event, so a
        # dashboard's rate() has a baseline and "no failures yet" reads as 0, not as missing.
        self._queries = {status: queries.labels(database=database, status=status) for status in _STATUSES}
        self._runs = {status: runs.labels(database=database, status=status) for status in _STATUSES}
        self._query_seconds = query_seconds.labels(database=database)
        self._rows = rows.labels(database=database)
        self._run_seconds = run_seconds.labels(database=database)
        self._retries = retries.labels(database=database)
        self._database = database

    def query(self, seconds: float, rows: int, *, failed: bool) -> None:
        """Count one statement; prometheus_client's own locks make this thread-safe."""
        self._queries["failed" if failed else "ok"].inc()
        self._query_seconds.observe(seconds)
        if rows:
            self._rows.inc(rows)

    def run(self, seconds: float, *, failed: bool) -> None:
        """Count one workflow run."""
        self._runs["failed" if failed else "ok"].inc()
        self._run_seconds.observe(seconds)

    def retry(self) -> None:
        """Count one retry of a run."""
        self._retries.inc()

    def watch_cache(self, stats: Callable[[], dict[str, Any]], degraded: Callable[[], bool]) -> None:
        """Export the result cache's counts, read from the cache at each scrape."""
        self.registry.register(_CacheCollector(self._database, stats, degraded))

    def text(self) -> str:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry).decode()


class _CacheCollector(Collector):
    """``dataflow_cache_*``: the cache keeps exact counts itself, so they are read, not copied."""

    def __init__(self, database: str, stats: Callable[[], dict[str, Any]], degraded: Callable[[], bool]) -> None:
        self._database = database
        self._stats = stats
        self._degraded = degraded

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        counts = self._stats()
        for name in ("hits", "misses", "sets", "invalidations", "errors", "bytes_read", "bytes_written"):
            family = CounterMetricFamily(
                f"dataflow_cache_{name}", f"Result cache {name.replace('_', ' ')}.", labels=["database"]
            )
            family.add_metric([self._database], counts.get(name, 0))
            yield family
        degraded = GaugeMetricFamily(
            "dataflow_cache_degraded",
            "1 while the cache store is failing (reads go to the database).",
            labels=["database"],
        )
        degraded.add_metric([self._database], float(self._degraded()))
        yield degraded
