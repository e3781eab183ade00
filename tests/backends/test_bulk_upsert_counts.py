"""BulkUpsert counts inserted, updated and unchanged rows, and leaves unchanged rows as they were.

An unchanged row is not rewritten: its ``updated_at`` and ``version`` stay, and on PostgreSQL it
keeps its row version (same ``xmin`` and ``ctid``: no new version, no dead tuple).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.backends.tenants import runner, tenant_database
from tests.backends.test_bulk import run_nodes


@pytest.fixture
def stock(db: Any) -> Any:
    @db.model
    class Stock:
        sku: str
        qty: int
        note: str | None = None

        __dataflow__ = {"unique": [["sku"]], "versioned": True}

    rows = [{"sku": f"s{i}", "qty": i, "note": "n" if i % 2 else None} for i in range(6)]
    run_nodes(("StockBulkCreateNode", "c", {"data": rows}))
    return Stock


def stored(db: Any) -> dict[str, dict[str, Any]]:
    """Each row by sku: values, updated_at, version and (PostgreSQL) its row version."""
    version_columns = ", xmin::text AS xmin, ctid::text AS ctid" if db.backend.dialect.name == "postgresql" else ""
    connection = db.backend.connect()
    try:
        result = connection.execute_sql(f"SELECT sku, qty, note, updated_at, version{version_columns} FROM stocks")
    finally:
        connection.close()
    assert result is not None
    return {row["sku"]: row for row in result.to_pylist()}


@pytest.mark.parametrize("batch_size", [2, 50_000])
def test_upsert_counts_unchanged_rows_and_does_not_rewrite_them(db: Any, stock: Any, batch_size: int) -> None:
    before = stored(db)
    data = [
        {"sku": "s0", "qty": 0, "note": None},  # equal, a null equal to a null
        {"sku": "s1", "qty": 1, "note": "n"},  # equal
        {"sku": "s2", "qty": 20, "note": None},  # changed
        {"sku": "s3", "qty": 3, "note": None},  # changed: a value to null
        {"sku": "new", "qty": 9, "note": None},  # inserted
    ]
    if batch_size == 2:
        data.append({"sku": "s4", "qty": 99})  # repeats a key: the last row (equal to the stored one) wins
        data.append({"sku": "s4", "qty": 4, "note": None})
    report = run_nodes(("StockBulkUpsertNode", "up", {"data": data, "batch_size": batch_size}))["up"]
    unchanged = 3 if batch_size == 2 else 2
    assert (report.inserted, report.updated, report.unchanged) == (1, 2, unchanged)
    assert report.collapsed == (1 if batch_size == 2 else 0)
    assert report.rows_written == 3
    after = stored(db)
    assert (after["s2"]["qty"], after["s3"]["note"], after["new"]["qty"]) == (20, None, 9)
    same = ["s0", "s1", "s4"] if batch_size == 2 else ["s0", "s1"]
    for sku in same:
        assert after[sku] == before[sku]  # updated_at, version and, on PostgreSQL, xmin and ctid kept
    for sku in ("s2", "s3"):
        assert after[sku]["version"] == before[sku]["version"] + 1
        assert after[sku]["updated_at"] > before[sku]["updated_at"]


def test_upsert_of_named_columns_compares_only_those(db: Any, stock: Any) -> None:
    before = stored(db)
    data = [{"sku": "s1", "qty": 1, "note": "other"}, {"sku": "s2", "qty": 7, "note": None}]
    report = run_nodes(("StockBulkUpsertNode", "up", {"data": data, "update": ["qty"]}))["up"]
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 1)
    assert stored(db)["s1"] == before["s1"]


def test_upsert_brings_back_a_soft_deleted_row_with_equal_values(db: Any) -> None:
    @db.model
    class Tag:
        code: str
        label: str

        __dataflow__ = {"unique": [["code"]], "soft_delete": True}

    run_nodes(("TagBulkCreateNode", "c", {"data": [{"code": "a", "label": "A"}, {"code": "b", "label": "B"}]}))
    run_nodes(("TagBulkDeleteNode", "d", {"filter": {"code": "a"}}))
    data = [{"code": "a", "label": "A"}, {"code": "b", "label": "B"}]
    report = run_nodes(("TagBulkUpsertNode", "up", {"data": data}))["up"]
    assert (report.inserted, report.updated, report.unchanged) == (1, 0, 1)
    assert run_nodes(("TagCountNode", "n", {}))["n"] == 2


def test_upsert_on_id_of_a_tenant_counts_unchanged_rows(backend_url: str | None) -> None:
    with tenant_database(backend_url) as db:
        run = runner(db)
        run("acme", "CustomerBulkCreateNode", {"data": [{"name": "a", "email": "a@x", "secret": "s"}] * 1})
        run("acme", "CustomerBulkCreateNode", {"data": [{"name": "b", "email": "b@x", "secret": "s"}]})
        ids = {r["email"]: r["id"] for r in run("acme", "CustomerListNode", {}).to_dicts()}
        data = [
            {"id": ids["a@x"], "name": "a", "email": "a@x", "secret": "s"},
            {"id": ids["b@x"], "name": "B", "email": "b@x", "secret": "s"},
            {"id": 1000, "name": "c", "email": "c@x", "secret": "s"},
        ]
        report = run("acme", "CustomerBulkUpsertNode", {"data": data, "conflict_on": ["id"], "progress": False})
        assert (report.inserted, report.updated, report.unchanged) == (1, 1, 1)


def test_every_report_count_is_explained_in_its_html(db: Any, stock: Any) -> None:
    from dataflow_nb.bulk.report import MEANINGS

    report = run_nodes(("StockBulkUpsertNode", "up", {"data": [{"sku": "s1", "qty": 1, "note": "n"}]}))["up"]
    page = report._repr_html_()
    assert set(report.as_dict()) == set(MEANINGS)
    for name, meaning in MEANINGS.items():
        assert f"<td>{name}</td>" in page
        assert meaning.replace("'", "&#x27;") in page
    assert "unchanged" in repr(report)
