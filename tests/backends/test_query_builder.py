"""The query builder: SQL per dialect (snapshots), and the SQL it builds runs on each database."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from dataflow_nb import ValidationError
from dataflow_nb.query import create_query_builder

SELECT = {
    "postgresql": (
        "SELECT users.name, users.email, users.created_at FROM users WHERE users.age > $1::BIGINT "
        "AND users.status = $2::TEXT AND (users.name LIKE $3::TEXT ESCAPE '\\' OR users.score IS NULL) "
        "ORDER BY users.age DESC NULLS FIRST, users.name ASC NULLS LAST LIMIT $4::INTEGER OFFSET $5::INTEGER"
    ),
    "duckdb": (
        "SELECT users.name, users.email, users.created_at FROM users WHERE users.age > $1 "
        "AND users.status = $2 AND (users.name LIKE $3 ESCAPE '\\' OR users.score IS NULL) "
        "ORDER BY users.age DESC NULLS FIRST, users.name ASC NULLS LAST LIMIT $4 OFFSET $5"
    ),
}
WHERE = {
    "postgresql": (
        "WHERE (users.id = ANY($1::BIGINT[])) AND (users.name ~ $2::TEXT) AND users.key = $3::UUID "
        "AND users.seen < $4::TIMESTAMP WITH TIME ZONE"
    ),
    "duckdb": (
        "WHERE (users.id = ANY(CAST($1 AS BIGINT[]))) AND regexp_matches(users.name, $2, 's') AND users.key = $3::UUID "
        "AND users.seen < $4"
    ),
}
UPDATE = {
    "postgresql": (
        "UPDATE users SET status=$1::TEXT, n=$2::BIGINT WHERE (users.id = ANY($3::BIGINT[])) "
        "AND (users.name ~ $4::TEXT) AND users.key = $5::UUID AND users.seen < $6::TIMESTAMP WITH TIME ZONE"
    ),
    "duckdb": (
        "UPDATE users SET status=$1, n=$2 WHERE (users.id = ANY(CAST($3 AS BIGINT[]))) "
        "AND regexp_matches(users.name, $4, 's') AND users.key = $5::UUID AND users.seen < $6"
    ),
}
SEEN = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
KEY = uuid.UUID(int=1)


@pytest.mark.parametrize("dialect", ["postgresql", "duckdb"])
def test_select_snapshot(dialect: str) -> None:
    builder = create_query_builder(dialect)  # type: ignore[arg-type]
    builder.table("users").where("age", "$gt", 18).where("status", "$eq", "active")
    builder.where({"$or": [{"name": {"$like": "A%"}}, {"score": None}]}).order_by("-age", "name").limit(5).offset(10)
    assert builder.build_select(["name", "email", "created_at"]) == (SELECT[dialect], [18, "active", "A%", 5, 10])


@pytest.mark.parametrize("dialect", ["postgresql", "duckdb"])
def test_count_update_delete_snapshots(dialect: str) -> None:
    builder = create_query_builder(dialect).table("users").where("id", "$in", [1, 2])  # type: ignore[arg-type]
    builder.where({"name": {"$regex": "^a"}, "key": KEY, "seen": {"$lt": SEEN}})
    values = [[1, 2], "^a", str(KEY), SEEN]  # the $in list is ONE array parameter
    assert builder.build_count() == (f"SELECT count(*) AS count_1 FROM users {WHERE[dialect]}", values)
    assert builder.build_update({"status": "gone", "n": 3}) == (UPDATE[dialect], ["gone", 3, *values])
    assert builder.build_delete() == (f"DELETE FROM users {WHERE[dialect]}", values)
    assert builder.build_select() == (f"SELECT * FROM users {WHERE[dialect]}", values)


def test_where_takes_field_operator_value_or_a_filter_dict() -> None:
    one = create_query_builder("duckdb").table("t").where("n", "$between", [1, 5]).where("s", "$nin", ["a", None])
    two = create_query_builder("duckdb").table("t").where({"n": {"$between": [1, 5]}, "s": {"$nin": ["a", None]}})
    assert one.build_select() == two.build_select()
    assert one.build_select()[0] == (
        "SELECT * FROM t WHERE t.n BETWEEN $1 AND $2 AND NOT (t.s = ANY(CAST($3 AS TEXT[]))) AND t.s IS NOT NULL"
    )
    assert create_query_builder("duckdb").table("t").where("s").build_count()[0].endswith("WHERE t.s IS NULL")


def test_reserved_words_are_quoted_and_bad_input_refused() -> None:
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
    with pytest.raises(ValidationError, match="limit takes a non-negative int"):
        create_query_builder().table("users").limit(-1)
    with pytest.raises(ValidationError, match="offset takes a non-negative int"):
        create_query_builder().table("users").offset("5")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"call \.table"):
        create_query_builder().where("age", "$gt", 1)
    with pytest.raises(ValidationError, match="cannot bind"):
        create_query_builder().table("users").where("age", "$eq", object())
    with pytest.raises(ValidationError, match="unknown dialect 'mysql'"):
        create_query_builder("mysql")  # type: ignore[arg-type]


def test_built_sql_runs_on_the_database(db: Any, run: Any) -> None:
    @db.model
    class User:
        name: str
        age: int
        nick: str | None = None

    for name, age, nick in [("ann", 17, None), ("bob", 30, "b"), ("cid", 2**40, "c")]:
        run("UserCreateNode", {"name": name, "age": age, "nick": nick})
    dialect = "postgresql" if db.backend.capabilities.name == "postgresql" else "duckdb"
    connection = db.backend.connect()
    try:

        def rows(built: tuple[str, list[Any]]) -> list[dict[str, Any]]:
            return connection.execute_sql(*built).to_pylist()  # type: ignore[no-any-return, union-attr]

        adults = create_query_builder(dialect).table("users").where("age", "$gte", 18).order_by("name")  # type: ignore[arg-type]
        assert rows(adults.build_select(["name", "age"])) == [{"name": "bob", "age": 30}, {"name": "cid", "age": 2**40}]
        assert rows(adults.build_count()) == [{"count_1": 2}]
        # NULL semantics match the nodes': $ne keeps the NULL nick, $regex searches.
        others = create_query_builder(dialect).table("users").where({"nick": {"$ne": "b"}}).order_by("-nick")  # type: ignore[arg-type]
        assert [r["name"] for r in rows(others.build_select(["name"]))] == ["ann", "cid"]
        regex = create_query_builder(dialect).table("users").where("name", "$regex", "i")  # type: ignore[arg-type]
        assert rows(regex.build_select(["name"])) == [{"name": "cid"}]
        connection.execute_sql(
            *create_query_builder(dialect).table("users").where("name", "$eq", "ann").build_update({"nick": "a"})
        )  # type: ignore[arg-type]
        connection.execute_sql(*create_query_builder(dialect).table("users").where("age", "$gt", 2**39).build_delete())  # type: ignore[arg-type]
        everyone = create_query_builder(dialect).table("users").order_by("id")  # type: ignore[arg-type]
        assert rows(everyone.build_select(["name", "nick"])) == [
            {"name": "ann", "nick": "a"},
            {"name": "bob", "nick": "b"},
        ]
    finally:
        connection.close()
