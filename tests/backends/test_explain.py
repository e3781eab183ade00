"""explain: the SQL and values a node or builder will run, and the plan, without running it."""

from __future__ import annotations

from typing import Any

import pytest

from dataflow_nb import DataFlow, Explanation, ValidationError, WorkflowBuilder, explain
from dataflow_nb.query import create_query_builder
from tests.conftest import shared


@pytest.fixture(scope="class")
def class_tasks(class_db: DataFlow, class_run: Any) -> DataFlow:
    """Two tasks, written once for the class."""
    db, run = class_db, class_run

    @db.model
    class Task:
        title: str
        done: bool = False
        hours: int | None = None

    for title, hours in [("write", 3), ("test", None)]:
        run("TaskCreateNode", {"title": title, "hours": hours})
    return db


def dialect_of(db: DataFlow) -> Any:
    return "postgresql" if db.backend.capabilities.name == "postgresql" else "duckdb"


class TestTwoTasks:
    """explain runs nothing: the class reads two tasks written once, on each database."""

    tasks = shared("tasks")

    run = shared("run")

    def test_a_node_shows_its_sql_and_values(self, tasks: DataFlow) -> None:
        shown = explain("TaskListNode", {"filter": {"hours": {"$gt": 2}, "title": {"$like": "w%"}}, "limit": 5})
        assert isinstance(shown, Explanation)
        assert shown.dialect == tasks.backend.capabilities.name
        assert shown.params == [2, "w%", 5]
        assert "WHERE tasks.hours > $1" in shown.sql
        assert "LIMIT $3" in shown.sql
        assert shown.plan is None
        assert str(shown).endswith("-- $1 = 2\n-- $2 = 'w%'\n-- $3 = 5")
        assert "<pre>" in shown._repr_html_()
        counted = explain(tasks.nodes["TaskCountNode"], {"filter": {"done": False}})
        assert counted.sql.startswith("SELECT count(*)")
        assert counted.params == [False]
        grouped = explain("TaskListNode", {"group_by": "done", "aggregate": {"n": {"$count": "*"}}})
        assert "GROUP BY tasks.done" in grouped.sql

    def test_the_plan_comes_from_the_database_and_nothing_runs(self, tasks: DataFlow, run: Any) -> None:
        shown = explain("TaskListNode", {"filter": {"hours": {"$gt": 2}}}, plan=True)
        assert shown.plan
        # A DELETE is planned, not executed: the rows stay.
        deleting = create_query_builder(dialect_of(tasks)).table("tasks").where("hours", "$gt", 0).build_delete()
        planned = explain(deleting, db=tasks, plan=True)
        assert planned.plan
        assert planned.sql.startswith("DELETE FROM tasks WHERE")
        assert run("TaskCountNode", {}) == 2

    def test_workflows_builders_and_sql_nodes(self, tasks: DataFlow) -> None:
        workflow = WorkflowBuilder()
        workflow.add_node("TaskListNode", "open", {"filter": {"done": False}, "order_by": ["-hours"]})
        workflow.add_node(
            "SQLQueryNode", "raw", {"sql": "SELECT * FROM tasks WHERE hours < :h", "params": {"h": 9}, "db": tasks}
        )
        built = workflow.build()
        assert "ORDER BY tasks.hours DESC NULLS FIRST" in explain(built, "open").sql
        raw = explain(built, "raw", plan=True)
        assert raw.params == [9]
        assert raw.plan
        builder = create_query_builder(dialect_of(tasks)).table("tasks").where({"title": {"$in": ["a", "b"]}})
        assert explain(builder).params == [["a", "b"]]  # one array parameter
        assert explain(builder, db=tasks, plan=True).plan

    def test_explain_refuses_what_it_cannot_show(self, tasks: DataFlow) -> None:
        with pytest.raises(ValidationError, match="TaskCreateNode does not say its SQL"):
            explain("TaskCreateNode", {"title": "x"})
        with pytest.raises(ValidationError, match="needs the database: pass db="):
            explain(create_query_builder().table("tasks"), plan=True)
        with pytest.raises(ValidationError, match=r"give one of the node ids \['a'\]"):
            workflow = WorkflowBuilder()
            workflow.add_node("TaskCountNode", "a", {})
            explain(workflow.build(), "b")
        with pytest.raises(ValidationError, match="unknown field 'nope'"):
            explain("TaskListNode", {"filter": {"nope": 1}})


def test_tenant_scope_is_shown(backend_url: str | None) -> None:
    with DataFlow(backend_url, multi_tenant=True) as db:

        @db.model
        class Memo:
            text: str

        shown = explain(db.nodes["MemoCountNode"], {"filter": {"text": "hi"}}, tenant_id="acme")
        assert "acme" in shown.params
        assert "tenant_id" in shown.sql
