"""Every statement of a bulk node passes the run context: the monitor sees each one, with its rows.

The slow-query threshold is 0, so the log holds every statement a node ran, in order, with the
rows it returned or changed: staging DDL, the COPY/ingest, the counts and the final write.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import polars as pl
import pytest

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder, WorkflowError

ROWS = 1_001


@pytest.fixture
def mdb(backend_url: str | None) -> Iterator[DataFlow]:
    flow = DataFlow(backend_url, monitoring=True, slow_query_threshold=0.0)

    @flow.model
    class Part:
        sku: str
        qty: int
        tag: Optional[uuid.UUID] = None  # noqa: UP045

        __dataflow__ = {"unique": [["sku"]]}

    yield flow
    flow.close()


def statements(db: DataFlow, node_type: str, params: dict[str, Any]) -> list[tuple[str, int]]:
    """Run one node; the (kind of statement, rows) the monitor logged for it."""
    monitor = db.get_monitor()
    monitor.reset()
    workflow = WorkflowBuilder()
    workflow.add_node(db.nodes[node_type], "node", {"progress": False, **params} if "Bulk" in node_type else params)
    LocalRuntime().execute(workflow.build())
    log = monitor.slow_queries()
    assert set(log["node_id"].to_list()) == {"node"}
    assert monitor.get_metrics()["queries"] == log.height
    assert monitor.get_metrics()["rows"] == sum(log["rows"].to_list())
    return [(_kind(sql), rows) for sql, rows in zip(log["sql"].to_list(), log["rows"].to_list(), strict=True)]


def _kind(sql: str) -> str:
    words = sql.split()
    if words[0] == "CREATE":
        return "CREATE TEMPORARY TABLE"
    if words[0] == "COPY":
        return "COPY stage" if words[1].startswith("dataflow_stage_") else f"COPY {words[1]}"
    if words[0] == "WITH" and "ON CONFLICT" in sql:
        return "WITH ... ON CONFLICT"
    if words[0] == "INSERT":
        return "INSERT ... ON CONFLICT" if "ON CONFLICT" in sql else "INSERT ... SELECT"
    if words[0] in ("UPDATE", "DELETE") and ("FROM" in words[2:] or "USING" in words):
        return f"{words[0]} ... {'FROM' if words[0] == 'UPDATE' else 'USING'}"
    return " ".join(words[:2])


def load(db: DataFlow) -> list[int]:
    data = [{"sku": f"s{i}", "qty": i} for i in range(ROWS)]
    assert statements(db, "PartBulkCreateNode", {"data": data}) == [("COPY parts", ROWS)]
    assert statements(db, "PartListNode", {"limit": ROWS}) == [("SELECT parts.id,", ROWS)]
    workflow = WorkflowBuilder()
    workflow.add_node(db.nodes["PartListNode"], "all", {"limit": ROWS})
    return list(LocalRuntime().execute(workflow.build())[0]["all"]["id"].to_list())


def test_bulk_create_counts_the_ingested_rows(mdb: DataFlow) -> None:
    load(mdb)
    tagged = [{"sku": f"t{i}", "qty": i, "tag": uuid.uuid4()} for i in range(3)]
    logged = statements(mdb, "PartBulkCreateNode", {"data": tagged})
    if mdb.backend.capabilities.name == "postgresql":  # binary COPY cannot take UUID text: staged, cast in SQL
        assert logged == [
            ("CREATE TEMPORARY TABLE", 0),
            ("COPY stage", 3),
            ("INSERT ... SELECT", 3),
            ("DROP TABLE", 0),
        ]
    else:
        assert logged == [("COPY parts", 3)]


def test_bulk_create_from_a_file_counts_what_the_database_reads(mdb: DataFlow, tmp_path: Path) -> None:
    path = tmp_path / "parts.csv"
    path.write_text("sku,qty\n" + "".join(f"f{i},{i}\n" for i in range(5)))
    logged = statements(mdb, "PartBulkCreateNode", {"source": str(path)})
    if mdb.backend.load_rules.reads_files:  # DuckDB reads the file's first rows, then its typed rows stream
        assert logged == [('SELECT "sku"', 5), ("COPY parts", 5)]
    else:
        assert logged == [("COPY parts", 5)]
    parquet = tmp_path / "parts.parquet"
    pl.DataFrame({"sku": [f"p{i}" for i in range(4)], "qty": list(range(4))}).write_parquet(parquet)
    logged = statements(mdb, "PartBulkCreateNode", {"source": str(parquet)})
    if mdb.backend.load_rules.reads_files:  # DuckDB reads a Parquet file itself, inside one INSERT
        assert logged == [("INSERT ... SELECT", 4)]
    else:
        assert logged == [("COPY parts", 4)]


def test_bulk_update_by_filter_records_every_changed_row(mdb: DataFlow) -> None:
    load(mdb)
    logged = statements(mdb, "PartBulkUpdateNode", {"filter": {"qty": {"$gte": 0}}, "fields": {"qty": -1}})
    assert logged == [("UPDATE parts", ROWS)]


def test_bulk_update_by_ids_counts_staging_and_update(mdb: DataFlow) -> None:
    ids = load(mdb)
    changes = [{"id": i, "qty": 7} for i in ids[:10]]
    assert statements(mdb, "PartBulkUpdateNode", {"data": changes}) == [
        ("CREATE TEMPORARY TABLE", 0),
        ("COPY stage", 10),
        ("SELECT (SELECT", 1),  # input rows and distinct ids, in one query
        ("SELECT latest.__row,", 0),  # ids matching nothing
        ("UPDATE ... FROM", 10),
        ("DROP TABLE", 0),
    ]


def test_bulk_upsert_counts_the_insert_on_conflict(mdb: DataFlow) -> None:
    load(mdb)
    data = [{"sku": "s0", "qty": 5}, {"sku": "new", "qty": 6}]
    logged = statements(mdb, "PartBulkUpsertNode", {"data": data, "conflict_on": ["sku"]})
    # PostgreSQL: the upsert's RETURNING tells inserted from updated.
    if mdb.backend.capabilities.name == "postgresql":
        assert logged == [
            ("CREATE TEMPORARY TABLE", 0),
            ("COPY stage", 2),
            ("WITH ... ON CONFLICT", 1),
            ("DROP TABLE", 0),
        ]
    else:
        assert logged == [
            ("CREATE TEMPORARY TABLE", 0),
            ("COPY stage", 2),
            ("SELECT (SELECT", 1),
            ("INSERT ... ON CONFLICT", 2),
            ("DROP TABLE", 0),
        ]


def test_bulk_delete_by_filter_and_by_ids(mdb: DataFlow) -> None:
    ids = load(mdb)
    assert statements(mdb, "PartBulkDeleteNode", {"filter": {"qty": {"$lt": 500}}}) == [("DELETE FROM", 500)]
    assert statements(mdb, "PartBulkDeleteNode", {"data": [{"id": i} for i in ids[500:503]]}) == [
        ("CREATE TEMPORARY TABLE", 0),
        ("COPY stage", 3),
        ("SELECT (SELECT", 1),
        ("SELECT latest.__row,", 0),
        ("DELETE ... USING", 3),
        ("DROP TABLE", 0),
    ]


def test_a_failed_bulk_write_is_logged_without_its_values(mdb: DataFlow) -> None:
    load(mdb)
    monitor = mdb.get_monitor()
    monitor.reset()
    workflow = WorkflowBuilder()
    workflow.add_node(mdb.nodes["PartBulkCreateNode"], "node", {"data": [{"sku": "s1", "qty": 1}], "progress": False})
    with pytest.raises(WorkflowError, match="sku"):
        LocalRuntime().execute(workflow.build())
    assert monitor.get_metrics()["failed_queries"] == 1
    (error,) = monitor.slow_queries()["error"].to_list()
    assert error.startswith("UniqueViolation") and "sku" in error
    assert "s1" not in error, error


def test_a_failed_statement_is_logged_without_the_failing_row(mdb: DataFlow) -> None:
    monitor = mdb.get_monitor()
    workflow = WorkflowBuilder()
    sql = "INSERT INTO parts (sku, qty, created_at, updated_at) VALUES ('secret-sku', NULL, now(), now())"
    workflow.add_node("SQLQueryNode", "node", {"db": mdb, "sql": sql})
    with pytest.raises(WorkflowError, match="qty"):
        LocalRuntime().execute(workflow.build())
    (error,) = monitor.slow_queries()["error"].to_list()
    assert "qty" in error and "secret-sku" not in error, error
