"""``__dataflow__['partition_by']``: every node, filter and migration on a partitioned model, on every
backend (DuckDB keeps one plain table); where PostgreSQL puts the rows; the spellings it refuses."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import polars as pl
import pytest

from dataflow_nb import DataFlow, LocalRuntime, SchemaError, ValidationError, WorkflowBuilder, WorkflowError
from tests.conftest import shared
from tests.helpers import rows_of

UTC = dt.UTC
MONTHLY = ("range", "happened_at", "month")


def at(year: int, month: int, day: int = 3) -> dt.datetime:
    return dt.datetime(year, month, day, 12, tzinfo=UTC)


def define_event(db: DataFlow, **extra: Any) -> Any:
    @db.model
    class Event:
        name: str
        kind: str
        happened_at: dt.datetime

        __dataflow__ = {"partition_by": MONTHLY, "unique": [["name", "happened_at"]], **extra}

    return Event


def execute(*nodes: tuple[Any, str, dict[str, Any]], tenant_id: str | None = None) -> Any:
    workflow = WorkflowBuilder()
    for node_type, node_id, params in nodes:
        workflow.add_node(node_type, node_id, params)
    results, _ = LocalRuntime().execute(workflow.build(), tenant_id=tenant_id)
    return results


def placement(url: str, table: str) -> dict[str, int]:
    """PostgreSQL: rows per partition of ``table`` (the partition's name without the table's)."""
    with DataFlow(url) as db:
        found = execute(
            (
                "SQLQueryNode",
                "q",
                {"sql": f"SELECT tableoid::regclass::text AS part, count(*) AS n FROM {table} GROUP BY 1", "db": db},
            )
        )["q"]
    return {row["part"].removeprefix(f"{table}_"): row["n"] for row in found.to_dicts()}


def partitions(url: str, table: str) -> list[str]:
    with DataFlow(url) as db:
        found = execute(
            (
                "SQLQueryNode",
                "q",
                {
                    "sql": "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    f"WHERE i.inhparent = '{table}'::regclass ORDER BY 1",
                    "db": db,
                },
            )
        )["q"]
    return [name.removeprefix(f"{table}_") for name in found["name"].to_list()]


def test_the_eleven_nodes_and_their_filters_work_on_a_partitioned_model(db: DataFlow, run: Any) -> None:
    define_event(db)
    first = run("EventCreateNode", {"name": "a", "kind": "x", "happened_at": at(2025, 1)})["id"][0]
    assert rows_of(run("EventReadNode", {"id": first}), ["name", "kind"]) == [{"name": "a", "kind": "x"}]
    # An update that moves the record to another month moves it to that month's partition.
    run("EventUpdateNode", {"id": first, "kind": "y", "happened_at": at(2025, 2)})
    run("EventUpsertNode", {"name": "a", "kind": "z", "happened_at": at(2025, 2)})  # the same record
    run("EventUpsertNode", {"name": "b", "kind": "z", "happened_at": at(2025, 3)})  # a new one
    loaded = pl.DataFrame(
        {"name": ["c", "d", "e"], "kind": ["x", "x", "x"], "happened_at": [at(2025, 3), at(2025, 4), at(2025, 5)]}
    )
    assert run("EventBulkCreateNode", {"data": loaded}).rows_written == 3
    upserted = pl.DataFrame({"name": ["c", "f"], "kind": ["u", "u"], "happened_at": [at(2025, 3), at(2025, 6)]})
    report = run("EventBulkUpsertNode", {"data": upserted, "conflict_on": ["name", "happened_at"]})
    assert (report.inserted, report.updated) == (1, 1)
    assert run("EventBulkUpdateNode", {"filter": {"name": {"$in": ["d", "e"]}}, "fields": {"kind": "w"}}).updated == 2
    assert run("EventCountNode", {"filter": {"happened_at": {"$gte": at(2025, 3, 1)}}}) == 5
    between = {"happened_at": {"$between": [at(2025, 3, 1), at(2025, 4, 30)]}}
    listed = run("EventListNode", {"filter": between, "order_by": ["name"]})
    assert rows_of(listed, ["name", "kind"]) == [
        {"name": "b", "kind": "z"},
        {"name": "c", "kind": "u"},
        {"name": "d", "kind": "w"},
    ]
    run("EventDeleteNode", {"id": first})
    assert run("EventBulkDeleteNode", {"filter": {"kind": "w"}}).deleted == 2
    remaining = run("EventListNode", {"order_by": ["happened_at"]})
    assert rows_of(remaining, ["name", "kind", "happened_at"]) == [
        {"name": "b", "kind": "z", "happened_at": at(2025, 3)},
        {"name": "c", "kind": "u", "happened_at": at(2025, 3)},
        {"name": "f", "kind": "u", "happened_at": at(2025, 6)},
    ]


def test_a_migration_adds_a_column_to_a_partitioned_table(db: DataFlow, run: Any) -> None:
    define_event(db)
    run("EventCreateNode", {"name": "a", "kind": "x", "happened_at": at(2025, 1)})

    @db.model
    class Event:
        name: str
        kind: str
        happened_at: dt.datetime
        note: Optional[str] = None  # noqa: UP045 - a new nullable column: a safe change

        __dataflow__ = {"partition_by": MONTHLY, "unique": [["name", "happened_at"]]}

    run("EventCreateNode", {"name": "b", "kind": "x", "note": "hi", "happened_at": at(2025, 2)})
    listed = run("EventListNode", {"order_by": ["name"]})
    assert rows_of(listed, ["name", "note"]) == [{"name": "a", "note": None}, {"name": "b", "note": "hi"}]
    assert db.migration_history()["operation"].to_list()[-1] == "add column"
    assert db.migration_plan().height == 0  # the partitioned table matches the model: nothing left to do


def test_rows_go_to_their_months_partition_created_in_the_writing_run(postgres_url: str) -> None:
    with DataFlow(postgres_url) as db:
        define_event(db)
        assert partitions(postgres_url, "events") == ["default"]
        loaded = pl.DataFrame(
            {"name": ["a", "b", "c"], "kind": ["x"] * 3, "happened_at": [at(2025, 1), at(2025, 1, 31), at(2025, 3)]}
        )
        execute((db.nodes["EventBulkCreateNode"], "load", {"data": loaded}))
        assert placement(postgres_url, "events") == {"p202501": 2, "p202503": 1}
        # A failed run creates no partition: they are made in the run's own transaction.
        late = pl.DataFrame({"name": ["d"], "kind": ["x"], "happened_at": [at(2025, 7)]})
        with pytest.raises(WorkflowError):
            execute(
                (db.nodes["EventBulkCreateNode"], "load", {"data": late}),
                (db.nodes["EventCreateNode"], "twice", {"name": "a", "kind": "x", "happened_at": at(2025, 1)}),
            )
        assert partitions(postgres_url, "events") == ["default", "p202501", "p202503"]
        # An update into a month without a partition: the row moves there, into a new partition.
        first = db.nodes["EventListNode"]
        found = execute((first, "l", {"filter": {"name": "c"}}))["l"]
        execute((db.nodes["EventUpdateNode"], "u", {"id": found["id"][0], "happened_at": at(2026, 12)}))
        assert placement(postgres_url, "events") == {"p202501": 2, "p202612": 1}


def test_list_partitions_hold_one_tenant_each_and_tenants_stay_apart(postgres_url: str) -> None:
    with DataFlow(postgres_url, multi_tenant=True) as db:

        @db.model
        class Account:
            email: str

            __dataflow__ = {"partition_by": ("list", "tenant_id"), "unique": [["email"]]}

        for tenant in ("acme", "globex"):
            execute((db.nodes["AccountCreateNode"], "c", {"email": f"boss@{tenant}.io"}), tenant_id=tenant)
        execute((db.nodes["AccountCreateNode"], "c", {"email": "boss@globex.io"}), tenant_id="acme")
        seen = execute((db.nodes["AccountListNode"], "l", {"order_by": ["email"]}), tenant_id="acme")["l"]
        assert seen["email"].to_list() == ["boss@acme.io", "boss@globex.io"]
        counts = placement(postgres_url, "accounts")
        assert sorted(counts.values()) == [1, 2]
        assert [name.split("_")[0] for name in sorted(counts)] == ["acme", "globex"]


def test_a_plain_table_does_not_turn_partitioned_in_place(postgres_url: str) -> None:
    with DataFlow(postgres_url) as db:

        @db.model
        class Event:
            name: str
            happened_at: dt.datetime

        with pytest.raises(SchemaError, match=r"table 'events' is plain, and the class asks for a partitioned one"):

            @db.model
            class Event:  # type: ignore[no-redef]
                name: str
                happened_at: dt.datetime

                __dataflow__ = {"partition_by": MONTHLY}


class TestBadSpellings:
    """Each spelling is refused before anything is made: the class shares one DataFlow per database."""

    db = shared("db")

    @pytest.mark.parametrize(
        ("spelling", "message"),
        [
            (("range", "nope", "month"), r"names unknown field 'nope'"),
            (("hash", "happened_at"), r"unknown strategy 'hash'"),
            (("range", "happened_at", "fortnight"), r"unknown interval 'fortnight' for field 'happened_at'"),
            (("range", "name", "month"), r"ranges over field 'name' of type str"),
            (("range", "happened_at"), r"for 'range' takes \('range', field, interval\)"),
            (("list", "note"), r"partitions by field 'note', which is Optional"),
            ("happened_at", r"takes \('range', 'created_at', 'month'\)"),
        ],
    )
    def test_bad_spellings_name_the_field(self, db: DataFlow, spelling: Any, message: str) -> None:
        with pytest.raises(ValidationError, match=message):

            @db.model
            class Log:
                name: str
                note: Optional[str] = None  # noqa: UP045
                happened_at: dt.datetime

                __dataflow__ = {"partition_by": spelling}


def test_a_unique_key_without_the_partition_column_is_refused_with_the_fix(db: DataFlow) -> None:
    with pytest.raises(SchemaError, match=r"unique key \['email'\] does not include the partition column"):

        @db.model
        class Member:
            email: str
            happened_at: dt.datetime

            __dataflow__ = {"partition_by": MONTHLY, "unique": [["email"]]}


def test_an_upsert_on_id_is_refused_on_a_partitioned_model(db: DataFlow, run: Any) -> None:
    define_event(db)
    rows = pl.DataFrame({"id": [1], "name": ["a"], "kind": ["x"], "happened_at": [at(2025, 1)]})
    with pytest.raises(ValidationError, match=r"conflict_on=\['id'\] cannot match rows of Event"):
        run("EventBulkUpsertNode", {"data": rows, "conflict_on": ["id"]})
