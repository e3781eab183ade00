"""Each operator on both databases: natural Python values, NULL semantics, order and caching."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest

from dataflow_nb import DataFlow, LocalRuntime, TenantError, ValidationError, WorkflowBuilder, WorkflowError, explain

KEY = uuid.UUID("12345678-1234-5678-1234-567812345678")
ROWS: list[dict[str, Any]] = [
    {
        "name": "ann",
        "age": 17,
        "price": Decimal("9.99"),
        "born": dt.date(2007, 5, 1),
        "seen": dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
        "key": KEY,
        "note": "a_b",
    },
    {
        "name": "Bob",
        "age": None,
        "price": Decimal("100.000000001"),
        "born": None,
        "seen": None,
        "key": None,
        "note": None,
    },
    {
        "name": "cid",
        "age": 40,
        "price": None,
        "born": dt.date(1984, 2, 29),
        "seen": dt.datetime(2024, 1, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2))),  # 12:00 UTC
        "key": uuid.UUID(int=7),
        "note": "a%b\nc",
    },
]


@pytest.fixture(scope="class")
def people(class_db: DataFlow, class_run: Any) -> Any:
    """The three rows, written once for the class: its tests only read them."""

    @class_db.model
    class Person:
        name: str
        age: int | None = None
        price: Decimal | None = None
        born: dt.date | None = None
        seen: dt.datetime | None = None
        key: uuid.UUID | None = None
        note: str | None = None

    for row in ROWS:
        class_run("PersonCreateNode", row)
    return Person


def names(run: Any, spec: dict[str, Any], **params: Any) -> list[str]:
    frame = run("PersonListNode", {"filter": spec, "fields": ["name"], **params})
    count = run("PersonCountNode", {"filter": spec})
    result: list[str] = frame["name"].to_list()
    assert count == len(result)
    return result


class TestReadsOfThreeRows:
    """Reads only: the rows are written once for the class (``people``), on each database."""

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            # NULL semantics: the documented table, the same on both databases.
            ({"age": None}, ["Bob"]),
            ({"age": {"$ne": 17}}, ["Bob", "cid"]),
            ({"age": {"$ne": None}}, ["ann", "cid"]),
            ({"age": {"$gt": 0}}, ["ann", "cid"]),
            ({"age": {"$in": [17, None]}}, ["ann", "Bob"]),
            ({"age": {"$nin": [17]}}, ["Bob", "cid"]),
            ({"age": {"$nin": [17, None]}}, ["cid"]),
            ({"age": {"$in": []}}, []),
            ({"age": {"$nin": []}}, ["ann", "Bob", "cid"]),
            ({"$not": {"age": {"$gt": 20}}}, ["ann", "Bob"]),
            ({"age": {"$not": {"$gt": 20}}}, ["ann", "Bob"]),
            ({"age": {"$exists": False}}, ["Bob"]),
            ({"$not": {}}, []),
            ({"$or": [{}, {"age": 1}]}, ["ann", "Bob", "cid"]),
            # Natural Python values: Decimal, date, datetime (any zone: the same instant), UUID.
            ({"price": {"$gt": Decimal("100")}}, ["Bob"]),
            ({"price": Decimal("9.99")}, ["ann"]),
            ({"born": {"$lt": dt.date(2000, 1, 1)}}, ["cid"]),
            ({"born": {"$between": [dt.date(1984, 2, 29), dt.date(2007, 5, 1)]}}, ["ann", "cid"]),
            ({"seen": dt.datetime(2024, 1, 1, 12)}, ["ann", "cid"]),  # naive means UTC
            (
                {"seen": {"$gte": dt.datetime(2024, 1, 1, 13, tzinfo=dt.timezone(dt.timedelta(hours=1)))}},
                ["ann", "cid"],
            ),
            ({"key": KEY}, ["ann"]),
            ({"key": {"$in": [str(KEY), uuid.UUID(int=7)]}}, ["ann", "cid"]),
            # Text: LIKE escapes with \, ILIKE folds case, $regex searches, strings compare by code point.
            ({"note": {"$like": "a\\_b"}}, ["ann"]),
            ({"note": {"$like": "a\\%b%"}}, ["cid"]),
            ({"note": {"$like": "a_b%"}}, ["ann", "cid"]),
            ({"name": {"$ilike": "b%"}}, ["Bob"]),
            ({"name": {"$like": "b%"}}, []),
            ({"note": {"$regex": "b.c"}}, ["cid"]),  # . matches a newline on both
            ({"name": {"$regex": "^[a-c]"}}, ["ann", "cid"]),
            ({"name": {"$gt": "a"}}, ["ann", "cid"]),  # "Bob" < "a": upper case sorts first
            ({"name": {"$between": ["B", "b"]}}, ["ann", "Bob"]),
        ],
        ids=repr,
    )
    def test_operators(self, people: Any, class_run: Any, spec: dict[str, Any], expected: list[str]) -> None:
        assert names(class_run, spec) == expected

    def test_order_by_puts_null_last_ascending_and_first_descending(self, people: Any, class_run: Any) -> None:
        assert class_run("PersonListNode", {"order_by": ["age"]})["name"].to_list() == ["ann", "cid", "Bob"]
        assert class_run("PersonListNode", {"order_by": ["-age"]})["name"].to_list() == ["Bob", "cid", "ann"]
        assert class_run("PersonListNode", {"order_by": "name"})["name"].to_list() == ["Bob", "ann", "cid"]

    def test_the_cache_never_mixes_up_values(self, people: Any, class_run: Any) -> None:
        # Same shape, new values each time: served from the cached statement, answered afresh.
        for age, expected in [(0, ["ann", "cid"]), (20, ["cid"]), (50, [])]:
            assert names(class_run, {"age": {"$gt": age}}) == expected
        assert names(class_run, {"name": {"$in": ["ann"]}}) == ["ann"]
        assert names(class_run, {"name": {"$in": ["ann", "cid"]}}) == ["ann", "cid"]
        text = str(explain(people.__dataflow_model__.name + "ListNode", {"filter": {"age": {"$gt": 21}}}))
        assert "-- $1 = 21" in text


def test_scope_is_part_of_the_cached_statement(backend_url: str | None) -> None:
    with DataFlow(backend_url, multi_tenant=True) as db:

        @db.model
        class Doc:
            title: str

        def titles(tenant: str | None) -> list[str]:
            workflow = WorkflowBuilder()
            workflow.add_node(db.nodes["DocListNode"], "docs", {"filter": {"title": {"$ne": "x"}}})
            return LocalRuntime().execute(workflow.build(), tenant_id=tenant)[0]["docs"]["title"].to_list()  # type: ignore[no-any-return]

        for tenant in ("acme", "globex"):
            workflow = WorkflowBuilder()
            workflow.add_node(db.nodes["DocCreateNode"], "new", {"title": f"{tenant} plan"})
            LocalRuntime().execute(workflow.build(), tenant_id=tenant)
        assert titles("acme") == ["acme plan"]
        assert titles("globex") == ["globex plan"]
        with pytest.raises(WorkflowError) as failure:
            titles(None)
        assert isinstance(failure.value.__cause__, TenantError)


def test_a_filter_of_too_many_conditions_is_refused_before_any_sql(backend_url: str | None) -> None:
    """A 5,000-branch $or used to run for seconds (150 s at 50,000 on DuckDB), most of it before the
    database's statement_timeout starts; now it is refused at once and the connection stays usable."""
    with DataFlow(backend_url, statement_timeout=3) as db:

        @db.model
        class Tag:
            name: str

        def count(spec: dict[str, Any]) -> Any:
            workflow = WorkflowBuilder()
            workflow.add_node(db.nodes["TagCountNode"], "n", {"filter": spec})
            return LocalRuntime().execute(workflow.build())[0]["n"]

        workflow = WorkflowBuilder()
        workflow.add_node(db.nodes["TagBulkCreateNode"], "n", {"data": [{"name": f"t{i}"} for i in range(3)]})
        LocalRuntime().execute(workflow.build())
        assert count({"$or": [{"name": f"t{i}"} for i in range(1000)]}) == 3  # the limit itself runs
        wide = {"$or": [{"name": f"t{i}"} for i in range(5000)]}
        nested = {"$and": [{"$or": [{"name": f"t{i}"} for i in range(600)]}, {"$or": [{"id": i} for i in range(600)]}]}
        for spec, shown in ((wide, "$or with 5000 branches"), (nested, "field 'id' brings the filter to 1001")):
            with pytest.raises((WorkflowError, ValidationError), match=re.escape(shown)) as info:
                count(spec)
            assert "'$in'" in str(info.value) and "limit of 1000" in str(info.value)
        assert count({"name": {"$in": [f"t{i}" for i in range(5000)]}}) == 3  # the suggested form, at once
