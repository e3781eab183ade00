"""Time limits: a hung server (SIGSTOP) answers health checks as unhealthy in time, and runs fail
with a WorkflowError naming the timeout instead of hanging the notebook."""

from __future__ import annotations

import time

import pytest

from dataflow_nb import DatabaseError, DataFlow, LocalRuntime, WorkflowBuilder
from tests.faults.cluster import Cluster
from tests.faults.helpers import (
    counter_value,
    create_counter,
    define_counter,
    failure_within,
    finishes_within,
    run_nodes,
)

pytestmark = pytest.mark.slow  # a private PostgreSQL server hung by SIGSTOP

HEALTH_LIMIT = 2.0
# How late past its limit the health check may answer on a loaded machine: it waits exactly its
# limit, then needs only to build the report.
SCHEDULING_SLACK = 1.5


@pytest.mark.parametrize("monitoring", [True, False])
def test_health_answers_unhealthy_within_its_limit_when_the_server_hangs(cluster: Cluster, monitoring: bool) -> None:
    with DataFlow(cluster.url, monitoring=monitoring) as db:
        assert db.get_health_status()["status"] == "healthy"
        cluster.pause()
        for _ in range(2):  # the second check does not queue behind the first, hung, ping
            started = time.perf_counter()
            status = db.get_health_status()
            assert time.perf_counter() - started < HEALTH_LIMIT + SCHEDULING_SLACK
            assert status["status"] == "unhealthy"
            assert status["error"].startswith("ConnectionError: ")
        cluster.resume()
        deadline = time.monotonic() + 30
        while db.get_health_status()["status"] != "healthy":  # the hung ping returns once resumed
            assert time.monotonic() < deadline, "still unhealthy 30 s after the server resumed"
            time.sleep(0.1)


def test_health_error_of_a_stopped_server_says_connection_error(cluster: Cluster) -> None:
    with DataFlow(cluster.url, monitoring=True, pool_size=1, pool_max_overflow=0) as db:
        cluster.stop()
        status = db.get_monitor().get_health_status()
        assert status["status"] == "unhealthy"
        assert status["error"].startswith("ConnectionError: ")
        assert "cannot connect to PostgreSQL" in status["error"]


def test_a_run_on_a_hung_server_fails_with_the_timeout(cluster: Cluster) -> None:
    with DataFlow(cluster.url, statement_timeout=1, pool_size=1, pool_max_overflow=0) as db:
        define_counter(db)
        counter = create_counter(db)
        cluster.pause()
        workflow = WorkflowBuilder()
        workflow.add_node("CounterUpdateNode", "bump", {"id": counter, "n": 9})
        error = failure_within(60, workflow.build())  # bounded by the limits; without them it would hang
        assert "statement_timeout=1 s" in str(error) or "within statement_timeout" in str(error)
        assert error.run_id
        cluster.resume()
        finishes_within(60, lambda: LocalRuntime().execute(workflow.build()))  # the pool recovered
        assert counter_value(db, counter) == 9


SLOW_SQL = {
    "postgresql": "SELECT pg_sleep(30) AS slept",
    "duckdb": "SELECT sum(i * i) AS s FROM range(100000000000) t(i)",
}


def test_statement_timeout_cancels_a_slow_statement(fault_url: str) -> None:
    with DataFlow(fault_url, statement_timeout=0.5) as db:
        define_counter(db)
        counter = create_counter(db)
        sql = SLOW_SQL[db.backend.capabilities.name]
        workflow = WorkflowBuilder()
        workflow.add_node("CounterUpdateNode", "bump", {"id": counter, "n": 3})
        workflow.add_node("SQLQueryNode", "slow", {"sql": sql, "db": db})
        error = failure_within(60, workflow.build())
        assert error.node_id == "slow"
        assert "statement_timeout" in str(error)
        assert counter_value(db, counter) == 0  # the run's update was rolled back
        run_nodes((db.nodes["CounterUpdateNode"], "bump", {"id": counter, "n": 4}))
        assert counter_value(db, counter) == 4


def test_connect_timeout_bounds_the_wait_for_a_hung_server(cluster: Cluster) -> None:
    cluster.pause()
    errors: list[BaseException] = []

    def connect() -> None:
        try:
            DataFlow(cluster.url, connect_timeout=2).close()
        except DatabaseError as exc:
            errors.append(exc)

    finishes_within(60, connect)
    assert len(errors) == 1
    assert "cannot connect to PostgreSQL" in str(errors[0])


@pytest.mark.parametrize("option", ["connect_timeout", "statement_timeout", "health_timeout"])
def test_time_limits_must_be_positive(option: str) -> None:
    with pytest.raises(Exception, match=option):
        DataFlow(**{option: 0})
