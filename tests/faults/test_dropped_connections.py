"""A backend killed mid-run: a WorkflowError with node and run ids, and a pool that stays healthy."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder, WorkflowError
from tests.faults.cluster import Cluster
from tests.faults.helpers import counter_value, create_counter, define_counter

pytestmark = pytest.mark.slow  # backends killed on a private PostgreSQL server


def test_a_backend_killed_mid_run_ten_times(
    private_url: str, shared_private_cluster: Cluster, capfd: pytest.CaptureFixture[str]
) -> None:
    with DataFlow(private_url, pool_size=1, pool_max_overflow=0, pool_timeout=5) as db:
        define_counter(db)
        counter = create_counter(db)

        def kill(pid: int) -> int:
            shared_private_cluster.query(f"SELECT pg_terminate_backend({int(pid)}, 10000)")
            return pid

        gc.disable()  # each next run must succeed without a garbage collection
        try:
            for attempt in range(10):
                workflow = WorkflowBuilder()
                workflow.add_node("CounterUpdateNode", "bump", {"id": counter, "n": 100 + attempt})
                workflow.add_node("SQLQueryNode", "pid", {"sql": "SELECT pg_backend_pid() AS pid", "db": db})
                workflow.add_node(kill, "kill", {})
                workflow.add_node("CounterUpdateNode", "after", {"id": counter, "n": 200 + attempt})
                workflow.add_connection("pid", "pid", "kill", "pid")
                with pytest.raises(WorkflowError) as info:
                    LocalRuntime().execute(workflow.build())
                assert info.value.node_id == "after"
                assert info.value.run_id
                assert info.value.run_id in str(info.value)
                assert info.value.__cause__ is not None
                assert "adbc" not in type(info.value.__cause__).__module__
                # The next run gets a working connection: the dead one was discarded, not pooled.
                workflow = WorkflowBuilder()
                workflow.add_node("CounterUpdateNode", "bump", {"id": counter, "n": attempt})
                LocalRuntime().execute(workflow.build())
                assert counter_value(db, counter) == attempt
        finally:
            gc.enable()
        assert db.backend._pool.checkedout() == 0  # type: ignore[attr-defined]
    capfd.readouterr()
    gc.collect()
    assert capfd.readouterr() == ("", "")  # nothing printed at collection


def test_a_server_restarted_between_runs_costs_no_run(cluster: Cluster) -> None:
    """Pooled connections to the old server are found dead at checkout and replaced."""
    with DataFlow(cluster.url, pool_size=2, pool_max_overflow=0) as db:
        define_counter(db)
        counter = create_counter(db)
        cluster.stop()
        cluster.start()
        workflow = WorkflowBuilder()
        workflow.add_node("CounterUpdateNode", "bump", {"id": counter, "n": 7})
        results: Any
        results, _ = LocalRuntime().execute(workflow.build())
        assert results.retries == 0
        assert counter_value(db, counter) == 7
