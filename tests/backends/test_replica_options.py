"""``DataFlow(replicas=[...])`` without a standby: refusals, masking, fallbacks, and the run history's
new ``served_by`` column on a database whose history table predates it.

The routing itself is tested against a real streaming standby in ``tests/faults/test_replicas.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.schema import CreateSequence, CreateTable

from dataflow_nb import DataFlow, DataflowError, LocalRuntime, WorkflowBuilder
from dataflow_nb.monitor.runs import RUNS_TABLE, runs_table
from tests.faults.cluster import free_port

SECRET = "s3cret-pw"  # noqa: S105 - a password that must never be shown


def read_run(db: DataFlow) -> str:
    workflow = WorkflowBuilder()
    workflow.add_node("SQLQueryNode", "port", {"sql": "SELECT 1 AS one", "db": db})
    _, run_id = LocalRuntime().execute(workflow.build())
    return run_id


def test_duckdb_refuses_replicas_and_says_why() -> None:
    with pytest.raises(DataflowError, match="DuckDB has no read replicas"):
        DataFlow(replicas=["postgresql://postgres@127.0.0.1:5432/test"])


def test_bad_replica_options_are_refused_by_name(postgres_url: str) -> None:
    with pytest.raises(DataflowError, match=r"consistency='strong'"):
        DataFlow(postgres_url, replicas=[postgres_url], consistency="strong")  # type: ignore[arg-type]
    with pytest.raises(DataflowError, match=r"max_replica_lag=0"):
        DataFlow(postgres_url, replicas=[postgres_url], max_replica_lag=0)
    with pytest.raises(DataflowError, match="takes a list of URLs"):
        DataFlow(postgres_url, replicas=postgres_url)  # type: ignore[arg-type]
    with pytest.raises(DataflowError, match="is not a PostgreSQL URL"):
        DataFlow(postgres_url, replicas=["duckdb:///x.duckdb"])


def test_a_replica_that_is_down_is_skipped_with_a_warning_and_its_password_masked(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/test"
    with DataFlow(postgres_url, replicas=[down]) as db, caplog.at_level(logging.WARNING, logger="dataflow_nb"):
        run_id = read_run(db)
        masked = db.replicas.safe_urls[0] if db.replicas else ""
        health = db.get_health_status()
        runs = db.runs()
        shown = [repr(db), str(health), caplog.text, str(runs.to_dicts())]
    assert masked == down.replace(SECRET, "***")
    assert f"replica {masked} is down" in caplog.text
    assert health["replicas"][0]["status"] == "unhealthy"
    assert health["replicas"][0]["database"] == masked
    assert all(SECRET not in text for text in shown)
    assert masked in shown[0]
    assert runs.filter(run_id=run_id)["served_by"].to_list() == ["primary"]


def test_a_server_that_is_not_a_standby_serves_no_reads(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with DataFlow(postgres_url, replicas=[postgres_url]) as db, caplog.at_level(logging.WARNING, logger="dataflow_nb"):
        run_id = read_run(db)
        served = db.runs().filter(run_id=run_id)["served_by"].to_list()
        health = db.get_health_status()["replicas"][0]["status"]
    assert served == ["primary"]
    assert "is not a standby" in caplog.text
    assert health == "not a standby"


def test_a_run_history_table_from_before_served_by_gets_the_column(backend_url: str | None, tmp_path: Path) -> None:
    url = backend_url or f"duckdb:///{tmp_path / 'old.duckdb'}"
    with DataFlow(url, run_history=False) as db:
        old = sa.Table(RUNS_TABLE, sa.MetaData(), *(c._copy() for c in runs_table.columns if c.name != "served_by"))
        sequence = next(iter(runs_table.metadata._sequences.values()))
        connection = db.backend.connect()
        try:
            for statement in (CreateSequence(sequence, if_not_exists=True), CreateTable(old)):
                connection.execute_sql(str(statement.compile(dialect=db.backend.dialect)))
            connection.commit()
        finally:
            connection.close()
    with DataFlow(url) as db:
        run_id = read_run(db)
        runs = db.runs()
    assert "served_by" in runs.columns
    assert runs.filter(run_id=run_id)["served_by"].to_list() == ["primary"]
