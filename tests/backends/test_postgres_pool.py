"""PostgreSQL only: the pool checks a connection's health before handing it out, and its size holds."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dataflow_nb import DatabaseError, DataFlow, LocalRuntime, WorkflowBuilder
from tests.conftest import _admin_connection


def backend_pid(db: Any) -> int:
    connection = db.backend.connect()
    try:
        return int(connection.execute_sql("SELECT pg_backend_pid()").column(0)[0].as_py())
    finally:
        connection.close()


def terminate(*pids: int) -> None:
    """End the sessions ``pids`` as an administrator would, waiting until they are gone."""
    admin = _admin_connection()
    try:
        with admin.cursor() as cursor:
            for pid in pids:
                cursor.execute(f"SELECT pg_terminate_backend({int(pid)}, 10000)")
    finally:
        admin.close()


def test_a_connection_killed_in_the_pool_is_replaced(postgres_url: str) -> None:
    with DataFlow(postgres_url, pool_size=1, pool_max_overflow=0) as db:

        @db.model
        class Note:
            text: str

        pid = backend_pid(db)
        terminate(pid)
        workflow = WorkflowBuilder()
        workflow.add_node("NoteCreateNode", "n", {"text": "after the kill"})
        results, _ = LocalRuntime().execute(workflow.build())
        assert results["n"]["text"].to_list() == ["after the kill"]
        assert backend_pid(db) != pid


def test_pool_size_and_overflow_bound_the_connections(postgres_url: str) -> None:
    with DataFlow(postgres_url, pool_size=1, pool_max_overflow=1, pool_timeout=0.5) as db:
        held = [db.backend.connect(), db.backend.connect()]
        try:
            with pytest.raises(DatabaseError, match="pooled connections are in use"):
                db.backend.connect()
        finally:
            for connection in held:
                connection.close()
        db.backend.connect().close()  # free again once one is returned


def test_runs_in_threads_share_the_pool(postgres_url: str) -> None:
    with DataFlow(postgres_url, pool_size=2, pool_max_overflow=0) as db:

        @db.model
        class Note:
            text: str

        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                for j in range(5):
                    workflow = WorkflowBuilder()
                    workflow.add_node(db.nodes["NoteCreateNode"], "n", {"text": f"{i}-{j}"})
                    LocalRuntime().execute(workflow.build())
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        workflow = WorkflowBuilder()
        workflow.add_node(db.nodes["NoteCountNode"], "c", {})
        assert LocalRuntime().execute(workflow.build())[0]["c"] == 20


def last_statement(pid: int) -> str:
    """What the session ``pid`` ran last, as the server shows it to an administrator."""
    admin = _admin_connection()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"SELECT query FROM pg_stat_activity WHERE pid = {int(pid)}")
            return str(cursor.fetchall()[0][0])
    finally:
        admin.close()


def one_node_run(db: Any, node: str, params: dict[str, Any]) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node(node, "n", {**params, **({"db": db} if node == "SQLQueryNode" else {})})
    results, _ = LocalRuntime(retries=0).execute(workflow.build())
    return results


def test_only_a_session_that_ran_sql_text_is_discarded_on_its_way_back(postgres_url: str) -> None:
    """DISCARD ALL costs a round trip per run: generated nodes change nothing that outlives the
    transaction, so their connection goes back as it is; SQL text may have (a setting, a temp table)."""
    with DataFlow(postgres_url, pool_size=1, pool_max_overflow=0, run_history=False) as db:

        @db.model
        class Note:
            text: str

        pid = backend_pid(db)
        one_node_run(db, "NoteCreateNode", {"text": "a"})
        assert "DISCARD" not in last_statement(pid)
        one_node_run(db, "SQLQueryNode", {"sql": "SELECT set_config('application_name', 'x', false) AS s"})
        assert last_statement(pid) == "DISCARD ALL"
        assert backend_pid(db) == pid  # the same session, cleaned


def test_a_connection_back_moments_ago_is_not_checked_one_idle_longer_is(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DataFlow(postgres_url, pool_size=1, pool_max_overflow=0, run_history=False) as db:
        pid = backend_pid(db)
        connection = db.backend.connect()
        try:
            assert last_statement(pid) == "ROLLBACK"  # the end of backend_pid(): no check was sent since
        finally:
            connection.close()
        monkeypatch.setattr("dataflow_nb.backends.postgres_pool.CHECK_AFTER_IDLE", 0.0)
        connection = db.backend.connect()
        try:
            assert "SELECT false" in last_statement(pid)  # ADBC sends a query as COPY (...) TO STDOUT
        finally:
            connection.close()


def test_connections_lost_in_the_pool_cost_no_run_when_the_check_is_skipped(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pooled connection lost at once (a restarted server): the first statement finds its
    connection gone, it is replaced and the statement sent again, and the other pooled one is
    checked at its checkout; the run is not retried."""
    monkeypatch.setattr("dataflow_nb.backends.postgres_pool.CHECK_AFTER_IDLE", 3600.0)
    with DataFlow(postgres_url, pool_size=2, pool_max_overflow=0, run_history=False) as db:

        @db.model
        class Note:
            text: str

        held = [db.backend.connect(), db.backend.connect()]
        pids = [int(c.execute_sql("SELECT pg_backend_pid()").column(0)[0].as_py()) for c in held]
        for connection in held:
            connection.close()
        terminate(*pids)
        for text in ("first", "second"):
            results = one_node_run(db, "NoteCreateNode", {"text": text})
            assert results["n"]["text"].to_list() == [text]
            assert results.retries == 0
        assert backend_pid(db) not in pids


def test_pool_connections_after_the_first_share_its_driver_database_until_all_are_closed(postgres_url: str) -> None:
    """The pool's connector clones a live connection (the driver's type catalog read once); with
    every connection of that database closed, it opens a new one, and each works on its own."""
    from dataflow_nb.backends.postgres_pool import Connector
    from dataflow_nb.backends.postgres_url import parse_postgres_url

    connect = Connector(parse_postgres_url(postgres_url).libpq(connect_timeout=10, statement_timeout=None))

    def pid(connection: Any) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return int(cursor.fetchall()[0][0])

    first, second = connect(), connect()
    assert pid(first) != pid(second)  # two sessions of one driver database
    second.close()  # the connector's last one is closed; the database lives on with the first
    third = connect()
    assert pid(third) not in (pid(first),)
    first.close()
    assert pid(third) > 0  # closing the first leaves the database to the third
    third.close()
    fourth = connect()  # every connection closed: a new driver database
    try:
        assert pid(fourth) > 0
    finally:
        fourth.close()


def test_an_ingest_first_on_a_connection_lost_in_the_pool_is_not_lost(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream of batches is read once, so it cannot be sent again on a replaced connection: a
    connection handed out unchecked is checked before the first ingest or stream instead."""
    import pyarrow as pa

    monkeypatch.setattr("dataflow_nb.backends.postgres_pool.CHECK_AFTER_IDLE", 3600.0)
    with DataFlow(postgres_url, pool_size=1, pool_max_overflow=0, run_history=False) as db:

        @db.model
        class Note:
            text: str

        pid = backend_pid(db)
        terminate(pid)
        rows = pa.table({"text": ["a", "b", "c"]})
        connection = db.backend.connect()
        try:
            assert connection.ingest("notes", pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches())) == 3
            connection.commit()
        finally:
            connection.close()
        assert backend_pid(db) != pid
        workflow = WorkflowBuilder()
        workflow.add_node("NoteCountNode", "n", {})
        results, _ = LocalRuntime(retries=0).execute(workflow.build())
        assert results["n"] == 3
