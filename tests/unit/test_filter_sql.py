"""SQL snapshots per dialect: every filter operator, NULL handling, ordering and errors.

No database is needed: these pin the SQL text the compiler emits for PostgreSQL (typed
``$n::TYPE`` binds for ADBC) and DuckDB, so a change to it is a deliberate one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from dataflow_nb import ValidationError
from dataflow_nb.backends.base import compile_statement
from dataflow_nb.backends.duckdb import DuckDBDialect
from dataflow_nb.backends.postgres_dialect import postgres_dialect
from dataflow_nb.core.spec import spec_from_class
from dataflow_nb.query.filters import compile_filter, model_target, order_clauses, plan_filter


class Item:
    name: str
    age: int | None = None
    score: float | None = None
    price: Decimal | None = None
    born: dt.date | None = None
    seen: dt.datetime | None = None
    key: uuid.UUID | None = None
    meta: dict[str, Any] | None = None


SPEC = spec_from_class(Item)
TARGET = model_target(SPEC, SPEC.table)
DIALECTS = {"postgresql": postgres_dialect(), "duckdb": DuckDBDialect()}


def where(spec: dict[str, Any], dialect: str) -> tuple[str, list[Any]]:
    """The WHERE clause (one line) and bound values of ``SELECT id ... WHERE <filter>``."""
    compiled = compile_statement(sa.select(SPEC.table.c.id).where(compile_filter(TARGET, spec)), DIALECTS[dialect])
    return " ".join(compiled.sql.split()).split(" WHERE ", 1)[1], list(compiled.values)


# (filter, PostgreSQL WHERE, DuckDB WHERE)
SNAPSHOTS = [
    ({"age": 3}, "items.age = $1::BIGINT", "items.age = $1"),
    ({"age": None}, "items.age IS NULL", "items.age IS NULL"),
    ({"age": {"$eq": 3}}, "items.age = $1::BIGINT", "items.age = $1"),
    ({"age": {"$ne": 3}}, "items.age IS DISTINCT FROM $1::BIGINT", "items.age IS DISTINCT FROM $1"),
    ({"age": {"$ne": None}}, "items.age IS NOT NULL", "items.age IS NOT NULL"),
    ({"age": {"$gt": 3}}, "items.age > $1::BIGINT", "items.age > $1"),
    ({"age": {"$gte": 3}}, "items.age >= $1::BIGINT", "items.age >= $1"),
    ({"age": {"$lt": 3}}, "items.age < $1::BIGINT", "items.age < $1"),
    ({"age": {"$lte": 3}}, "items.age <= $1::BIGINT", "items.age <= $1"),
    ({"name": {"$gt": "b"}}, '(items.name COLLATE "C") > $1::TEXT', '(items.name COLLATE "C") > $1'),
    # $in/$nin bind ONE array, whatever its length (PostgreSQL takes at most 65,535 parameters).
    ({"age": {"$in": [1, 2]}}, "(items.age = ANY($1::BIGINT[]))", "(items.age = ANY(CAST($1 AS BIGINT[])))"),
    (
        {"age": {"$in": [1, None]}},
        "(items.age = ANY($1::BIGINT[])) OR items.age IS NULL",
        "(items.age = ANY(CAST($1 AS BIGINT[]))) OR items.age IS NULL",
    ),
    ({"age": {"$in": []}}, "false", "false"),
    (
        {"age": {"$nin": [1, 2]}},
        "NOT (items.age = ANY($1::BIGINT[])) OR items.age IS NULL",
        "NOT (items.age = ANY(CAST($1 AS BIGINT[]))) OR items.age IS NULL",
    ),
    (
        {"age": {"$nin": [1, None]}},
        "NOT (items.age = ANY($1::BIGINT[])) AND items.age IS NOT NULL",
        "NOT (items.age = ANY(CAST($1 AS BIGINT[]))) AND items.age IS NOT NULL",
    ),
    ({"age": {"$nin": []}}, "true", "true"),
    ({"name": {"$like": "a%"}}, "items.name LIKE $1::TEXT ESCAPE '\\'", "items.name LIKE $1 ESCAPE '\\'"),
    ({"name": {"$ilike": "a%"}}, "items.name ILIKE $1::TEXT ESCAPE '\\'", "items.name ILIKE $1 ESCAPE '\\'"),
    ({"name": {"$regex": "^a"}}, "(items.name ~ $1::TEXT)", "regexp_matches(items.name, $1, 's')"),
    ({"age": {"$exists": True}}, "items.age IS NOT NULL", "items.age IS NOT NULL"),
    ({"age": {"$exists": False}}, "items.age IS NULL", "items.age IS NULL"),
    ({"age": {"$between": [1, 5]}}, "items.age BETWEEN $1::BIGINT AND $2::BIGINT", "items.age BETWEEN $1 AND $2"),
    (
        {"name": {"$between": ["a", "c"]}},
        '(items.name COLLATE "C") >= $1::TEXT AND (items.name COLLATE "C") <= $2::TEXT',
        '(items.name COLLATE "C") >= $1 AND (items.name COLLATE "C") <= $2',
    ),
    (
        {"age": {"$not": {"$gt": 3}}},
        "NOT coalesce(items.age > $1::BIGINT, false)",
        "NOT coalesce(items.age > $1, false)",
    ),
    ({"$not": {"age": 3}}, "NOT coalesce(items.age = $1::BIGINT, false)", "NOT coalesce(items.age = $1, false)"),
    (
        {"$and": [{"age": 1}, {"name": "x"}]},
        "items.age = $1::BIGINT AND items.name = $2::TEXT",
        "items.age = $1 AND items.name = $2",
    ),
    (
        {"$or": [{"age": 1}, {"name": "x"}]},
        "items.age = $1::BIGINT OR items.name = $2::TEXT",
        "items.age = $1 OR items.name = $2",
    ),
    ({"price": Decimal("1.5")}, "items.price = $1", "items.price = $1"),
    ({"born": dt.date(2024, 1, 2)}, "items.born = $1::DATE", "items.born = $1"),
    (
        {"seen": {"$gte": dt.datetime(2024, 1, 2, 3, 4, 5)}},
        "items.seen >= $1::TIMESTAMP WITH TIME ZONE",
        "items.seen >= $1",
    ),
    ({"key": uuid.UUID(int=1)}, "items.key = $1::UUID", "items.key = $1::UUID"),
    ({"meta": None}, "items.meta IS NULL", "items.meta IS NULL"),
]


@pytest.mark.parametrize(("spec", "postgres", "duckdb"), SNAPSHOTS, ids=[repr(s[0]) for s in SNAPSHOTS])
def test_operator_snapshots(spec: dict[str, Any], postgres: str, duckdb: str) -> None:
    assert where(spec, "postgresql")[0] == postgres
    assert where(spec, "duckdb")[0] == duckdb


def test_values_are_bound_in_their_natural_types() -> None:
    spec = {
        "price": Decimal("1.5"),
        "born": dt.date(2024, 1, 2),
        "seen": {"$gte": dt.datetime(2024, 1, 2, 3, 4, 5)},  # naive: read as UTC, like stored values
        "key": uuid.UUID(int=1),
        "score": {"$lt": 2},  # an int for a float field is widened
    }
    for dialect in DIALECTS:
        assert where(spec, dialect)[1] == [
            Decimal("1.5"),
            dt.date(2024, 1, 2),
            dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            "00000000-0000-0000-0000-000000000001",
            2.0,
        ]


def test_order_by_spells_out_null_placement_and_binary_text_order() -> None:
    clauses = order_clauses(TARGET, ["-age", "name", "-id"])
    for dialect in DIALECTS.values():
        sql = compile_statement(sa.select(SPEC.table.c.id).order_by(*clauses), dialect).sql
        assert " ".join(sql.split()).endswith(
            'ORDER BY items.age DESC NULLS FIRST, items.name COLLATE "C" ASC, items.id DESC'
        )


def test_a_filter_splits_into_a_shape_and_its_values() -> None:
    one = plan_filter(TARGET, {"age": {"$gt": 3}, "name": {"$in": ["a", "b"]}})
    two = plan_filter(TARGET, {"age": {"$gt": 40}, "name": {"$in": ["x", "y"]}})
    assert one.shape == two.shape  # same SQL, cached once
    assert (one.values, two.values) == ([3, ["a", "b"]], [40, ["x", "y"]])
    # One array bind: an $in list of any length has the same shape (and compiled SQL).
    assert (
        plan_filter(TARGET, {"name": {"$in": ["a"]}}).shape == plan_filter(TARGET, {"name": {"$in": ["a", "b"]}}).shape
    )
    assert plan_filter(TARGET, None).shape is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"agee": 1}, r"unknown field 'agee' \(did you mean 'age'\?\); valid fields are \['id', 'name', 'age'"),
        ({"age": {"$gtt": 1}}, r"unknown operator '\$gtt' \(did you mean '\$gt'\?\); valid operators are \['\$eq'"),
        ({"$where": "1"}, r"unknown top-level operator '\$where'; valid ones are \['\$and', '\$or', '\$not'\]"),
        ({"age": {"$gt": "1"}}, r"field 'age' expects Optional\[int\], got '1'.*\(in filter operator \$gt\)"),
        ({"age": {"$gt": None}}, r"\$gt on field 'age' cannot compare with None; match NULL with \{'age': None\}"),
        ({"age": {"$in": 3}}, r"\$in on field 'age' takes a list, got 3"),
        ({"age": {"$between": [1]}}, r"\$between on field 'age' takes \[low, high\]"),
        ({"age": {"$exists": "yes"}}, r"\$exists on field 'age' takes True or False"),
        ({"age": {"$like": "1%"}}, r"\$like works on text fields; field 'age' is not text"),
        ({"name": {"$like": "a\\"}}, r"ends with the escape character"),
        ({"name": {"$regex": 3}}, r"\$regex on field 'name' takes a pattern string"),
        ({"meta": {"a": 1}}, r"field 'meta' holds JSON; filter it with \{'meta': None\} or \$exists"),
        ({"meta": {"$ne": 1}}, r"field 'meta' holds JSON; filter it with \{'meta': None\} or \$exists"),
        ({"age": {}}, r"empty condition for field 'age'"),
        ({"$or": []}, r"\$or takes a non-empty list of filters"),
        ({"$and": {"age": 1}}, r"\$and takes a non-empty list of filters"),
        (["age"], r"a filter is a dict"),
        ({"id": 2**64}, r"outside the 64-bit integer range"),
    ],
)
def test_bad_filters_name_the_field_and_the_fix(spec: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        compile_filter(TARGET, spec)


def test_deep_nesting_compiles_and_too_deep_is_a_validation_error() -> None:
    spec: dict[str, Any] = {"age": 1}
    for _ in range(49):  # the outermost dict is a level too
        spec = {"$not": spec}
    assert where(spec, "postgresql")[1] == [1]
    with pytest.raises(ValidationError, match="nests deeper than 50 levels"):
        compile_filter(TARGET, {"$not": spec})
    condition: dict[str, Any] = {"$eq": 1}
    for _ in range(60):
        condition = {"$not": condition}
    with pytest.raises(ValidationError, match="nests deeper than 50 levels"):
        compile_filter(TARGET, {"age": condition})


def test_empty_filters_and_logical_edge_cases() -> None:
    assert compile_filter(TARGET, None) is None
    assert compile_filter(TARGET, {}) is None
    assert where({"$or": [{}, {"age": 1}]}, "duckdb")[0] == "true"  # {} matches every row
    assert where({"$not": {}}, "duckdb")[0] == "false"
    assert where({"$and": [{}, {"age": 1}]}, "duckdb")[0] == "items.age = $1"
