"""The query builder: SQL per dialect (snapshots), and the SQL it builds runs on each database."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dataflow_nb import ValidationError
from dataflow_nb.query import create_query_builder


@pytest.mark.parametrize("dialect", ["postgresql", "duckdb"])
def test_select_snapshot(dialect: str) -> None:
    builder = create_query_builder(dialect)  # type: ignore[arg-type]
    builder.table("users").where("age", "$gt", 18).where("status", "$eq", "active")
    builder.where({"$or": [{"name": {"$like": "A%"}}, {"score": None}]}).order_by("-age", "name").limit(5).offset(10)
    sql, params = builder.build_select(["name", "email", "created_at"])
    expected = (
        "SELECT users.name, users.email, users.created_at FROM users WHERE users.age > $1::BIGINT "
        "AND users.status = $2::VARCHAR AND (users.name LIKE $3::VARCHAR OR users.score IS NULL) "
        "ORDER BY users.age DESC, users.name ASC LIMIT $4::INTEGER OFFSET $5::INTEGER"
    )
    # PostgreSQL's ADBC driver needs typed parameters; DuckDB types them from the Python values.
    assert sql == (expected if dialect == "postgresql" else re.sub(r"::[A-Z]+", "", expected))
    assert params == [18, "active", "A%", 5, 10]


def test_count_update_delete_snapshots() -> None:
    builder = create_query_builder("postgresql").table("users").where("id", "$in", [1, 2])
    assert builder.build_count() == (
        "SELECT count(*) AS count_1 FROM users WHERE users.id IN ($1::BIGINT, $2::BIGINT)",
        [1, 2],
    )
    assert builder.build_update({"status": "gone"}) == (
        "UPDATE users SET status=$1::VARCHAR WHERE users.id IN ($2::BIGINT, $3::BIGINT)",
        ["gone", 1, 2],
    )
    assert builder.build_delete() == ("DELETE FROM users WHERE users.id IN ($1::BIGINT, $2::BIGINT)", [1, 2])


def test_reserved_words_are_quoted_and_bad_identifiers_refused() -> None:
    sql, _ = create_query_builder("duckdb").table("order").where("by", "$eq", 1).build_select(["select"])
    assert sql.startswith('SELECT "order"."select" FROM "order" WHERE "order"."by" = $1')
    with pytest.raises(ValidationError, match="not a valid name"):
        create_query_builder().table("users; DROP TABLE users")
    with pytest.raises(ValidationError, match="not a valid name"):
        create_query_builder().table("users").where("age) OR (1=1", "$eq", 1)
    with pytest.raises(ValidationError, match=r"unknown operator '\$where'"):
        create_query_builder().table("users").where("age", "$where", 1)
    with pytest.raises(ValidationError, match="would delete every row"):
        create_query_builder().table("users").build_delete()


def test_built_sql_runs_on_the_database(db: Any, run: Any) -> None:
    @db.model
    class User:
        name: str
        age: int

    for name, age in [("ann", 17), ("bob", 30), ("cid", 2**40)]:
        run("UserCreateNode", {"name": name, "age": age})
    dialect = "postgresql" if db.backend.capabilities.name == "postgresql" else "duckdb"
    builder = create_query_builder(dialect).table("users").where("age", "$gte", 18).order_by("name")  # type: ignore[arg-type]
    connection = db.backend.connect()
    try:
        sql, params = builder.build_select(["name", "age"])
        assert connection.execute_sql(sql, params).to_pylist() == [
            {"name": "bob", "age": 30},
            {"name": "cid", "age": 2**40},
        ]
        sql, params = builder.build_count()
        assert connection.execute_sql(sql, params).column(0).to_pylist() == [2]
    finally:
        connection.close()
