"""Monitor: exact counts, slow-query log, health, frames, Prometheus export, thread safety."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime

import pandas as pd
import polars as pl
import pytest

from dataflow_nb.exceptions import DataflowError
from dataflow_nb.monitor import Monitor, SlowQuery

DB = "duckdb:///:memory:"
COLUMNS = ["at", "seconds", "rows", "node_id", "run_id", "sql", "error"]


def test_counts_are_exact_after_queries_and_runs() -> None:
    monitor = Monitor(database=DB)
    monitor.record_query("SELECT 1", 0.1, 1, node_id="a", run_id="r1")
    monitor.record_query("SELECT 2", 0.3, 4, node_id="b", run_id="r1")
    monitor.record_query("SELECT x", 0.2, 0, node_id="b", run_id="r2", error="CatalogException: x")
    monitor.record_run("r1", 1.5, status="ok", nodes=2)
    monitor.record_run("r2", 0.5, status="failed", nodes=1)

    metrics = monitor.get_metrics()

    assert set(metrics) == {
        "database", "queries", "failed_queries", "rows", "query_seconds_total",
        "query_seconds_avg", "query_seconds_max", "p95_query_seconds", "slow_queries",
        "runs", "failed_runs", "run_seconds_total", "retries", "runs_by_server", "uptime_seconds",
    }  # fmt: skip
    assert metrics["runs_by_server"] == {"primary": 2}
    assert metrics["database"] == DB
    assert (metrics["queries"], metrics["failed_queries"], metrics["rows"]) == (3, 1, 5)
    assert metrics["query_seconds_total"] == pytest.approx(0.6)
    assert metrics["query_seconds_avg"] == pytest.approx(0.2)
    assert metrics["query_seconds_max"] == pytest.approx(0.3)
    assert metrics["p95_query_seconds"] == pytest.approx(0.3)
    assert (metrics["runs"], metrics["failed_runs"]) == (2, 1)
    assert metrics["run_seconds_total"] == pytest.approx(2.0)
    assert metrics["slow_queries"] == 0
    assert metrics["uptime_seconds"] >= 0


def test_metrics_before_any_query_are_zero() -> None:
    metrics = Monitor(database=DB).get_metrics()
    assert metrics["queries"] == 0
    assert metrics["query_seconds_avg"] == metrics["query_seconds_max"] == metrics["p95_query_seconds"] == 0.0


def test_p95_is_the_nearest_rank_of_the_recorded_times() -> None:
    monitor = Monitor(database=DB, slow_query_threshold=1000)
    for ms in range(1, 101):
        monitor.record_query("SELECT 1", ms / 1000, 1)
    assert monitor.get_metrics()["p95_query_seconds"] == pytest.approx(0.095)


def test_negative_rows_and_seconds_count_as_zero() -> None:
    monitor = Monitor(database=DB, metrics_export="prometheus")
    monitor.record_query("UPDATE t SET a = 1", -0.001, -1)
    metrics = monitor.get_metrics()
    assert (metrics["queries"], metrics["rows"], metrics["query_seconds_total"]) == (1, 0, 0.0)


def test_slow_query_threshold() -> None:
    monitor = Monitor(database=DB, slow_query_threshold=1.0)
    before = datetime.now(UTC)
    monitor.record_query("SELECT slow", 2.0, 7, node_id="n1", run_id="r1")
    monitor.record_query("SELECT fast", 0.5, 1, node_id="n2", run_id="r1")

    frame = monitor.slow_queries()

    assert monitor.get_metrics()["slow_queries"] == 1
    assert frame.columns == COLUMNS
    assert frame.height == 1
    row = frame.row(0, named=True)
    assert row == {
        "at": row["at"], "seconds": 2.0, "rows": 7, "node_id": "n1", "run_id": "r1",
        "sql": "SELECT slow", "error": None,
    }  # fmt: skip
    assert row["at"].tzinfo is not None
    assert before <= row["at"] <= datetime.now(UTC)


def test_slow_failed_query_keeps_its_error() -> None:
    monitor = Monitor(database=DB, slow_query_threshold=0.1)
    monitor.record_query("SELECT * FROM missing", 0.2, 0, error="CatalogException: missing")
    assert monitor.slow_queries()["error"].to_list() == ["CatalogException: missing"]


def test_slow_query_log_is_bounded_and_keeps_the_newest() -> None:
    monitor = Monitor(database=DB, slow_query_threshold=0.0, max_slow_queries=5)
    for i in range(12):
        monitor.record_query(f"SELECT {i}", 1.0, i)

    frame = monitor.slow_queries()

    assert frame["sql"].to_list() == [f"SELECT {i}" for i in range(7, 12)]
    assert monitor.get_metrics()["slow_queries"] == 12  # the count stays exact


def test_empty_slow_query_frame_keeps_its_schema() -> None:
    frame = Monitor(database=DB).slow_queries()
    assert frame.height == 0
    assert frame.schema == pl.Schema(
        {
            "at": pl.Datetime("us", "UTC"),
            "seconds": pl.Float64,
            "rows": pl.Int64,
            "node_id": pl.String,
            "run_id": pl.String,
            "sql": pl.String,
            "error": pl.String,
        }
    )


def test_slow_queries_as_pandas() -> None:
    monitor = Monitor(database=DB, slow_query_threshold=1.0)
    empty = monitor.slow_queries("pandas")
    monitor.record_query("SELECT slow", 3.0, 2, node_id="n1")
    frame = monitor.slow_queries(frame="pandas")

    for result in (empty, frame):
        assert isinstance(result, pd.DataFrame)
        assert list(result.columns) == COLUMNS
        assert isinstance(result["at"].dtype, pd.DatetimeTZDtype)
        assert str(result["at"].dtype.tz) == "UTC"
        assert pd.api.types.is_float_dtype(result["seconds"])
        assert pd.api.types.is_integer_dtype(result["rows"])
        assert all(pd.api.types.is_string_dtype(result[c]) for c in ("node_id", "run_id", "sql", "error"))
    assert len(empty) == 0
    assert frame.loc[0, "sql"] == "SELECT slow"
    assert frame.loc[0, "rows"] == 2


def test_slow_queries_rejects_an_unknown_frame_kind() -> None:
    with pytest.raises(DataflowError, match="'polars' or 'pandas'"):
        Monitor(database=DB).slow_queries("arrow")  # type: ignore[arg-type]


def test_health_healthy_with_latency() -> None:
    calls = []
    health = Monitor(database=DB, ping=lambda: calls.append(1)).get_health_status()

    assert calls == [1]
    assert health["status"] == "healthy"
    assert health["database"] == DB
    assert health["error"] is None
    assert isinstance(health["latency_ms"], float)
    assert health["latency_ms"] >= 0
    assert health["checked_at"].tzinfo is not None


def test_health_unhealthy_when_ping_raises() -> None:
    def ping() -> None:
        raise ConnectionError("connection refused")

    health = Monitor(database=DB, ping=ping).get_health_status()

    assert health["status"] == "unhealthy"
    assert health["error"] == "ConnectionError: connection refused"
    assert health["latency_ms"] >= 0
    assert health["database"] == DB


def test_health_without_ping_checks_nothing() -> None:
    health = Monitor(database=DB).get_health_status()
    assert (health["status"], health["latency_ms"], health["error"]) == ("healthy", None, None)


def test_prometheus_text_counts_ok_queries() -> None:
    monitor = Monitor(database=DB, metrics_export="prometheus")
    for _ in range(3):
        monitor.record_query("SELECT 1", 0.01, 2)
    monitor.record_run("r1", 0.1, status="ok", nodes=1)

    text = monitor.prometheus_text()

    assert f'dataflow_queries_total{{database="{DB}",status="ok"}} 3.0' in text
    assert f'dataflow_queries_total{{database="{DB}",status="failed"}} 0.0' in text
    assert f'dataflow_rows_total{{database="{DB}"}} 6.0' in text
    assert f'dataflow_query_seconds_count{{database="{DB}"}} 3.0' in text
    assert f'dataflow_runs_total{{database="{DB}",status="ok"}} 1.0' in text
    assert f'dataflow_run_seconds_count{{database="{DB}"}} 1.0' in text


def test_two_prometheus_monitors_do_not_collide() -> None:
    first = Monitor(database=DB, metrics_export="prometheus")
    second = Monitor(database=DB, metrics_export="prometheus")
    first.record_query("SELECT 1", 0.01, 1)
    for _ in range(2):
        second.record_query("SELECT 1", 0.01, 1)

    assert first.registry is not second.registry
    assert f'dataflow_queries_total{{database="{DB}",status="ok"}} 1.0' in first.prometheus_text()
    assert f'dataflow_queries_total{{database="{DB}",status="ok"}} 2.0' in second.prometheus_text()


def test_prometheus_uses_a_private_registry() -> None:
    from prometheus_client import REGISTRY, generate_latest

    Monitor(database="private-check", metrics_export="prometheus").record_query("SELECT 1", 0.01, 1)
    assert b"private-check" not in generate_latest(REGISTRY)


def test_prometheus_text_without_export_raises() -> None:
    monitor = Monitor(database=DB)
    assert monitor.registry is None
    with pytest.raises(DataflowError, match="metrics_export='prometheus'"):
        monitor.prometheus_text()


def test_bad_metrics_export_raises() -> None:
    with pytest.raises(DataflowError, match="'prometheus'") as info:
        Monitor(database=DB, metrics_export="statsd")
    assert "None" in str(info.value)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"slow_query_threshold": -1}, "slow_query_threshold"),
        ({"slow_query_threshold": "1"}, "slow_query_threshold"),
        ({"max_slow_queries": 0}, "max_slow_queries"),
    ],
)
def test_bad_options_raise(options: dict[str, object], match: str) -> None:
    with pytest.raises(DataflowError, match=match):
        Monitor(database=DB, **options)  # type: ignore[arg-type]


def test_bad_run_status_raises() -> None:
    with pytest.raises(DataflowError, match="'ok', 'failed', 'interrupted', 'retried'"):
        Monitor(database=DB).record_run("r1", 0.1, status="done", nodes=1)


def test_missing_prometheus_client_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "dataflow_nb.monitor.prometheus", raising=False)
    with pytest.raises(DataflowError, match="pip install prometheus-client"):
        Monitor(database=DB, metrics_export="prometheus")


def test_prometheus_client_is_imported_only_when_asked_for() -> None:
    code = (
        "import sys\n"
        "from dataflow_nb.monitor import Monitor\n"
        "m = Monitor(database='x')\n"
        "m.record_query('SELECT 1', 0.1, 1)\n"
        "m.get_metrics(); m.get_health_status(); repr(m)\n"
        "assert 'prometheus_client' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reset_clears_counts_but_prometheus_keeps_counting() -> None:
    monitor = Monitor(database=DB, slow_query_threshold=1.0, metrics_export="prometheus")
    monitor.record_query("SELECT slow", 2.0, 1)
    monitor.record_run("r1", 2.0, status="ok", nodes=1)

    monitor.reset()

    metrics = monitor.get_metrics()
    assert (metrics["queries"], metrics["slow_queries"], metrics["runs"]) == (0, 0, 0)
    assert metrics["p95_query_seconds"] == 0.0
    assert monitor.slow_queries().height == 0
    assert f'dataflow_queries_total{{database="{DB}",status="ok"}} 1.0' in monitor.prometheus_text()


def test_record_from_four_threads_is_exact() -> None:
    monitor = Monitor(database=DB, slow_query_threshold=0.5, metrics_export="prometheus", max_slow_queries=10)
    start = threading.Barrier(4)

    def work() -> None:
        start.wait()
        for i in range(1000):
            monitor.record_query("SELECT 1", 1.0 if i % 100 == 0 else 0.001, 1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    metrics = monitor.get_metrics()
    assert (metrics["queries"], metrics["rows"], metrics["slow_queries"]) == (4000, 4000, 40)
    assert monitor.slow_queries().height == 10
    assert f'dataflow_queries_total{{database="{DB}",status="ok"}} 4000.0' in monitor.prometheus_text()


def test_repr_and_html_summarise_the_metrics() -> None:
    monitor = Monitor(database="duckdb:///<a&b>.duckdb")
    monitor.record_query("SELECT 1", 0.25, 1)

    text = repr(monitor)
    page = monitor._repr_html_()

    assert "queries=1" in text
    assert "duckdb:///<a&b>.duckdb" in text
    assert "&lt;a&amp;b&gt;" in page
    assert "<a&b>" not in page
    for name in ("queries", "slow_queries", "p95_query_seconds", "failed_runs", "uptime_seconds"):
        assert f">{name}<" in page


def test_slow_query_record_type() -> None:
    entry = SlowQuery(datetime.now(UTC), 1.0, 1, None, None, "SELECT 1", None)
    with pytest.raises(AttributeError):
        entry.sql = "other"  # type: ignore[misc]
