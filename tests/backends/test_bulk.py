"""The four bulk nodes on every backend: types, frames, upsert keys, counts and reports."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any, Optional

import pandas as pd
import polars as pl
import pytest

from dataflow_nb import LocalRuntime, NotFoundError, ValidationError, WorkflowBuilder, WorkflowError
from dataflow_nb.bulk import BulkReport
from tests.conftest import model_fixtures, shared

BERLIN = dt.timezone(dt.timedelta(hours=2))


def add_items(db: Any) -> Any:
    @db.model
    class Item:
        sku: str
        qty: int
        price: Optional[Decimal] = None  # noqa: UP045
        big: Optional[int] = None  # noqa: UP045
        at: Optional[dt.datetime] = None  # noqa: UP045
        tag: Optional[uuid.UUID] = None  # noqa: UP045
        meta: Optional[dict] = None  # noqa: UP045
        note: str = "none"

        __dataflow__ = {"unique": [["sku"]]}

    return Item


items, class_items = model_fixtures("items", add_items)


def run_nodes(*nodes: tuple[str, str, dict[str, Any]]) -> Any:
    workflow = WorkflowBuilder()
    for node_type, node_id, params in nodes:
        workflow.add_node(node_type, node_id, {"progress": False, **params} if "Bulk" in node_type else params)
    return LocalRuntime().execute(workflow.build())[0]


def listed(*, order: str = "sku") -> list[dict[str, Any]]:
    return run_nodes(("ItemListNode", "all", {"order_by": order}))["all"].to_dicts()


TAG = uuid.UUID("12345678-1234-5678-1234-567812345678")
ROWS = [
    {
        "sku": "a",
        "qty": 1,
        "price": Decimal("12345678901234567890.123456789"),
        "big": 2**53 + 1,
        "at": dt.datetime(2024, 7, 1, 14, 30, 15, 123456, tzinfo=BERLIN),
        "tag": TAG,
        "meta": {"k": [1, None, "x"]},
    },
    {"sku": "b", "qty": 2, "price": None, "big": None, "at": None, "tag": None, "meta": None},
]


def check_stored_rows() -> None:
    rows = listed()
    assert [r["sku"] for r in rows] == ["a", "b"]
    a, b = rows
    assert a["price"] == Decimal("12345678901234567890.123456789")
    assert a["big"] == 2**53 + 1 and b["big"] is None
    assert a["at"] == dt.datetime(2024, 7, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    assert a["tag"] == str(TAG) and a["meta"] == '{"k": [1, null, "x"]}'  # polars: UUID and JSON as text
    assert a["note"] == "none" and a["id"] is not None and a["created_at"].tzinfo is not None


def test_bulk_create_from_a_list_of_dicts_keeps_every_type(items: Any) -> None:
    report = run_nodes(("ItemBulkCreateNode", "load", {"data": ROWS}))["load"]
    assert isinstance(report, BulkReport)
    assert (report.rows_written, report.inserted, report.rows_rejected) == (2, 2, 0)
    check_stored_rows()


def test_bulk_create_from_polars_and_pandas(items: Any) -> None:
    frame = pl.DataFrame(
        {
            "sku": ["a", "b"],
            "qty": [1, 2],
            "price": ["12345678901234567890.123456789", None],
            "big": [2**53 + 1, None],
            "at": ["2024-07-01T14:30:15.123456+02:00", None],
            "tag": [str(TAG), None],
            "meta": ['{"k": [1, null, "x"]}', None],
        }
    )
    run_nodes(("ItemBulkCreateNode", "load", {"data": frame}))
    check_stored_rows()
    pandas_frame = pd.DataFrame(
        {
            "sku": ["c"],
            "qty": pd.array([3], dtype="Int64"),
            "big": pd.array([None], dtype="Int64"),
            "at": pd.to_datetime(["2024-01-01T00:00:00Z"]),
        }
    )
    report = run_nodes(("ItemBulkCreateNode", "load", {"data": pandas_frame}))["load"]
    assert report.inserted == 1
    assert listed()[2]["at"] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_bulk_upsert_on_a_unique_column_updates_only_named_columns(items: Any) -> None:
    run_nodes(
        ("ItemBulkCreateNode", "load", {"data": [{"sku": "a", "qty": 1, "note": "keep"}, {"sku": "b", "qty": 2}]})
    )
    data = [
        {"sku": "a", "qty": 10, "note": "changed"},
        {"sku": "c", "qty": 3, "note": "new"},
        {"sku": "a", "qty": 11, "note": "changed"},
        {"sku": "c", "qty": 4, "note": "newer"},
    ]
    report = run_nodes(("ItemBulkUpsertNode", "up", {"data": data, "update": ["qty"]}))["up"]
    assert (report.inserted, report.updated, report.collapsed, report.rows_written) == (1, 1, 2, 2)
    assert [(r["sku"], r["qty"], r["note"]) for r in listed()] == [
        ("a", 11, "keep"),
        ("b", 2, "none"),
        ("c", 4, "newer"),
    ]


class TestLastRowWins:
    """One Item table per database for the class, emptied after each test."""

    items = shared("items", empty=("Item",))

    @pytest.mark.parametrize("batch_size", [1, 2, 50_000])
    def test_bulk_upsert_last_row_of_a_key_wins_across_batches(self, items: Any, batch_size: int) -> None:
        # A key repeated in another batch: the hashes kept while streaming see it, so the last row wins.
        run_nodes(("ItemBulkCreateNode", "load", {"data": [{"sku": "a", "qty": 1}]}))
        data = [{"sku": "a", "qty": 10}, {"sku": "b", "qty": 2}, {"sku": "c", "qty": 3}, {"sku": "a", "qty": 12}]
        report = run_nodes(("ItemBulkUpsertNode", "up", {"data": data, "batch_size": batch_size}))["up"]
        assert (report.inserted, report.updated, report.collapsed) == (2, 1, 1)
        assert [(r["sku"], r["qty"]) for r in listed()] == [("a", 12), ("b", 2), ("c", 3)]
        unique = [{"sku": "a", "qty": 13}, {"sku": "d", "qty": 4}]
        report = run_nodes(("ItemBulkUpsertNode", "up", {"data": unique, "batch_size": batch_size}))["up"]
        assert (report.inserted, report.updated, report.collapsed) == (1, 1, 0)
        assert [(r["sku"], r["qty"]) for r in listed()] == [("a", 13), ("b", 2), ("c", 3), ("d", 4)]


def test_bulk_upsert_on_the_primary_key(items: Any) -> None:
    run_nodes(("ItemBulkCreateNode", "load", {"data": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]}))
    ids = {r["sku"]: r["id"] for r in listed()}
    data = [{"id": ids["a"], "sku": "a", "qty": 100}, {"id": 50, "sku": "z", "qty": 5}]
    report = run_nodes(("ItemBulkUpsertNode", "up", {"data": data, "conflict_on": ["id"]}))["up"]
    assert (report.inserted, report.updated) == (1, 1)
    created = run_nodes(("ItemCreateNode", "c", {"sku": "after", "qty": 1}))["c"]
    assert created["id"][0] > 50  # the sequence moved past the explicit id
    assert [(r["sku"], r["qty"]) for r in listed()] == [("a", 100), ("after", 1), ("b", 2), ("z", 5)]


def test_bulk_upsert_null_key_is_a_bad_row(items: Any) -> None:
    with pytest.raises(WorkflowError, match=r"row 2, column 'sku': value None"):
        run_nodes(("ItemBulkUpsertNode", "up", {"data": [{"sku": "a", "qty": 1}, {"sku": None, "qty": 2}]}))


def test_bulk_update_by_filter_and_by_ids(items: Any) -> None:
    run_nodes(
        ("ItemBulkCreateNode", "load", {"data": [{"sku": s, "qty": q} for s, q in [("a", 1), ("b", 2), ("c", 3)]]})
    )
    before = {r["sku"]: r for r in listed()}
    report = run_nodes(("ItemBulkUpdateNode", "u", {"filter": {"qty": {"$gte": 2}}, "fields": {"note": "big"}}))["u"]
    assert report.updated == 2
    frame = pl.DataFrame({"id": [before["a"]["id"], before["c"]["id"], before["a"]["id"]], "qty": [7, 9, 8]})
    report = run_nodes(("ItemBulkUpdateNode", "u", {"data": frame}))["u"]
    assert (report.updated, report.collapsed) == (2, 1)
    after = {r["sku"]: r for r in listed()}
    assert [(s, after[s]["qty"], after[s]["note"]) for s in "abc"] == [
        ("a", 8, "none"),
        ("b", 2, "big"),
        ("c", 9, "big"),
    ]
    assert after["a"]["updated_at"] >= before["a"]["updated_at"]
    assert after["a"]["created_at"] == before["a"]["created_at"]


def test_bulk_update_with_an_unknown_id(items: Any) -> None:
    run_nodes(("ItemBulkCreateNode", "load", {"data": [{"sku": "a", "qty": 1}]}))
    with pytest.raises(WorkflowError) as info:
        run_nodes(("ItemBulkUpdateNode", "u", {"data": [{"id": 999, "qty": 2}]}))
    assert isinstance(info.value.__cause__, NotFoundError)
    report = run_nodes(("ItemBulkUpdateNode", "u", {"data": [{"id": 999, "qty": 2}], "on_error": "quarantine"}))["u"]
    assert (report.updated, report.rows_rejected) == (0, 1)
    assert report.rejected["reason"].to_list() == ["id: no Item with id 999"]


def test_bulk_delete_by_filter_ids_and_all(items: Any) -> None:
    run_nodes(
        (
            "ItemBulkCreateNode",
            "load",
            {"data": [{"sku": s, "qty": q} for s, q in [("a", 1), ("b", 2), ("c", 3), ("d", 4)]]},
        )
    )
    ids = {r["sku"]: r["id"] for r in listed()}
    assert run_nodes(("ItemBulkDeleteNode", "d", {"filter": {"qty": {"$gt": 3}}}))["d"].deleted == 1
    assert run_nodes(("ItemBulkDeleteNode", "d", {"data": [{"id": ids["a"]}]}))["d"].deleted == 1
    with pytest.raises(ValidationError, match=r"empty filter would touch every row"):
        run_nodes(("ItemBulkDeleteNode", "d", {"filter": {}}))
    assert run_nodes(("ItemBulkDeleteNode", "d", {"filter": {"all": True}}))["d"].deleted == 2
    assert listed() == []


def test_report_has_batches_and_html(items: Any) -> None:
    data = [{"sku": f"s{i}", "qty": i} for i in range(25)]
    report = run_nodes(("ItemBulkCreateNode", "load", {"data": data, "batch_size": 10}))["load"]
    assert report.batches["rows"].to_list() == [10, 10, 5]
    assert report.as_dict()["batches"] == 3
    assert "rows_written" in report._repr_html_()
    assert report["inserted"] == 25


class TestRefusedLoads:
    """Loads refused before a row is written: the class shares one Item table per database."""

    items = shared("items")

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"data": [{"sku": "a", "qty": 1}], "on_error": "ignore"}, "on_error='ignore'"),
            ({"data": [{"sku": "a", "qty": 1}], "batch_size": 0}, "batch_size must be a positive int"),
            ({"data": [{"sku": "a", "qty": 1}], "source": "x.csv"}, "not both"),
            ({"data": [{"sku": "a", "qty": 1, "colour": "red"}]}, r"column\(s\) \['colour'\] that Item does not have"),
            ({"data": [{"qty": 1}]}, r"no column for required field\(s\) \['sku'\]"),
            ({"data": "not a frame"}, "data of type str is not supported"),
            ({"source": "missing.parquet"}, "file not found"),
        ],
    )
    def test_bad_parameters_are_clear(self, items: Any, params: dict[str, Any], message: str) -> None:
        with pytest.raises((ValidationError, WorkflowError), match=message):
            run_nodes(("ItemBulkCreateNode", "load", params))
        assert listed() == []


def test_bulk_paths_keep_soft_delete_and_versions(db: Any) -> None:
    @db.model
    class Doc:
        title: str
        code: str

        __dataflow__ = {"soft_delete": True, "versioned": True, "unique": [["code"]]}

    def docs(**params: Any) -> list[tuple[str, int, bool]]:
        frame = run_nodes(("DocListNode", "all", {"order_by": "code", **params}))["all"]
        return list(
            zip(
                frame["code"].to_list(),
                frame["version"].to_list(),
                frame["deleted_at"].is_not_null().to_list(),
                strict=True,
            )
        )

    run_nodes(("DocBulkCreateNode", "c", {"data": [{"title": t, "code": t} for t in "abc"]}))
    run_nodes(("DocBulkUpdateNode", "u", {"filter": {"code": {"$in": ["a", "b"]}}, "fields": {"title": "x"}}))
    run_nodes(("DocBulkUpsertNode", "up", {"data": [{"title": "y", "code": "a"}]}))
    assert run_nodes(("DocBulkDeleteNode", "d", {"filter": {"code": "b"}}))["d"].deleted == 1
    assert docs() == [("a", 3, False), ("c", 1, False)]
    assert docs(include_deleted=True) == [("a", 3, False), ("b", 3, True), ("c", 1, False)]
    run_nodes(("DocBulkUpsertNode", "up", {"data": [{"title": "back", "code": "b"}]}))  # brings b back
    assert docs() == [("a", 3, False), ("b", 4, False), ("c", 1, False)]
    assert run_nodes(("DocBulkDeleteNode", "d", {"filter": {"all": True}, "hard": True}))["d"].deleted == 3
    assert docs(include_deleted=True) == []


def test_bulk_unique_violation_names_the_key(items: Any) -> None:
    from dataflow_nb import ConflictError

    run_nodes(("ItemBulkCreateNode", "c", {"data": [{"sku": "a", "qty": 1}]}))
    with pytest.raises(WorkflowError) as info:
        run_nodes(("ItemBulkCreateNode", "c", {"data": [{"sku": "b", "qty": 1}, {"sku": "a", "qty": 2}]}))
    assert isinstance(info.value.__cause__, ConflictError)
    assert "sku" in str(info.value)
    assert [r["sku"] for r in listed()] == ["a"]
