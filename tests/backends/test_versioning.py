"""Versioned models: Update bumps version; a stale version is a ConflictError that changes nothing."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dataflow_nb import ConflictError, DataFlow, LocalRuntime, ValidationError, WorkflowBuilder, WorkflowError
from tests.helpers import rows_of


def define_account(db: Any) -> None:
    @db.model
    class Account:
        owner: str
        balance: int = 0
        __dataflow__ = {"versioned": True}


def test_create_starts_at_one_and_every_update_increments(db: Any, run: Any) -> None:
    define_account(db)
    created = run("AccountCreateNode", {"owner": "ada"})
    assert created["version"][0] == 1
    record = created["id"][0]
    assert run("AccountUpdateNode", {"id": record, "balance": 5})["version"][0] == 2
    assert run("AccountUpdateNode", {"id": record, "balance": 6, "version": 2})["version"][0] == 3


def test_a_stale_version_is_a_conflict_and_changes_nothing(db: Any, run: Any) -> None:
    define_account(db)
    record = run("AccountCreateNode", {"owner": "ada", "balance": 1})["id"][0]
    run("AccountUpdateNode", {"id": record, "balance": 2})
    with pytest.raises(WorkflowError) as info:
        run("AccountUpdateNode", {"id": record, "balance": 99, "version": 1})
    assert isinstance(info.value.__cause__, ConflictError)
    assert "Account 1 is at version 2, not 1" in str(info.value)
    assert rows_of(run("AccountReadNode", {"id": record}), ["balance", "version"]) == [{"balance": 2, "version": 2}]


def test_version_is_checked(db: Any, run: Any) -> None:
    define_account(db)

    @db.model
    class Plain:
        name: str

    with pytest.raises(ValidationError, match="Plain is not versioned"):
        run("PlainUpdateNode", {"id": 1, "name": "x", "version": 1})
    with pytest.raises(ValidationError, match="'version' must be the int you read"):
        run("AccountUpdateNode", {"id": 1, "owner": "x", "version": "1"})
    with pytest.raises(ValidationError, match="unknown field 'version'"):
        run("AccountCreateNode", {"owner": "x", "version": 7})


def test_upsert_increments_the_version(db: Any, run: Any) -> None:
    @db.model
    class Counter:
        key: str
        hits: int = 0
        __dataflow__ = {"versioned": True, "unique": [["key"]]}

    assert run("CounterUpsertNode", {"key": "a", "hits": 1})["version"][0] == 1
    assert run("CounterUpsertNode", {"key": "a", "hits": 2})["version"][0] == 2


def test_two_concurrent_runs_one_wins_one_conflicts(backend_url: str | None, tmp_path: Any) -> None:
    """Two threads, each its own run and connection, read version 1 and then both update with it."""
    url = backend_url or f"duckdb:///{tmp_path / 'race.duckdb'}"
    with DataFlow(url) as db:
        define_account(db)
        setup = WorkflowBuilder()
        setup.add_node("AccountCreateNode", "create", {"owner": "ada", "balance": 0})
        record = LocalRuntime().execute(setup.build())[0]["create"]["id"][0]
        both_read = threading.Barrier(2, timeout=30)
        outcomes: dict[int, Any] = {}

        def writer(balance: int) -> None:
            workflow = WorkflowBuilder()
            workflow.add_node("AccountReadNode", "read", {"id": record})
            workflow.add_node(lambda version: both_read.wait() * 0 + version, "wait", {})
            workflow.add_node("AccountUpdateNode", "update", {"id": record, "balance": balance})
            workflow.add_connection("read", "version", "wait", "version")
            workflow.add_connection("wait", "data", "update", "version")
            try:
                results, _ = LocalRuntime().execute(workflow.build())
                outcomes[balance] = results["update"]["version"][0]
            except WorkflowError as exc:
                outcomes[balance] = exc.__cause__

        threads = [threading.Thread(target=writer, args=(b,)) for b in (10, 20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        winners = [b for b, o in outcomes.items() if o == 2]
        losers = [b for b, o in outcomes.items() if isinstance(o, ConflictError)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        check = WorkflowBuilder()
        check.add_node("AccountReadNode", "read", {"id": record})
        final = LocalRuntime().execute(check.build())[0]["read"]
        assert rows_of(final, ["balance", "version"]) == [{"balance": winners[0], "version": 2}]
