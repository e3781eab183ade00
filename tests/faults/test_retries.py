"""Retries: only when safe (nothing sent, or the database rolled back a serialization failure),
never a run with Python callables unless asked, logged, counted and visible on the run."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from dataflow_nb import ConflictError, DataFlow, LocalRuntime, WorkflowBuilder, WorkflowError
from tests.faults.cluster import Cluster
from tests.faults.helpers import counter_value, create_counter, define_counter, run_nodes

pytestmark = pytest.mark.slow  # private PostgreSQL servers stopped and restarted


def serializable(url: str) -> str:
    """Every transaction SERIALIZABLE on PostgreSQL (DuckDB's are snapshot-isolated anyway)."""
    if not url.startswith("postgresql"):
        return url
    return url + "?options=-c%20default_transaction_isolation%3Dserializable"


def lost_update(db: DataFlow, runtime: LocalRuntime) -> tuple[Any, BaseException | None]:
    """Run B reads the counter, waits while run A updates and commits it, then updates it too:
    a serialization failure for B (PostgreSQL 40001; a write conflict on DuckDB)."""
    counter = create_counter(db)
    b_has_read = threading.Event()
    a_committed = threading.Event()

    def wait_for_a(**_: Any) -> None:
        b_has_read.set()
        a_committed.wait(30)

    outcome: dict[str, Any] = {}

    def run_b() -> None:
        workflow = WorkflowBuilder()
        workflow.add_node("CounterReadNode", "read", {"id": counter})
        workflow.add_node(wait_for_a, "wait", {})
        workflow.add_node("CounterUpdateNode", "write", {"id": counter, "n": 2})
        try:
            outcome["results"] = runtime.execute(workflow.build())[0]
        except WorkflowError as exc:
            outcome["error"] = exc

    b = threading.Thread(target=run_b)
    b.start()
    assert b_has_read.wait(30)
    run_nodes((db.nodes["CounterUpdateNode"], "a", {"id": counter, "n": 1}))
    a_committed.set()
    b.join()
    return outcome.get("results"), outcome.get("error")


def test_a_serialization_failure_is_retried_and_succeeds(fault_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with DataFlow(serializable(fault_url), monitoring=True) as db:
        define_counter(db)
        with caplog.at_level(logging.INFO, logger="dataflow_nb"):
            results, error = lost_update(db, LocalRuntime(retry_callables=True))
        assert error is None
        assert results.retries == 1
        assert "retried 1&times;" in results._repr_html_()
        assert counter_value(db, int(results["read"]["id"][0])) == 2
        assert db.get_monitor().get_metrics()["retries"] == 1
        assert [r for r in caplog.records if "retry 1 of 2" in r.getMessage()]


def test_a_run_with_a_callable_node_is_not_retried(fault_url: str) -> None:
    with DataFlow(serializable(fault_url), monitoring=True) as db:
        define_counter(db)
        results, error = lost_update(db, LocalRuntime())
        assert results is None
        assert isinstance(error, WorkflowError)
        assert error.node_id == "write"
        assert isinstance(error.__cause__, ConflictError)
        assert error.retries == 0
        assert db.get_monitor().get_metrics()["retries"] == 0


def test_retries_zero_turns_them_off(fault_url: str) -> None:
    with DataFlow(serializable(fault_url)) as db:
        define_counter(db)
        _, error = lost_update(db, LocalRuntime(retries=0, retry_callables=True))
        assert isinstance(error, WorkflowError) and isinstance(error.__cause__, ConflictError)


def test_a_run_that_could_not_connect_is_retried(cluster: Cluster) -> None:
    with DataFlow(cluster.url, monitoring=True, connect_timeout=5) as db:
        define_counter(db)
        counter = create_counter(db)
        cluster.stop()
        restarted = threading.Timer(0.5, cluster.start)
        restarted.start()
        try:
            workflow = WorkflowBuilder()
            workflow.add_node("CounterUpdateNode", "bump", {"id": counter, "n": 5})
            results, _ = LocalRuntime(retries=6, retry_backoff=0.5).execute(workflow.build())
        finally:
            restarted.join()
        assert results.retries >= 1
        assert db.get_monitor().get_metrics()["retries"] == results.retries
        assert counter_value(db, counter) == 5


def test_a_serialization_failure_at_the_commit_is_never_retried(private_url: str) -> None:
    """Write skew: both runs read both rows and each updates one; PostgreSQL fails the second
    commit (40001). A retry is safe in principle, but a run is never sent again once its commit was."""
    with DataFlow(serializable(private_url), monitoring=True) as db:
        define_counter(db)
        first, second = create_counter(db, "a"), create_counter(db, "b")
        b_wrote, a_committed = threading.Event(), threading.Event()

        def wait_for_a(**_: Any) -> None:
            b_wrote.set()
            a_committed.wait(30)

        errors: list[WorkflowError] = []

        def run_b() -> None:
            workflow = WorkflowBuilder()
            workflow.add_node("CounterListNode", "all", {})
            workflow.add_node("CounterUpdateNode", "write", {"id": second, "n": 5})
            workflow.add_node(wait_for_a, "wait", {})
            try:
                LocalRuntime(retry_callables=True).execute(workflow.build())
            except WorkflowError as exc:
                errors.append(exc)

        b = threading.Thread(target=run_b)
        b.start()
        assert b_wrote.wait(30)
        run_nodes(("CounterListNode", "all", {}), (db.nodes["CounterUpdateNode"], "write", {"id": first, "n": 5}))
        a_committed.set()
        b.join()
        assert len(errors) == 1
        assert errors[0].node_id is None  # the commit failed
        assert isinstance(errors[0].__cause__, ConflictError)
        assert not errors[0].__cause__.retryable
        assert errors[0].retries == 0
        assert db.get_monitor().get_metrics()["retries"] == 0
        assert counter_value(db, second) == 0


def test_runtime_options_are_checked() -> None:
    with pytest.raises(Exception, match="retries"):
        LocalRuntime(retries=-1)
    with pytest.raises(Exception, match="retry_backoff"):
        LocalRuntime(retry_backoff=-1)
