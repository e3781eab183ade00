"""Run history in the database itself: every run recorded, failed ones after their rollback,
kept across DataFlows (a kernel restart), bounded, and off when asked."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dataflow_nb import DataFlow, LocalRuntime, NotFoundError, WorkflowBuilder, WorkflowError
from dataflow_nb.model.readback import model_tables
from tests.helpers import assert_frame_rows


def define(db: DataFlow) -> None:
    db.model(type("Note", (), {"__annotations__": {"text": str}}))


@pytest.fixture
def notes(db: DataFlow) -> DataFlow:
    define(db)
    return db


def notes_workflow(*extra: Any) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node("NoteCreateNode", "add", {"text": "a"})
    workflow.add_node("NoteBulkCreateNode", "load", {"data": [{"text": "b"}, {"text": "c"}]})
    workflow.add_node("NoteListNode", "list", {})
    for node, node_id in extra:
        workflow.add_node(node, node_id)
    return workflow.build()


def count(db: DataFlow) -> int:
    workflow = WorkflowBuilder()
    workflow.add_node("NoteCountNode", "n", {})
    return int(LocalRuntime().execute(workflow.build())[0]["n"])


def boom() -> None:
    raise ValueError("the boom node broke")


def test_an_ok_run_is_recorded_with_its_nodes(notes: DataFlow) -> None:
    _, run_id = LocalRuntime().execute(notes_workflow(), tenant_id=None)
    runs = notes.runs()
    assert_frame_rows(runs, [{"run_id": run_id, "status": "ok", "nodes": 3, "error_node": None, "error": None}])
    row = runs.row(0, named=True)
    assert row["seconds"] > 0 and row["finished_at"] >= row["started_at"]
    assert row["database"] == notes.backend.safe_url
    assert_frame_rows(
        notes.run(run_id),
        [
            {"node_id": "add", "node_type": "NoteCreateNode", "status": "ok", "rows_written": 1, "error": None},
            {"node_id": "load", "node_type": "NoteBulkCreateNode", "status": "ok", "rows_written": 2, "error": None},
            {"node_id": "list", "node_type": "NoteListNode", "status": "ok", "rows_written": 0, "error": None},
        ],
    )
    assert notes.run(run_id).row(2, named=True)["rows_read"] == 3


def test_a_failed_run_is_recorded_after_its_rollback(notes: DataFlow) -> None:
    with pytest.raises(WorkflowError) as info:
        LocalRuntime().execute(notes_workflow((boom, "boom")), tenant_id=None)
    run_id = info.value.run_id
    assert count(notes) == 0  # the run's writes were rolled back; its record was not
    failed = notes.runs().filter(run_id=run_id)
    assert_frame_rows(failed, [{"status": "failed", "error_node": "boom", "error": "ValueError: the boom node broke"}])
    assert_frame_rows(
        notes.run(run_id).select("node_id", "status", "error"),
        [
            {"node_id": "add", "status": "ok", "error": None},
            {"node_id": "load", "status": "ok", "error": None},
            {"node_id": "list", "status": "ok", "error": None},
            {"node_id": "boom", "status": "failed", "error": "ValueError: the boom node broke"},
        ],
    )


def test_an_interrupted_run_is_recorded_and_the_interrupt_goes_on(notes: DataFlow) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalRuntime().execute(notes_workflow((interrupt, "stop")))
    assert count(notes) == 0
    last = notes.runs(last=2).row(1, named=True)  # the newest is count()'s
    assert (last["status"], last["error_node"]) == ("interrupted", "stop")
    assert notes.run(last["run_id"])["status"].to_list() == ["ok", "ok", "ok", "interrupted"]


def test_a_tenant_run_records_its_tenant(backend_url: str | None) -> None:
    with DataFlow(backend_url, multi_tenant=True) as tenants:
        define(tenants)
        for tenant in ("acme", "globex"):
            LocalRuntime().execute(notes_workflow(), tenant_id=tenant)
        assert tenants.runs()["tenant_id"].to_list() == ["globex", "acme"]


def test_the_run_is_listed_as_running_while_it_executes(notes: DataFlow) -> None:
    entered, release = threading.Event(), threading.Event()

    def wait() -> None:
        entered.set()
        assert release.wait(30)

    thread = threading.Thread(target=LocalRuntime().execute, args=(notes_workflow((wait, "wait")),))
    thread.start()
    try:
        assert entered.wait(30)
        running = notes.runs().row(0, named=True)
        assert running["status"] == "running" and running["finished_at"] is None
        assert notes.run(running["run_id"])["status"].to_list() == ["ok", "ok", "ok", "running"]
        # What another kernel sees (PostgreSQL): a run that lasts past the progress interval gets a
        # committed "running" row, with its nodes as they stand.
        other = DataFlow(notes.url, run_history=False) if notes.url else None
        if other is not None:
            with other:
                deadline = time.monotonic() + 10
                while other.runs().height == 0 and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert other.runs().row(0, named=True)["status"] == "running"
                assert other.run(running["run_id"])["status"].to_list() == ["ok", "ok", "ok", "running"]
    finally:
        release.set()
        thread.join(30)
    assert notes.runs().row(0, named=True)["status"] == "ok"


@pytest.fixture
def shared_url(backend_url: str | None, tmp_path: Path) -> str:
    """A database two DataFlows can open one after the other: a DuckDB file or the PostgreSQL schema."""
    return backend_url or f"duckdb:///{tmp_path / 'history.duckdb'}"


def test_history_survives_a_new_dataflow(shared_url: str) -> None:
    with DataFlow(shared_url) as first:
        define(first)
        _, run_id = LocalRuntime().execute(notes_workflow())
    with DataFlow(shared_url) as second:  # as after a kernel restart
        assert second.runs()["run_id"].to_list() == [run_id]
        assert second.run(run_id)["node_id"].to_list() == ["add", "load", "list"]
        with second.migrations.connection() as connection:
            assert list(model_tables(connection, second.backend)) == ["Note"]  # history is no model


def test_pruning_keeps_the_newest_runs(backend_url: str | None) -> None:
    with DataFlow(backend_url, keep_runs=3) as db:
        define(db)
        ids = [LocalRuntime().execute(notes_workflow())[1] for _ in range(6)]
        assert db.runs(last=10)["run_id"].to_list() == ids[::-1][:3]
        with pytest.raises(NotFoundError, match="no run"):
            db.run(ids[0])
        with db.history.backend_connection() as connection:
            kept = connection.execute_sql("SELECT run_id FROM dataflow_nb_runs")
        assert kept is not None and sorted(kept.column(0).to_pylist()) == sorted(ids[3:])


def test_history_can_be_turned_off(backend_url: str | None) -> None:
    with DataFlow(backend_url, run_history=False) as db:
        define(db)
        LocalRuntime().execute(notes_workflow())
        assert db.runs().height == 0


def test_bad_options_say_what_to_give(backend_url: str | None) -> None:
    with pytest.raises(Exception, match="keep_runs=0"):
        DataFlow(backend_url, keep_runs=0)
    with DataFlow(backend_url) as db, pytest.raises(Exception, match="last=0"):
        db.runs(last=0)


def test_a_run_that_needed_a_retry_is_recorded_once_as_retried(notes: DataFlow) -> None:
    from dataflow_nb import DatabaseError

    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            error = DatabaseError("serialization failure (a stand-in for 40001)")
            error.retryable = True
            raise error

    _, run_id = LocalRuntime(retries=1, retry_backoff=0, retry_callables=True).execute(notes_workflow((flaky, "flaky")))
    assert len(attempts) == 2 and count(notes) == 3  # the first attempt's writes were rolled back
    assert_frame_rows(notes.runs().filter(run_id=run_id), [{"status": "retried", "error": None}])
    assert notes.run(run_id)["node_id"].to_list() == ["add", "load", "list", "flaky"]  # the last attempt's


def test_short_runs_leave_no_progress_timer_behind(notes: DataFlow) -> None:
    """A run that ends within the progress interval never shows to other kernels early, and its
    timer (PostgreSQL) stops with it: many short runs leave no thread behind."""
    before = threading.active_count()
    ids = [LocalRuntime().execute(notes_workflow())[1] for _ in range(20)]
    stopped = time.monotonic() + 0.5  # a cancelled timer ends at once; a forgotten one sleeps a second
    while threading.active_count() > before and time.monotonic() < stopped:
        time.sleep(0.01)
    assert threading.active_count() <= before
    assert notes.runs(last=20)["run_id"].to_list() == ids[::-1]
    assert set(notes.runs(last=20)["status"].to_list()) == {"ok"}
