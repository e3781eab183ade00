"""The three views, headless: their traits are what a person would see, on both backends."""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from typing import Any

import ipywidgets as widgets
import pytest

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder, WorkflowError
from dataflow_nb.widgets import RunsView, SlowQueriesView, TenantMetricsView
from dataflow_nb.widgets import base as widgets_base
from dataflow_nb.widgets.slow import masked_plan


@pytest.fixture
def tdb(backend_url: str | None) -> Iterator[DataFlow]:
    with DataFlow(backend_url, monitoring=True, slow_query_threshold=0.0, multi_tenant=True) as db:
        db.model(type("Note", (), {"__annotations__": {"text": str}}))
        yield db


def notes(*extra: Any) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node("NoteCreateNode", "add", {"text": "secret-ish text"})
    workflow.add_node("NoteListNode", "list", {})
    for node, node_id in extra:
        workflow.add_node(node, node_id)
    return workflow.build()


def fail() -> None:
    raise ValueError("the check node failed")


def interrupt() -> None:
    raise KeyboardInterrupt


@pytest.fixture
def views() -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for view in opened:
        view.close()


def test_runs_view_after_ok_failed_interrupted_and_two_tenant_runs(tdb: DataFlow, views: list[Any]) -> None:
    _, ok = LocalRuntime().execute(notes(), tenant_id="acme")
    with pytest.raises(WorkflowError) as failed:
        LocalRuntime().execute(notes((fail, "check")), tenant_id="globex")
    with pytest.raises(KeyboardInterrupt):
        LocalRuntime().execute(notes((interrupt, "stop")), tenant_id="acme")
    view = RunsView(tdb, interval=0)
    views.append(view)
    assert [(r["status"], r["tenant_id"]) for r in view.runs] == [
        ("interrupted", "acme"),
        ("failed", "globex"),
        ("ok", "acme"),
    ]
    assert view.runs[1]["run_id"] == failed.value.run_id and view.runs[2]["run_id"] == ok
    assert view.selected == view.runs[0]["run_id"]  # the newest
    assert [(n["node_id"], n["status"]) for n in view.nodes] == [("add", "ok"), ("list", "ok"), ("stop", "interrupted")]

    view.select(failed.value.run_id)
    assert [(n["node_id"], n["status"]) for n in view.nodes] == [("add", "ok"), ("list", "ok"), ("check", "failed")]
    assert view.error == "check: ValueError: the check node failed"
    assert view.nodes[0]["rows_written"] == 1 and view.nodes[1]["rows_read"] == 1
    assert "the check node failed" in view._timeline.value and "check" in view._timeline.value
    assert failed.value.run_id in view._table.value
    shown_html = "".join(c.value for c in view.children if isinstance(c, widgets.HTML))
    assert all(shown_html.count(f">{r['run_id']}<") == 1 for r in view.runs if r["run_id"] != view.selected)
    assert not any(isinstance(c, widgets.Select) for c in view.children)  # no second list of every run
    assert view._picker.value == failed.value.run_id  # the one-line picker says whose timeline shows

    view.select(ok)
    assert view.error == "" and [n["status"] for n in view.nodes] == ["ok", "ok"]


def test_runs_view_is_live_while_a_run_executes_in_a_thread(
    tdb: DataFlow, views: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each refresh below would first wait out the once-a-second limit (2 s a test); the limit
    # has its own test (test_a_view_queries_at_most_once_a_second_and_stops_when_closed).
    monkeypatch.setattr(widgets_base, "MIN_INTERVAL", 0.0)
    view = RunsView(tdb, interval=0)
    views.append(view)
    assert view.runs == []
    entered, release = threading.Event(), threading.Event()

    def wait() -> None:
        entered.set()
        assert release.wait(30)

    thread = threading.Thread(target=LocalRuntime().execute, args=(notes((wait, "wait")),), kwargs={"tenant_id": "a"})
    thread.start()
    try:
        assert entered.wait(30)
        assert view.refresh(wait=True)
        assert [r["status"] for r in view.runs] == ["running"]
        assert [(n["node_id"], n["status"]) for n in view.nodes] == [("add", "ok"), ("list", "ok"), ("wait", "running")]
    finally:
        release.set()
        thread.join(30)
    assert view.refresh(wait=True)
    assert [r["status"] for r in view.runs] == ["ok"]
    assert [n["status"] for n in view.nodes] == ["ok", "ok", "ok"]


def test_a_view_queries_at_most_once_a_second_and_stops_when_closed(tdb: DataFlow) -> None:
    view = RunsView(tdb, interval=1)
    assert view.refreshes == 1
    assert view.refresh(wait=False) is False  # within the second: skipped
    assert view.refreshes == 1
    assert view.interval == 1.0
    view.interval = 0.1
    assert view.interval == 1.0  # never faster than once a second
    thread = view._thread
    assert thread is not None and thread.is_alive()
    view.close()
    assert view.closed and not thread.is_alive()
    assert view.refresh() is False


def test_slow_queries_view_sorts_filters_and_explains(tdb: DataFlow, views: list[Any]) -> None:
    LocalRuntime().execute(notes(), tenant_id="acme")
    view = SlowQueriesView(tdb, interval=0)
    views.append(view)
    seconds = [r["seconds"] for r in view.rows]
    assert len(seconds) >= 2 and seconds == sorted(seconds, reverse=True)
    assert all("secret-ish text" not in str(r) for r in view.rows)  # placeholders, never values
    assert any(r["node_id"] == "list" and "SELECT" in r["sql"] for r in view.rows)
    view.sort_by, view.descending = "seconds", False
    assert [r["seconds"] for r in view.rows] == sorted(seconds)

    select = next(i for i, r in enumerate(view.rows) if r["sql"].startswith("SELECT"))
    plan = view.explain(select)
    assert plan and "no plan" not in plan and html.escape(plan) in view._plan.value
    assert view.entry == select and view._pick.value == select  # the picker names the entry explained
    assert f"<b>Plan of entry {select}: " in view._plan.value

    view.threshold = 3600.0
    assert view.rows == [] and tdb.get_monitor().slow_query_threshold == 3600.0


def test_slow_queries_view_plans_with_the_values_it_never_shows(tdb: DataFlow, views: list[Any]) -> None:
    """The plan is the one the statement ran with: with every value NULL, DuckDB planned an empty
    result and PostgreSQL a "One-Time Filter: false"; the values stay in memory, masked in the plan."""
    tdb.model(type("Card", (), {"__annotations__": {"owner": str, "pin": str}, "__dataflow__": {"sensitive": ["pin"]}}))
    workflow = WorkflowBuilder()
    workflow.add_node("CardCreateNode", "add", {"owner": "zelda-owner", "pin": "pin-4711"})
    workflow.add_node("CardCreateNode", "other", {"owner": "link-owner", "pin": "pin-0000"})  # keeps the filter
    workflow.add_node("CardListNode", "find", {"filter": {"owner": "zelda-owner", "pin": "pin-4711"}})
    LocalRuntime().execute(workflow.build(), tenant_id="acme")
    view = SlowQueriesView(tdb, interval=0)
    views.append(view)
    found = next(i for i, r in enumerate(view.rows) if r["node_id"] == "find" and r["sql"].startswith("SELECT"))
    plan = view.explain(found)
    assert "cards" in plan.lower() and "Empty Result" not in plan and "EMPTY_RESULT" not in plan
    assert "One-Time Filter: false" not in plan
    assert "'***'" in plan  # where the database printed a value
    shown = [view._plan.value, view._table.value, str(view.rows), str(view._pick.options), repr(view.plan)]
    shown += [repr(e) for e in tdb.get_monitor().slow_query_entries()]
    shown += [str(tdb.get_monitor().slow_queries().to_dicts()), str(tdb.runs().to_dicts())]
    assert not [text for text in shown if "zelda-owner" in text or "pin-4711" in text]


def test_masked_plan_hides_quoted_and_bare_values() -> None:
    plan = "Filters: name = 'o''brien' AND n > 4242 AND id > 14242.5\n│ Top: 5  │"
    expected = "Filters: name = '***'      AND n > ***  AND id > 14242.5\n│ Top: ***  │"
    assert masked_plan(plan, ["o'brien", 4242, 5]) == expected


def test_tenant_metrics_view_shows_each_tenant(tdb: DataFlow, views: list[Any]) -> None:
    for tenant in ("acme", "acme", "globex"):
        LocalRuntime().execute(notes(), tenant_id=tenant)
    with pytest.raises(WorkflowError):
        LocalRuntime().execute(notes((fail, "check")), tenant_id="globex")
    view = TenantMetricsView(tdb, interval=0)
    views.append(view)
    acme, globex = view.rows
    assert (acme["tenant"], acme["runs"], acme["failed_runs"], acme["rows_written"]) == ("acme", 2, 0, 2)
    assert (globex["tenant"], globex["runs"], globex["failed_runs"], globex["rows_written"]) == ("globex", 2, 1, 2)
    assert acme["statements"] == 4 and 0 < acme["p50_seconds"] <= acme["p95_seconds"]
    assert view.models == {"Note": {"acme": 2, "globex": 1}}  # the failed run's row was rolled back
    assert "globex" in view._table.value and "acme" in view._models.value
