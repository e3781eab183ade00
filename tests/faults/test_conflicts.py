"""Conflicts, at a statement or at the commit, reach the user as ConflictError inside WorkflowError."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from dataflow_nb import ConflictError, DataFlow, LocalRuntime, WorkflowBuilder, WorkflowError
from tests.faults.helpers import counter_value, define_counter, run_nodes

pytestmark = pytest.mark.slow  # a private PostgreSQL server


def test_upserts_on_one_hot_key_raise_only_conflict_errors(fault_url: str) -> None:
    with DataFlow(fault_url, pool_size=8, pool_max_overflow=0) as db:
        define_counter(db)
        outcomes: Counter[str] = Counter()
        raw: list[BaseException] = []
        lock = threading.Lock()

        def work(thread: int) -> None:
            runtime = LocalRuntime(retries=0)  # every conflict shows; retries are tested elsewhere
            for i in range(50):
                workflow = WorkflowBuilder()
                workflow.add_node(
                    "CounterUpsertNode", "u", {"key": "hot", "n": thread * 100 + i, "conflict_on": ["key"]}
                )
                try:
                    runtime.execute(workflow.build())
                    outcome = "ok"
                except WorkflowError as exc:
                    outcome = type(exc.__cause__).__name__
                    if not isinstance(exc.__cause__, ConflictError):
                        raw.append(exc)
                except BaseException as exc:
                    outcome = type(exc).__name__
                    raw.append(exc)
                with lock:
                    outcomes[outcome] += 1

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert raw == [], outcomes
        assert sum(outcomes.values()) == 400
        assert outcomes["ok"] > 0
        rows = run_nodes((db.nodes["CounterListNode"], "all", {}))["all"]
        assert rows["key"].to_list() == ["hot"]


def test_a_failed_commit_of_the_second_database_names_what_committed(private_url: str, tmp_path: Path) -> None:
    """DuckDB commits first (the run used it first); PostgreSQL's commit then fails on a deferred key."""
    with (
        DataFlow(f"duckdb:///{tmp_path / 'first.duckdb'}", name="local") as local,
        DataFlow(private_url, name="warehouse") as warehouse,
    ):
        define_counter(local)
        define_counter(warehouse)
        table = warehouse.models["Counter"].table_name
        run_nodes(
            (
                "SQLQueryNode",
                "deferred",
                {
                    "db": warehouse,
                    "sql": f"ALTER TABLE {table} ADD CONSTRAINT one_n UNIQUE (n) DEFERRABLE INITIALLY DEFERRED",
                },
            )
        )
        run_nodes((warehouse.nodes["CounterCreateNode"], "seed", {"key": "a", "n": 1}))
        workflow = WorkflowBuilder()
        workflow.add_node(local.nodes["CounterCreateNode"], "local", {"key": "x", "n": 1})
        workflow.add_node(warehouse.nodes["CounterCreateNode"], "remote", {"key": "b", "n": 1})  # n=1 again
        with pytest.raises(WorkflowError) as info:
            LocalRuntime().execute(workflow.build())
        error = info.value
        assert error.node_id is None  # the nodes ran; the commit failed
        assert isinstance(error.__cause__, ConflictError)
        assert (error.committed, error.rolled_back) == (("local",), ("warehouse",))
        assert "'local'] committed" in str(error) and "'warehouse'] rolled back" in str(error)
        assert run_nodes((local.nodes["CounterListNode"], "l", {}))["l"]["key"].to_list() == ["x"]
        assert run_nodes((warehouse.nodes["CounterListNode"], "w", {}))["w"]["key"].to_list() == ["a"]


def test_a_commit_conflict_on_duckdb_is_a_conflict_error(tmp_path: Path) -> None:
    """Two runs insert the same key; DuckDB finds the duplicate only when the second commits."""
    with DataFlow(f"duckdb:///{tmp_path / 'c.duckdb'}") as db:
        define_counter(db)
        first_inserted = threading.Event()
        release_first = threading.Event()

        def hold(**_: object) -> None:
            first_inserted.set()
            release_first.wait(30)

        errors: list[BaseException] = []

        def first() -> None:
            try:
                workflow = WorkflowBuilder()
                workflow.add_node("CounterCreateNode", "c", {"key": "k", "n": 1})
                workflow.add_node(hold, "hold", {})
                LocalRuntime().execute(workflow.build())
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=first)
        thread.start()
        first_inserted.wait(30)
        workflow = WorkflowBuilder()
        workflow.add_node("CounterCreateNode", "c", {"key": "k", "n": 2})
        second_failed = None
        try:
            LocalRuntime().execute(workflow.build())
        except WorkflowError as exc:
            second_failed = exc
        release_first.set()
        thread.join()
        failures = [e for e in [*errors, second_failed] if e is not None]
        assert len(failures) == 1
        assert isinstance(failures[0], WorkflowError)
        assert isinstance(failures[0].__cause__, ConflictError)
        rows = run_nodes((db.nodes["CounterListNode"], "all", {}))["all"]
        assert rows["key"].to_list() == ["k"]
        assert counter_value(db, int(rows["id"][0])) in (1, 2)
