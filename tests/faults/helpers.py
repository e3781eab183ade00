"""Small workflows the fault tests share."""

from __future__ import annotations

import threading
import time
from typing import Any

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder, WorkflowError


def define_counter(db: DataFlow) -> Any:
    """A model with a unique key, so upserts have something to fight over."""

    @db.model
    class Counter:
        key: str
        n: int

        __dataflow__ = {"unique": [["key"]]}

    return Counter


def run_nodes(*nodes: tuple[Any, str, dict[str, Any]], runtime: LocalRuntime | None = None) -> Any:
    workflow = WorkflowBuilder()
    for node_type, node_id, params in nodes:
        workflow.add_node(node_type, node_id, params)
    results, _ = (runtime or LocalRuntime()).execute(workflow.build())
    return results


def create_counter(db: DataFlow, key: str = "hot") -> int:
    results = run_nodes((db.nodes["CounterCreateNode"], "create", {"key": key, "n": 0}))
    return int(results["create"]["id"][0])


def counter_value(db: DataFlow, counter_id: int) -> int:
    results = run_nodes((db.nodes["CounterReadNode"], "read", {"id": counter_id}))
    return int(results["read"]["n"][0])


def finishes_within(seconds: float, call: Any) -> float:
    """Run ``call`` in a thread; fail if it has not returned after ``seconds`` (the issue's limit),
    and do not hang the suite when it never does. Returns the seconds it took."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        started = time.perf_counter()
        try:
            call()
        except BaseException as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert "seconds" in outcome, f"still blocked after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return float(outcome["seconds"])


def failure_within(seconds: float, workflow: Any) -> WorkflowError:
    """The WorkflowError a run of ``workflow`` raises, bounded by ``finishes_within``."""
    errors: list[WorkflowError] = []

    def run() -> None:
        try:
            LocalRuntime().execute(workflow)
        except WorkflowError as exc:
            errors.append(exc)

    finishes_within(seconds, run)
    assert len(errors) == 1, "the run did not fail"
    return errors[0]


def idle_in_transaction(admin_url_query: Any, database: str) -> list[tuple[Any, ...]]:
    return list(
        admin_url_query(
            f"SELECT pid, state, query FROM pg_stat_activity WHERE datname = '{database}' "
            "AND state LIKE 'idle in transaction%'"
        )
    )
