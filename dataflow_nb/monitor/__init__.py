"""Monitor the queries and runs of a DataFlow: exact counts, timings, slow queries, health.

``DataFlow(monitoring=True)`` creates the monitor; ``metrics_export="prometheus"`` also keeps
Prometheus metrics in a registry of the monitor's own.

Example:
    >>> from dataflow_nb.monitor import Monitor
    >>> monitor = Monitor(database="duckdb:///:memory:", slow_query_threshold=1.0)
    >>> monitor.record_query("SELECT 1", 2.0, 1, node_id="n1")
    >>> monitor.get_metrics()["slow_queries"]
    1
"""

from __future__ import annotations

from dataflow_nb.monitor.monitor import Monitor, SlowQuery

__all__ = ["Monitor", "SlowQuery"]
