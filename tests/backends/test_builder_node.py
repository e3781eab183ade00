"""A query builder runs through SQLQueryNode on both backends, and explain shows its chosen fields."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from dataflow_nb import (
    DataFlow,
    LocalRuntime,
    ValidationError,
    WorkflowBuilder,
    create_query_builder,
    explain,
)
from tests.conftest import shared


@pytest.fixture(scope="class")
def class_users(class_db: DataFlow, class_run: Any) -> DataFlow:
    """Four users, written once for the class."""
    db, run = class_db, class_run

    @db.model
    class User:
        name: str
        age: int
        status: str = "active"

    for name, age, status in [("ann", 17, "active"), ("bob", 30, "active"), ("cid", 41, "gone"), ("dan", 52, "new")]:
        run("UserCreateNode", {"name": name, "age": age, "status": status})
    return db


class TestFourUsers:
    """Reads only, of four users written once for the class, on each database."""

    users = shared("users")

    @pytest.mark.parametrize("dialect", ["postgresql", "duckdb"])
    def test_a_builder_runs_through_sql_query_node(self, users: DataFlow, dialect: str) -> None:
        builder = create_query_builder(dialect).table("users")  # type: ignore[arg-type]
        builder.where("age", "$gt", 18).where({"status": {"$in": ["active", "new"]}}).order_by("-age")
        sql, params = builder.build_select(["name", "age"])  # any dialect: the node compiles for its database
        workflow = WorkflowBuilder()
        workflow.add_node("SQLQueryNode", "adults", {"sql": builder, "db": users})
        workflow.add_node("SQLQueryNode", "all", {"sql": create_query_builder().table("users").order_by("name")})
        results, _ = LocalRuntime().execute(workflow.build())
        frame = results["adults"]
        assert frame.columns == ["name", "age"]
        assert frame.to_dicts() == [{"name": "dan", "age": 52}, {"name": "bob", "age": 30}]
        assert frame.schema["age"] == pl.Int64
        assert results["all"]["name"].to_list() == ["ann", "bob", "cid", "dan"]
        assert params == [18, ["active", "new"]]
        assert "users.name, users.age" in sql

    def test_explain_shows_the_chosen_fields(self, users: DataFlow) -> None:
        builder = create_query_builder().table("users").where("age", "$gt", 18)
        builder.build_select(["name", "status"])
        shown = explain(builder)
        assert shown.sql.startswith("SELECT users.name, users.status FROM users")
        assert "SELECT *" not in shown.sql
        chosen = create_query_builder("duckdb").table("users").select("name").where("age", "$lt", 20)
        assert str(explain(chosen)).startswith("SELECT users.name FROM users WHERE users.age < $1")
        assert explain(chosen, db=users, plan=True).plan
        workflow = WorkflowBuilder()
        workflow.add_node("SQLQueryNode", "young", {"sql": chosen, "db": users})
        built = workflow.build()
        assert " ".join(explain(built, "young").sql.split()).startswith("SELECT users.name FROM users WHERE")
        results, _ = LocalRuntime().execute(built)
        assert results["young"].to_dicts() == [{"name": "ann"}]

    def test_a_builder_binds_its_own_values(self, users: DataFlow) -> None:
        workflow = WorkflowBuilder()
        builder = create_query_builder().table("users")
        workflow.add_node("SQLQueryNode", "q", {"sql": builder, "params": {"x": 1}, "db": users})
        with pytest.raises(ValidationError, match="a query builder binds its own values; leave out params"):
            workflow.build()
