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


def test_a_connection_killed_in_the_pool_is_replaced(postgres_url: str) -> None:
    with DataFlow(postgres_url, pool_size=1, pool_max_overflow=0) as db:

        @db.model
        class Note:
            text: str

        pid = backend_pid(db)
        admin = _admin_connection()
        with admin.cursor() as cursor:
            cursor.execute(f"SELECT pg_terminate_backend({pid})")
        admin.close()
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
