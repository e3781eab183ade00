"""Sensitive fields are stored and returned as they are, and masked everywhere they are shown."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Annotated, Any

import polars as pl
import pytest

from dataflow_nb import DataFlow, DataflowError, LocalRuntime, WorkflowBuilder
from dataflow_nb.security import Sensitive

SSN = "SSN-778-12-4455"
CARD = "4111-2222-3333-4444"


@pytest.fixture
def people(backend_url: str | None) -> Iterator[DataFlow]:
    with DataFlow(backend_url, monitoring=True, slow_query_threshold=0.0, security_enabled=True) as db:

        @db.model
        class Person:
            name: str
            ssn: Annotated[str, Sensitive]
            card: str
            age: int = 0

            __dataflow__ = {"sensitive": ["card"], "unique": [["ssn"], ["card"]]}

        yield db


def run(node: str, params: dict[str, Any]) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node(node, "n", params)
    results, _ = LocalRuntime().execute(workflow.build())
    return results


def shown_by_error(call: Any) -> str:
    with pytest.raises(DataflowError) as info:
        call()
    return "".join(traceback.format_exception(info.value))


def widget_state(db: DataFlow) -> list[str]:
    """Every trait and every piece of HTML the three views hold, each run selected in turn."""
    from dataflow_nb.widgets import RunsView, SlowQueriesView, TenantMetricsView

    state: list[str] = []
    views = [RunsView(db, interval=0), SlowQueriesView(db, interval=0), TenantMetricsView(db, interval=0)]
    try:
        runs, slow, _ = views
        for run_id in [r["run_id"] for r in runs.runs]:
            runs.select(run_id)
            state += [str(runs.nodes), runs.error, runs._timeline.value]
        for index in range(min(len(slow.rows), 5)):
            state.append(slow.explain(index))
        for view in views:
            state.append(str(view.trait_values()))
            state += [
                child.value for child in view.children if hasattr(child, "value") and isinstance(child.value, str)
            ]
    finally:
        for view in views:
            view.close()
    return state


def test_a_sensitive_value_is_never_shown(people: DataFlow, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert people.models["Person"].fields["ssn"].sensitive and people.models["Person"].fields["card"].sensitive
    created = run("PersonCreateNode", {"name": "ann", "ssn": SSN, "card": CARD})
    record = created["n"]
    assert record["ssn"].to_list() == [SSN] and record["card"].to_list() == [CARD]  # returned as is
    person = int(record["id"][0])

    shown = [repr(created), created._repr_html_(), repr(people), people._repr_html_()]
    shown.append(shown_by_error(lambda: run("PersonCreateNode", {"name": "dup", "ssn": SSN, "card": "other"})))
    shown.append(shown_by_error(lambda: run("PersonCreateNode", {"name": "dup", "ssn": "other", "card": CARD})))
    shown.append(shown_by_error(lambda: run("PersonUpdateNode", {"id": person, "card": 5, "name": "x"})))
    shown.append(shown_by_error(lambda: run("PersonListNode", {"filter": {"ssn": SSN, "nope": 1}})))
    rows = [{"name": "b", "ssn": SSN, "card": "c-1"}]
    shown.append(shown_by_error(lambda: run("PersonBulkCreateNode", {"data": rows})))
    shown.append(shown_by_error(lambda: run("PersonBulkCreateNode", {"data": pl.DataFrame(rows)})))
    upsert = {"data": [{"name": "b", "ssn": "n-1", "card": CARD}], "conflict_on": ["ssn"]}
    shown.append(shown_by_error(lambda: run("PersonBulkUpsertNode", upsert)))
    bad = pl.DataFrame({"name": ["c"], "ssn": ["n-2"], "card": [CARD], "age": ["not a number"]})
    shown.append(shown_by_error(lambda: run("PersonBulkCreateNode", {"data": bad})))
    quarantined = run("PersonBulkCreateNode", {"data": bad.with_columns(card=pl.lit(CARD)), "on_error": "quarantine"})
    report = quarantined["n"]
    shown += [repr(report), report._repr_html_(), str(report.rejected.rows()), repr(quarantined)]
    sql = "SELECT ssn FROM persons WHERE card = :card"
    found = run("SQLQueryNode", {"sql": sql, "params": {"card": CARD}, "db": people})["n"]
    assert found["ssn"].to_list() == [SSN]

    monitor = people.get_monitor()
    shown += [str(monitor.slow_queries().rows()), repr(monitor.get_metrics()), monitor._repr_html_()]
    shown += [str(people.audit_log().rows()), caplog.text]
    history = people.runs(last=100)
    assert history.height >= 5 and "failed" in history["status"].to_list()
    shown += [str(history.rows()), *(str(people.run(r).rows()) for r in history["run_id"])]
    shown += widget_state(people)
    assert any("***" in text for text in shown)  # the masking did happen, somewhere it matters
    for text in shown:
        for value in (SSN, CARD):
            assert value not in text, text


def test_explain_shows_a_sensitive_value_as_masked(people: DataFlow) -> None:
    from dataflow_nb import explain

    params = {"filter": {"$or": [{"ssn": SSN}, {"card": CARD}], "age": {"$gt": 41}}}
    shown = explain("PersonListNode", params, plan=True)
    for text in (str(shown), repr(shown), shown._repr_html_(), str(shown.plan)):
        assert SSN not in text and CARD not in text, text
    assert shown.params.count("***") == 2 and 41 in shown.params  # other values stay


def test_a_sensitive_value_the_run_read_is_masked_in_a_user_functions_error(people: DataFlow) -> None:
    from dataflow_nb import WorkflowError

    run("PersonCreateNode", {"name": "ann", "ssn": SSN, "card": CARD})

    def check(rows: Any) -> Any:
        raise ValueError(f"row {rows.row(0)} fails the check")  # the row holds the ssn and card

    workflow = WorkflowBuilder()
    workflow.add_node("PersonListNode", "people", {})
    workflow.add_node(check, "check")
    workflow.add_connection("people", "data", "check", "rows")
    with pytest.raises(WorkflowError) as info:
        LocalRuntime().execute(workflow.build())
    shown = ["".join(traceback.format_exception(info.value))]
    failed = people.runs(last=1)
    shown += [str(failed.rows()), str(people.run(failed["run_id"][0]).rows())]
    for text in shown:
        assert SSN not in text and CARD not in text, text
        assert "ann" in text and "***" in text  # what is not sensitive is still there
