"""Read replicas against a real streaming standby on loopback (``pg_basebackup -R``).

One primary and one standby for the whole module; the test that stops the standby runs last
and starts it again. Every server is stopped afterwards, also when a test fails.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder
from dataflow_nb.widgets import RunsView
from tests.faults.cluster import Cluster, streaming_pair, wait_until

pytestmark = pytest.mark.slow  # a private primary and streaming standby

PORT_SQL = "SELECT inet_server_port() AS port"
SLEEPING = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(5)%' AND pid <> pg_backend_pid()"


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Cluster, Cluster]]:
    with streaming_pair() as servers:
        yield servers


def define_note(db: DataFlow) -> Any:
    @db.model
    class ReplicaNote:
        text: str

    return ReplicaNote


def execute(
    *nodes: tuple[Any, str, dict[str, Any]], runtime: LocalRuntime | None = None, tenant_id: str | None = None
) -> Any:
    workflow = WorkflowBuilder()
    for node_type, node_id, params in nodes:
        workflow.add_node(node_type, node_id, params)
    return (runtime or LocalRuntime()).execute(workflow.build(), tenant_id=tenant_id)


def port_of_read(db: DataFlow) -> int:
    """The port of the server a read-only run (a SQL read and a List) was sent to."""
    results, _ = execute(
        ("SQLQueryNode", "port", {"sql": PORT_SQL, "db": db}),
        (db.nodes["ReplicaNoteListNode"], "list", {}),
    )
    return int(results["port"]["port"][0])


def replayed_everything(primary: Cluster, standby: Cluster) -> bool:
    position = primary.query("SELECT pg_current_wal_lsn()::text")[0][0]
    return bool(standby.query(f"SELECT pg_last_wal_replay_lsn() >= '{position}'::pg_lsn")[0][0])


def test_reads_go_to_the_replica_writes_to_the_primary_and_the_history_says_where(
    pair: tuple[Cluster, Cluster],
) -> None:
    primary, standby = pair
    with DataFlow(primary.url, replicas=[standby.url], monitoring=True) as db:
        define_note(db)
        wait_until(lambda: replayed_everything(primary, standby), 60, "replay of the model's table")
        assert port_of_read(db) == standby.port

        results, write_run = execute(
            (db.nodes["ReplicaNoteCreateNode"], "add", {"text": "a"}),
            ("SQLQueryNode", "port", {"sql": PORT_SQL, "db": db}),
        )
        assert int(results["port"]["port"][0]) == primary.port  # the run writes: all of it on the primary
        wait_until(lambda: replayed_everything(primary, standby), 60, "replay of the write")
        results, read_run = execute((db.nodes["ReplicaNoteListNode"], "list", {}))
        assert results["list"]["text"].to_list() == ["a"]

        served = dict(db.runs().select("run_id", "served_by").iter_rows())
        assert served[write_run] == "primary"
        assert served[read_run] == standby.url
        view = RunsView(db, interval=0)
        assert [run["served_by"] for run in view.runs[:2]] == [standby.url, "primary"]
        view.close()
        by_server = db.get_monitor().get_metrics()["runs_by_server"]
        assert by_server == {standby.url: 2, "primary": 1}
        health = db.get_health_status()["replicas"]
        assert [(r["database"], r["status"], r["replayed_last_commit"]) for r in health] == [
            (standby.url, "healthy", True)
        ]
        assert 0.0 <= health[0]["lag_seconds"] < 5


def test_reads_follow_this_dataflows_writes_until_the_replica_replays_them(pair: tuple[Cluster, Cluster]) -> None:
    primary, standby = pair
    with (
        DataFlow(primary.url, replicas=[standby.url]) as db,
        DataFlow(primary.url, replicas=[standby.url], consistency="eventual") as eventual,
    ):
        define_note(db)
        define_note(eventual)
        wait_until(lambda: replayed_everything(primary, standby), 60, "replay of the model's table")
        standby.query("SELECT pg_wal_replay_pause()")
        try:
            execute((db.nodes["ReplicaNoteCreateNode"], "add", {"text": "mine"}))
            # Read-your-writes: the replica has not replayed the commit, so the primary answers.
            assert port_of_read(db) == primary.port
            results, _ = execute((db.nodes["ReplicaNoteListNode"], "list", {"filter": {"text": "mine"}}))
            assert results["list"].height == 1
            assert db.get_health_status()["replicas"][0]["status"] == "behind"
            # Eventual: the replica answers, without the row it has not replayed.
            results, _ = execute(
                (eventual.nodes["ReplicaNoteListNode"], "list", {"filter": {"text": "mine"}}),
                ("SQLQueryNode", "port", {"sql": PORT_SQL, "db": eventual}),
            )
            assert int(results["port"]["port"][0]) == standby.port
            assert results["list"].height == 0
        finally:
            standby.query("SELECT pg_wal_replay_resume()")
        wait_until(lambda: replayed_everything(primary, standby), 60, "replay after resuming")
        assert port_of_read(db) == standby.port


def test_a_tenants_run_goes_to_the_primary_and_sees_only_its_rows(pair: tuple[Cluster, Cluster]) -> None:
    """Binding a run to its tenant (row-level security) writes the transaction's id: the primary's job."""
    primary, standby = pair
    with DataFlow(primary.url, replicas=[standby.url], multi_tenant=True) as db:

        @db.model
        class Ledger:
            entry: str

        for tenant in ("acme", "globex"):
            execute((db.nodes["LedgerCreateNode"], "add", {"entry": tenant}), tenant_id=tenant)
        wait_until(lambda: replayed_everything(primary, standby), 60, "replay of the entries")
        results, run_id = execute(
            (db.nodes["LedgerListNode"], "list", {}),
            ("SQLQueryNode", "port", {"sql": PORT_SQL, "db": db}),
            tenant_id="acme",
        )
        assert results["list"]["entry"].to_list() == ["acme"]
        assert int(results["port"]["port"][0]) == primary.port
        assert db.runs().filter(run_id=run_id)["served_by"].to_list() == ["primary"]


def test_what_a_replica_answers_is_never_cached(pair: tuple[Cluster, Cluster]) -> None:
    primary, standby = pair
    with DataFlow(primary.url, replicas=[standby.url], cache_enabled=True) as db:
        define_note(db)
        wait_until(lambda: replayed_everything(primary, standby), 60, "replay of the model's table")
        for _ in range(2):
            assert port_of_read(db) == standby.port
        assert db.cache is not None
        assert (db.cache.stats()["sets"], db.cache.stats()["hits"]) == (0, 0)


def test_a_lagging_replica_is_skipped_with_a_warning(
    pair: tuple[Cluster, Cluster], caplog: pytest.LogCaptureFixture
) -> None:
    primary, standby = pair
    with DataFlow(primary.url, replicas=[standby.url], consistency="eventual", max_replica_lag=0.2) as db:
        define_note(db)
        wait_until(lambda: replayed_everything(primary, standby), 60, "replay of the model's table")
        standby.query("SELECT pg_wal_replay_pause()")
        try:
            execute((db.nodes["ReplicaNoteCreateNode"], "add", {"text": "late"}))
            wait_until(
                lambda: db.get_health_status()["replicas"][0]["status"] == "lagging", 10, "the lag to pass 0.2 s"
            )
            with caplog.at_level(logging.WARNING, logger="dataflow_nb"):
                assert port_of_read(db) == primary.port
                assert port_of_read(db) == primary.port
            assert caplog.text.count(f"replica {standby.url} lags") == 1  # once while it lags, not each run
            assert "max_replica_lag=0.2 s" in caplog.text
        finally:
            standby.query("SELECT pg_wal_replay_resume()")


def test_a_replica_stopped_mid_run_falls_back_to_the_primary(
    pair: tuple[Cluster, Cluster], caplog: pytest.LogCaptureFixture
) -> None:
    primary, standby = pair
    with DataFlow(primary.url, replicas=[standby.url]) as db:
        define_note(db)
        wait_until(lambda: replayed_everything(primary, standby), 60, "replay of the model's table")

        def stop_when_sleeping() -> None:
            wait_until(
                lambda: bool(standby.query(SLEEPING)[0][0]),
                30,
                "the run's statement on the standby",
            )
            standby.stop()

        stopper = threading.Thread(target=stop_when_sleeping, daemon=True)
        stopper.start()
        try:
            with caplog.at_level(logging.WARNING, logger="dataflow_nb"):
                results, run_id = execute(
                    ("SQLQueryNode", "sleep", {"sql": "SELECT pg_sleep(5) AS slept", "db": db}),
                    ("SQLQueryNode", "port", {"sql": PORT_SQL, "db": db}),
                )
            stopper.join(30)
            assert int(results["port"]["port"][0]) == primary.port
            assert results.retries == 1
            assert f"replica {standby.url} went away during run {run_id}" in caplog.text
            assert db.runs().filter(run_id=run_id).select("status", "served_by").row(0) == ("retried", "primary")
            # Skipped while it is down: the next read goes straight to the primary.
            assert port_of_read(db) == primary.port
            assert db.get_health_status()["replicas"][0]["status"] == "unhealthy"
        finally:
            stopper.join(30)
            if not standby.pids():
                standby.start()
