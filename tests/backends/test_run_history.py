"""Run history in the database itself: every run recorded, failed ones after their rollback,
kept across DataFlows (a kernel restart), bounded, and off when asked."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import polars as pl
import pytest
import sqlalchemy as sa

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


def test_runs_start_no_thread(notes: DataFlow, monkeypatch: pytest.MonkeyPatch) -> None:
    """The history's writer is one thread per DataFlow, started with its first run: the runs after
    it start none (no timer per run for the running row, no thread per write)."""
    workflow = WorkflowBuilder()  # no bulk node: a bulk load reads ahead on a thread of its own
    workflow.add_node("NoteCreateNode", "add", {"text": "a"})
    workflow.add_node("NoteListNode", "list", {})
    built = workflow.build()
    LocalRuntime().execute(built)  # the writer starts here
    started: list[str] = []
    start = threading.Thread.start

    def counted(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counted)
    ids = [LocalRuntime().execute(built)[1] for _ in range(50)]
    monkeypatch.undo()
    assert started == []
    assert notes.runs(last=50)["run_id"].to_list() == ids[::-1]
    assert set(notes.runs(last=50)["status"].to_list()) == {"ok"}


def test_close_stops_the_writer(backend_url: str | None) -> None:
    """No thread is left behind by a closed DataFlow (the writer writes what is queued, then stops)."""
    db = DataFlow(backend_url)
    define(db)
    before = {t.name for t in threading.enumerate()}
    LocalRuntime().execute(notes_workflow())
    writers = [t for t in threading.enumerate() if t.name.startswith("dataflow_nb history") and t.name not in before]
    assert len(writers) == 1
    db.close()
    assert not writers[0].is_alive()


def raw_runs(url: str | None, db: DataFlow) -> list[tuple[str, str]]:
    """(run_id, status) of every row in the table, read without dataflow_nb's own reading (no waiting
    for this process's writer, no runs from memory)."""
    with db.history.backend_connection() as connection:
        rows = connection.execute_sql("SELECT run_id, status FROM dataflow_nb_runs")
    assert rows is not None
    return list(zip(rows.column(0).to_pylist(), rows.column(1).to_pylist(), strict=True))


def test_a_runs_row_is_in_the_table_when_the_history_is_read(notes: DataFlow) -> None:
    """``execute`` returns before the row is written; reading the history (``db.runs()``, ``db.run``)
    waits for it, and until then the run is shown from memory."""
    _, run_id = LocalRuntime().execute(notes_workflow())
    assert notes.run(run_id)["node_id"].to_list() == ["add", "load", "list"]  # from memory or the table
    assert notes.runs(last=1)["run_id"].to_list() == [run_id]
    assert (run_id, "ok") in raw_runs(notes.url, notes)  # runs() waited for it to be written


def test_a_run_stays_live_until_its_row_is_written(notes: DataFlow, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataflow_nb.monitor import run_writer
    from dataflow_nb.monitor.runs import live_run

    for delay in ("BATCH_DELAY", "ALONE_BATCH_DELAY"):  # nothing is written unless someone waits
        monkeypatch.setattr(run_writer, delay, 30.0)
    _, run_id = LocalRuntime().execute(notes_workflow())
    live = live_run(notes.history.identity, run_id)
    assert live is not None and live.status == "ok"
    assert run_id not in [r for r, _ in raw_runs(notes.url, notes)]
    assert notes.history.flush(10)
    assert live_run(notes.history.identity, run_id) is None
    assert (run_id, "ok") in raw_runs(notes.url, notes)


def test_raw_sql_in_a_later_run_sees_the_earlier_runs(notes: DataFlow) -> None:
    """A SQLQueryNode reading the history's table sees the runs this process ended before it."""
    ids = [LocalRuntime().execute(notes_workflow())[1] for _ in range(3)]
    workflow = WorkflowBuilder()
    workflow.add_node("SQLQueryNode", "history", {"sql": "SELECT run_id, status FROM dataflow_nb_runs", "db": notes})
    seen = LocalRuntime().execute(workflow.build())[0]["history"]
    assert set(ids) <= set(seen["run_id"].to_list())
    assert set(seen.filter(pl.col("run_id").is_in(ids))["status"].to_list()) == {"ok"}


def test_concurrent_runs_are_each_recorded_once_with_their_status(backend_url: str | None) -> None:
    """200 runs from 8 threads, one in five failing: every run is in the table once, with its status
    (DuckDB: the writer's inserts never conflict with the runs, which no longer touch the table)."""
    with DataFlow(backend_url, pool_size=2, pool_max_overflow=2) as db:
        define(db)
        expected: dict[str, str] = {}
        errors: list[BaseException] = []
        lock = threading.Lock()

        def work(thread: int) -> None:
            for i in range(25):
                workflow = WorkflowBuilder()
                workflow.add_node("NoteCountNode", "n", {})
                if i % 5 == 0:
                    workflow.add_node(boom, "boom")
                try:
                    _, run_id = LocalRuntime(retries=0).execute(workflow.build())
                    status = "ok"
                except WorkflowError as exc:
                    run_id, status = exc.run_id, "failed"
                except BaseException as exc:
                    errors.append(exc)
                    continue
                with lock:
                    expected[run_id] = status

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors
        assert len(expected) == 200
        assert db.history.flush(30)
        rows = raw_runs(db.url, db)
        assert len(rows) == len({r for r, _ in rows}) == 200  # each run once
        assert dict(rows) == expected
        assert sorted(db.runs(last=300)["run_id"].to_list()) == sorted(expected)


def test_a_runs_row_survives_close_right_after_it(shared_url: str) -> None:
    with DataFlow(shared_url) as first:
        define(first)
        ids = [LocalRuntime().execute(notes_workflow())[1] for _ in range(3)]
    with DataFlow(shared_url, run_history=False) as second:
        assert second.runs()["run_id"].to_list() == ids[::-1]


SCRIPT_WITHOUT_CLOSE = """
import sys
from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder

db = DataFlow(sys.argv[1])
db.model(type("Note", (), {"__annotations__": {"text": str}}))
workflow = WorkflowBuilder()
workflow.add_node("NoteCreateNode", "add", {"text": "a"})
print(LocalRuntime().execute(workflow.build())[1], flush=True)
"""  # no close(): the interpreter's exit writes the history still queued


def test_a_script_that_ends_without_close_keeps_its_history(shared_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT_WITHOUT_CLOSE, shared_url], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    with DataFlow(shared_url, run_history=False) as reader:
        assert_frame_rows(reader.runs(), [{"run_id": run_id, "status": "ok"}])


def refusing_table() -> sa.Table:
    """The history's table with a check no row passes: every write of the writer fails."""
    from dataflow_nb.monitor.runs import RUNS_TABLE, runs_table

    columns = [c._copy() for c in runs_table.columns]
    return sa.Table(RUNS_TABLE, sa.MetaData(), *columns, sa.CheckConstraint("run_id = 'never'"))


def test_a_history_that_cannot_be_written_leaves_runs_ok_and_says_so(
    notes: DataFlow, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from dataflow_nb.monitor import run_writer

    monkeypatch.setattr(run_writer, "RETRY_DELAY", 0.05)
    with notes.migrations.connection() as connection:
        connection.execute_sql("DROP TABLE IF EXISTS dataflow_nb_runs")
        connection.ensure_tables([refusing_table()])
        connection.commit()
    with caplog.at_level(logging.DEBUG, logger="dataflow_nb"):
        ids = [LocalRuntime().execute(notes_workflow())[1] for _ in range(3)]
        assert count(notes) == 9  # the runs committed
        started = time.monotonic()
        notes.runs()  # a reader does not wait for a database that refuses the rows
        assert time.monotonic() - started < 3
        deadline = time.monotonic() + 20
        while "dropped" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("could not write" in w and "runs go on" in w for w in warnings), warnings
    assert any("dropped" in w and ids[0] in w for w in warnings), warnings
    assert len([w for w in warnings if "could not write" in w]) == 1  # said once, not per run
    assert raw_runs(notes.url, notes) == []


@pytest.mark.only(["postgres"])  # DuckDB: one process at a time, so nobody else could look
def test_another_process_sees_a_long_run_within_a_second_and_a_half(notes: DataFlow, admin_connection: Any) -> None:
    """A run that sleeps 2 s: a connection of another process (a raw driver connection, not this
    process's memory) finds its ``running`` row within 1.5 s of its start, then its end."""
    schema = unquote(notes.url or "").split("search_path=")[1]
    started = threading.Event()

    def slow() -> None:
        started.set()
        time.sleep(2)

    thread = threading.Thread(target=LocalRuntime().execute, args=(notes_workflow((slow, "slow")),))
    began = time.monotonic()
    thread.start()
    seen_after = None
    try:
        assert started.wait(30)
        while time.monotonic() - began < 3:
            with admin_connection.cursor() as cursor:
                cursor.execute(f"SELECT status FROM {schema}.dataflow_nb_runs")
                statuses = [row[0] for row in cursor.fetchall()]
            if "running" in statuses:
                seen_after = time.monotonic() - began
                break
            time.sleep(0.05)
    finally:
        thread.join(30)
    assert seen_after is not None and seen_after <= 1.5, seen_after
    assert notes.runs(last=1)["status"].to_list() == ["ok"]
    with admin_connection.cursor() as cursor:
        cursor.execute(f"SELECT status, node_log FROM {schema}.dataflow_nb_runs")
        rows = cursor.fetchall()
    assert [r[0] for r in rows] == ["ok"]  # the running row was updated, not a second one added
