"""Failover with libpq multi-host URLs: a streaming standby is promoted, the primary goes away."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder, WorkflowError
from tests.faults.cluster import Cluster, streaming_pair, wait_until
from tests.faults.helpers import counter_value, create_counter, define_counter, run_nodes

pytestmark = pytest.mark.slow  # a private primary and standby, promoted


@pytest.fixture
def pair() -> Iterator[tuple[Cluster, Cluster]]:
    with streaming_pair() as servers:
        yield servers


def hosts_in_authority(primary: Cluster, standby: Cluster) -> str:
    return (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
        "?target_session_attrs=read-write"
    )


def hosts_in_query(primary: Cluster, standby: Cluster) -> str:
    return (
        f"postgresql://postgres@/postgres?host=127.0.0.1,127.0.0.1&port={primary.port},{standby.port}"
        "&target_session_attrs=read-write"
    )


def replicated(standby: Cluster, table: str, rows: int) -> bool:
    try:
        return bool(standby.query(f"SELECT count(*) = {rows} FROM {table}")[0][0])
    except Exception:  # the table itself has not arrived yet
        return False


def server_port(db: DataFlow) -> int:
    results = run_nodes(("SQLQueryNode", "port", {"sql": "SELECT inet_server_port() AS port", "db": db}))
    return int(results["port"]["port"][0])


def test_the_next_run_after_a_failover_succeeds_and_the_in_flight_one_leaves_nothing(
    pair: tuple[Cluster, Cluster],
) -> None:
    primary, standby = pair
    with DataFlow(hosts_in_authority(primary, standby), pool_size=2, pool_max_overflow=0) as db:
        define_counter(db)
        counter = create_counter(db)
        table = db.models["Counter"].table_name
        wait_until(lambda: replicated(standby, table, 1), 60, "replication of the counter")
        assert server_port(db) == primary.port

        def fail_over(**_: Any) -> None:
            standby.promote()
            primary.stop()

        workflow = WorkflowBuilder()
        workflow.add_node("CounterUpdateNode", "before", {"id": counter, "n": 1})
        workflow.add_node("CounterCreateNode", "extra", {"key": "partial", "n": 1})
        workflow.add_node(fail_over, "fail_over", {})
        workflow.add_node("CounterUpdateNode", "after", {"id": counter, "n": 2})
        with pytest.raises(WorkflowError) as info:
            LocalRuntime().execute(workflow.build())
        assert info.value.node_id == "after" and info.value.run_id

        run_nodes((db.nodes["CounterUpdateNode"], "next", {"id": counter, "n": 3}))  # on the same DataFlow
        assert server_port(db) == standby.port
        assert counter_value(db, counter) == 3
        keys = run_nodes((db.nodes["CounterListNode"], "all", {}))["all"]["key"].to_list()
        assert keys == ["hot"]  # nothing of the in-flight run


def test_a_pooled_connection_to_a_server_that_turned_read_only_is_discarded_at_checkout(
    pair: tuple[Cluster, Cluster],
) -> None:
    """The old primary turns read-only (as a demoted server is) while the standby is promoted: the
    pooled connection to it is replaced at checkout, and libpq picks the new primary."""
    primary, standby = pair
    with DataFlow(hosts_in_query(primary, standby), pool_size=1, pool_max_overflow=0) as db:
        assert server_port(db) == primary.port
        standby.promote()
        primary.query("ALTER SYSTEM SET default_transaction_read_only = on")
        primary.query("SELECT pg_reload_conf()")
        wait_until(
            lambda: primary.query("SELECT current_setting('default_transaction_read_only')")[0][0] == "on",
            30,
            "the reload",
        )
        results, _ = LocalRuntime(retries=0).execute(_port_workflow(db))
        assert int(results["port"]["port"][0]) == standby.port


def _port_workflow(db: DataFlow) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node("SQLQueryNode", "port", {"sql": "SELECT inet_server_port() AS port", "db": db})
    return workflow.build()
