"""The seven generated CRUD nodes, on every backend."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import pytest

from dataflow_nb import LocalRuntime, NotFoundError, ValidationError, WorkflowBuilder, WorkflowError
from tests.conftest import shared
from tests.helpers import assert_frame_rows


def add_users(db: Any) -> Any:
    @db.model
    class User:
        name: str
        email: str
        age: int
        active: bool = True
        created_at: dt.datetime
        profile: Optional[str] = None  # noqa: UP045 - the seed's spelling must work

        __dataflow__ = {"unique": [["email"]]}

    return User


@pytest.fixture
def users(db: Any) -> Any:
    return add_users(db)


@pytest.fixture(scope="class")
def four_users(class_db: Any, class_run: Any) -> Any:
    """ann 17, bob 25, cid 40 and eve 25 with a profile, written once for the class."""
    model = add_users(class_db)
    ids = create_users(class_run, ("ann", 17), ("bob", 25), ("cid", 40), ("eve", 25))
    class_run("UserUpdateNode", {"id": ids[3], "profile": "p"})
    return model


def create_users(run: Any, *people: tuple[str, int]) -> list[int]:
    return [run("UserCreateNode", {"name": n, "email": f"{n}@x.io", "age": a})["id"][0] for n, a in people]


def test_nodes_are_generated_for_each_model(db: Any, users: Any) -> None:
    operations = ["Create", "Read", "Update", "Delete", "List", "Count", "Upsert"]
    operations += ["BulkCreate", "BulkUpdate", "BulkDelete", "BulkUpsert"]
    assert sorted(n for n in db.nodes if n.startswith("User")) == sorted(f"User{op}Node" for op in operations)


def test_create_returns_the_stored_record(run: Any, users: Any) -> None:
    before = dt.datetime.now(dt.UTC)
    frame = run("UserCreateNode", {"name": "Alice", "email": "a@x.io", "age": 30})
    assert frame.columns == ["id", "name", "email", "age", "active", "created_at", "profile", "updated_at"]
    assert_frame_rows(
        frame, [{"id": 1, "name": "Alice", "email": "a@x.io", "age": 30, "active": True, "profile": None}]
    )
    created = frame["created_at"][0]
    assert created.tzinfo is not None
    assert before - dt.timedelta(seconds=5) <= created <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    assert frame["updated_at"][0] == created


def test_read_update_delete_by_id(run: Any, users: Any) -> None:
    [alice] = create_users(run, ("alice", 30))
    assert_frame_rows(run("UserReadNode", {"id": alice}), [{"id": alice, "name": "alice"}])
    updated = run("UserUpdateNode", {"id": alice, "age": 31, "profile": "hi"})
    assert_frame_rows(updated, [{"id": alice, "age": 31, "profile": "hi", "email": "alice@x.io"}])
    assert updated["updated_at"][0] >= updated["created_at"][0]
    assert_frame_rows(run("UserDeleteNode", {"id": alice}), [{"id": alice, "age": 31}])
    assert run("UserCountNode") == 0


@pytest.mark.parametrize("node", ["UserReadNode", "UserDeleteNode"])
def test_missing_id_raises_not_found(run: Any, users: Any, node: str) -> None:
    with pytest.raises(WorkflowError) as info:
        run(node, {"id": 404})
    assert isinstance(info.value.__cause__, NotFoundError)
    assert "no User with id 404" in str(info.value)


def test_update_of_missing_id_raises_not_found(run: Any, users: Any) -> None:
    with pytest.raises(WorkflowError) as info:
        run("UserUpdateNode", {"id": 404, "age": 3})
    assert isinstance(info.value.__cause__, NotFoundError)


def test_list_filters_orders_pages_and_selects_fields(run: Any, users: Any) -> None:
    create_users(run, ("ann", 17), ("bob", 25), ("cid", 40), ("dee", 33), ("eve", 25))
    frame = run(
        "UserListNode",
        {
            "filter": {"age": {"$gte": 18}},
            "order_by": ["-age", "name"],
            "limit": 3,
            "offset": 1,
            "fields": ["name", "age"],
        },
    )
    assert frame.columns == ["name", "age"]
    assert_frame_rows(frame, [{"name": "dee", "age": 33}, {"name": "bob", "age": 25}, {"name": "eve", "age": 25}])


class TestListFilterOperators:
    """Reads only, of four users written once for the class, on each database."""

    run = shared("run")

    @pytest.mark.parametrize(
        ("condition", "expected"),
        [
            ({"age": 25}, ["bob", "eve"]),
            ({"age": {"$eq": 25}}, ["bob", "eve"]),
            ({"age": {"$ne": 25}}, ["ann", "cid"]),
            ({"age": {"$gt": 25}}, ["cid"]),
            ({"age": {"$gte": 25}}, ["bob", "cid", "eve"]),
            ({"age": {"$lt": 25}}, ["ann"]),
            ({"age": {"$lte": 25}}, ["ann", "bob", "eve"]),
            ({"name": {"$in": ["ann", "eve", "zed"]}}, ["ann", "eve"]),
            ({"name": {"$nin": ["ann", "eve"]}}, ["bob", "cid"]),
            ({"age": {"$gt": 17, "$lt": 40}}, ["bob", "eve"]),
            ({"profile": None}, ["ann", "bob", "cid"]),
            ({"profile": {"$ne": None}}, ["eve"]),
        ],
    )
    def test_list_filter_operators(
        self, run: Any, four_users: Any, condition: dict[str, Any], expected: list[str]
    ) -> None:
        assert run("UserListNode", {"filter": condition})["name"].to_list() == expected
        assert run("UserCountNode", {"filter": condition}) == len(expected)


def test_count_returns_an_int(run: Any, users: Any) -> None:
    create_users(run, ("ann", 17), ("bob", 25))
    count = run("UserCountNode", {"filter": {"active": True}})
    assert count == 2
    assert type(count) is int


def test_upsert_inserts_then_updates_on_the_unique_key(run: Any, users: Any) -> None:
    first = run("UserUpsertNode", {"name": "Ann", "email": "ann@x.io", "age": 20})
    second = run("UserUpsertNode", {"name": "Ann B", "email": "ann@x.io", "age": 21, "update": ["age"]})
    assert second["id"][0] == first["id"][0]
    assert_frame_rows(second, [{"name": "Ann", "email": "ann@x.io", "age": 21}])
    assert run("UserCountNode") == 1


def test_upsert_needs_a_unique_conflict_key(run: Any, users: Any) -> None:
    with pytest.raises(ValidationError, match="not a unique key of User"):
        run("UserUpsertNode", {"name": "x", "email": "x@x.io", "age": 1, "conflict_on": ["name"]})


def test_a_duplicate_unique_value_is_a_conflict(run: Any, users: Any) -> None:
    from dataflow_nb import ConflictError

    create_users(run, ("ann", 17))
    with pytest.raises(WorkflowError) as info:
        run("UserCreateNode", {"name": "ann", "email": "ann@x.io", "age": 3})
    assert isinstance(info.value.__cause__, ConflictError)


def test_frame_pandas_returns_pandas(backend_url: str | None) -> None:
    import pandas as pd

    from dataflow_nb import DataFlow

    with DataFlow(backend_url, frame="pandas") as db:

        @db.model
        class Item:
            label: str
            qty: Optional[int] = None  # noqa: UP045

        workflow = WorkflowBuilder()
        workflow.add_node("ItemCreateNode", "a", {"label": "a", "qty": 2**60})
        workflow.add_node("ItemCreateNode", "b", {"label": "b"})
        workflow.add_node("ItemListNode", "all", {})
        results, _ = LocalRuntime().execute(workflow.build())
    frame = results["all"]
    assert isinstance(frame, pd.DataFrame)
    assert str(frame["qty"].dtype) == "Int64"
    assert frame["qty"].tolist()[0] == 2**60
    assert frame["qty"].isna().tolist() == [False, True]


def test_the_row_a_write_returns_is_the_row_a_read_gives(db: Any, run: Any) -> None:
    """Create, Update and Delete give their row back as Read gives it (dtypes and values), whether
    its columns are plain (DuckDB reads them as Python values) or not (read as Arrow)."""
    import decimal
    import uuid

    from polars.testing import assert_frame_equal

    @db.model
    class Gauge:
        name: str
        level: float
        count: int
        ok: bool
        day: dt.date
        seen: dt.datetime
        note: Optional[str] = None  # noqa: UP045

    @db.model
    class Ledger:
        amount: decimal.Decimal
        tags: dict
        ref: uuid.UUID

    cases = {
        "Gauge": (
            {"name": "g", "level": 0.5, "count": 3, "ok": True, "day": dt.date(2024, 1, 2),
             "seen": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)},
            {"level": 1.5, "note": "n"},
        ),
        "Ledger": (
            {"amount": decimal.Decimal("12.50"), "tags": {"a": 1}, "ref": uuid.UUID(int=7)},
            {"amount": decimal.Decimal("1.25")},
        ),
    }  # fmt: skip
    for model, (values, change) in cases.items():
        created = run(f"{model}CreateNode", values)
        record = created["id"][0]
        assert_frame_equal(created, run(f"{model}ReadNode", {"id": record}))
        updated = run(f"{model}UpdateNode", {"id": record, **change})
        assert_frame_equal(updated, run(f"{model}ReadNode", {"id": record}))
        assert_frame_equal(run(f"{model}DeleteNode", {"id": record}), updated)
