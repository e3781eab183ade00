"""``db.copy_to(other)`` and ``dataflow-nb copy``: a prototype's tables and history move between backends.

Each test copies DuckDB -> PostgreSQL and PostgreSQL -> DuckDB, so both backends are read from
and written to; the target is a real database that other DataFlows then open.
"""

from __future__ import annotations

import datetime as dt
import decimal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder
from dataflow_nb.exceptions import ConflictError, DatabaseError, DataflowError

SCRIPT = str(Path(sys.executable).with_name("dataflow-nb"))


@pytest.fixture(params=["duckdb->postgres", "postgres->duckdb"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Source and target URLs: a DuckDB file and an isolated PostgreSQL schema, one way or the other."""
    postgres = request.getfixturevalue("postgres_url")
    duckdb = f"duckdb:///{tmp_path / 'prototype.duckdb'}"
    yield (duckdb, postgres) if request.param == "duckdb->postgres" else (postgres, duckdb)


def run_node(db: DataFlow, node: str, params: dict[str, Any], **execute: Any) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node(db.nodes[node], "node", params)
    results, _ = LocalRuntime().execute(workflow.build(), **execute)
    return results["node"]


def define_thing(db: DataFlow) -> None:
    @db.model
    class Thing:
        name: str
        n: int
        x: float
        ok: bool
        when: dt.datetime
        day: dt.date
        at: dt.time
        price: decimal.Decimal
        uid: uuid.UUID
        meta: dict[str, Any]
        tags: list[Any]
        kind: Literal["a", "b"]
        blob: bytes
        note: str | None = None

        __dataflow__ = {"unique": [["name"]]}


def things(count: int) -> list[dict[str, Any]]:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return [
        {
            "name": f"t{i}",
            "n": i,
            "x": i / 3,
            "ok": i % 2 == 0,
            "when": start + dt.timedelta(hours=i),
            "day": dt.date(2024, 1, 1 + i % 28),
            "at": dt.time(1, 2, i % 60),
            "price": decimal.Decimal("1.25") * i,
            "uid": uuid.uuid4(),
            "meta": {"k": i},
            "tags": [i, "x"],
            "kind": "ab"[i % 2],
            "blob": bytes([i % 256, 0]),
            "note": None if i % 3 else f"note {i}",
        }
        for i in range(count)
    ]


def listed(db: DataFlow, model: str = "Thing", **execute: Any) -> pl.DataFrame:
    frame: pl.DataFrame = run_node(db, f"{model}ListNode", {"order_by": ["id"], "limit": 100_000}, **execute)
    return frame


def test_copy_keeps_rows_ids_types_and_history(pair: tuple[str, str]) -> None:
    source_url, target_url = pair
    with DataFlow(source_url) as source, DataFlow(target_url) as target:
        define_thing(source)
        run_node(source, "ThingBulkCreateNode", {"data": things(2_500), "progress": False})
        run_node(source, "ThingDeleteNode", {"id": 7})  # a gap in the ids, which must stay a gap
        source_runs = source.runs()["run_id"].to_list()

        report = source.copy_to(target, progress=False)

        assert report.tables == [("Thing", "things", 2_499)]
        assert report.runs == 2
        assert_frame_equal(listed(target), listed(source))  # same rows, ids and dtypes
        created = run_node(target, "ThingCreateNode", {**things(1)[0], "name": "after the copy"})
        assert created["id"][0] == 2_501  # the id sequence moved past the copied ids
        assert set(source_runs) <= set(target.runs()["run_id"].to_list())
        assert "2,499 rows" in str(report) and "things" in report._repr_html_()


def test_copy_finds_the_models_of_a_database_it_did_not_define(pair: tuple[str, str]) -> None:
    """The CLI's case: a DataFlow with no model classes copies what the migration history holds."""
    source_url, target_url = pair
    with DataFlow(source_url) as source:
        define_thing(source)
        run_node(source, "ThingBulkCreateNode", {"data": things(10), "progress": False})
    with DataFlow(source_url, read_only=True) as source, DataFlow(target_url) as target:
        assert source.models == {}
        report = source.copy_to(target, progress=False, history=False)
        assert report.tables == [("Thing", "things", 10)] and report.runs == 0
        assert target.runs().height == 0  # the history was left behind
        assert listed(target)["name"].to_list() == [f"t{i}" for i in range(10)]


def test_copy_refuses_a_target_that_has_rows_and_changes_nothing(pair: tuple[str, str]) -> None:
    source_url, target_url = pair
    with DataFlow(source_url) as source, DataFlow(target_url) as target:
        define_thing(source)
        define_thing(target)
        run_node(source, "ThingBulkCreateNode", {"data": things(20), "progress": False})
        run_node(target, "ThingCreateNode", {**things(1)[0], "name": "kept"})

        with pytest.raises(ConflictError, match=r"already has rows in things \(1 rows\); nothing was copied"):
            source.copy_to(target, progress=False)
        assert listed(target)["name"].to_list() == ["kept"]

        report = source.copy_to(target, progress=False, replace=True)
        assert report.tables == [("Thing", "things", 20)]
        assert listed(target)["name"].to_list() == [f"t{i}" for i in range(20)]


def test_a_failure_in_a_later_table_rolls_back_the_whole_copy(tmp_path: Path, postgres_url: str) -> None:
    """PostgreSQL refuses a NUL in text that DuckDB keeps: the second table fails, the first is not kept."""
    with DataFlow(f"duckdb:///{tmp_path / 'p.duckdb'}") as source, DataFlow(postgres_url) as target:

        @source.model
        class Airline:
            carrier: str

        @source.model
        class Note:
            text: str

        run_node(source, "AirlineBulkCreateNode", {"data": [{"carrier": "AA"}, {"carrier": "UA"}], "progress": False})
        # Written past the nodes (which refuse a NUL on both backends): a prototype's data can hold one.
        workflow = WorkflowBuilder()
        insert = "INSERT INTO notes (text) VALUES ('a' || chr(0) || 'b')"
        workflow.add_node("SQLQueryNode", "raw", {"sql": insert, "db": source, "allow_writes": True})
        LocalRuntime().execute(workflow.build())

        with pytest.raises(DatabaseError):
            source.copy_to(target, progress=False)
        assert listed(target, "Airline").height == 0
        assert listed(target, "Note").height == 0


def test_copy_moves_every_tenants_rows_and_the_target_keeps_them_apart(pair: tuple[str, str]) -> None:
    source_url, target_url = pair
    with DataFlow(source_url, multi_tenant=True) as source, DataFlow(target_url, multi_tenant=True) as target:

        @source.model
        class Patient:
            name: str

        for tenant, names in (("clinic-a", ["ann", "al"]), ("clinic-b", ["bo"])):
            rows = [{"name": n} for n in names]
            run_node(source, "PatientBulkCreateNode", {"data": rows, "progress": False}, tenant_id=tenant)

        report = source.copy_to(target, progress=False)

        assert report.tables == [("Patient", "patients", 3)]
        assert listed(target, "Patient", tenant_id="clinic-a")["name"].to_list() == ["ann", "al"]
        assert listed(target, "Patient", tenant_id="clinic-b")["name"].to_list() == ["bo"]


def test_copy_names_an_unknown_model() -> None:
    with (
        DataFlow() as source,
        DataFlow() as target,
        pytest.raises(DataflowError, match=r"no model 'Nope'.*models are \[\]"),
    ):
        source.copy_to(target, models=["Nope"])


@pytest.mark.slow  # runs the console script in a new process
def test_cli_copy_moves_a_loaded_file(pair: tuple[str, str], tmp_path: Path) -> None:
    from dataflow_nb import datasets

    source_url, target_url = pair

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SCRIPT, *argv], capture_output=True, text=True, cwd=tmp_path, check=False)

    loaded = cli("load", str(datasets.path("airlines.csv")), "--model", "Airline", "--url", source_url, "--no-progress")
    assert loaded.returncode == 0, loaded.stderr
    copied = cli("copy", source_url, target_url, "--no-progress")
    assert copied.returncode == 0, copied.stderr
    assert "copied 16 rows in 1 table(s) and 1 run(s) of history" in copied.stdout
    again = cli("copy", source_url, target_url, "--no-progress")
    assert again.returncode == 1 and "already has rows in airlines (16 rows)" in again.stderr
    models = cli("models", "--url", target_url)
    assert "Airline: table airlines, 16 rows" in models.stdout, models.stderr


def test_copy_into_a_partitioned_table_puts_each_row_in_its_partition(tmp_path: Path, postgres_url: str) -> None:
    from tests.backends.test_partitions import at, define_event, placement

    with DataFlow(f"duckdb:///{tmp_path / 'p.duckdb'}") as source, DataFlow(postgres_url) as target:
        define_event(source)  # on DuckDB partition_by keeps one plain table
        events = [{"name": n, "kind": "x", "happened_at": at(2025, m)} for n, m in (("a", 1), ("b", 1), ("c", 4))]
        run_node(source, "EventBulkCreateNode", {"data": events, "progress": False})

        assert source.copy_to(target, progress=False).tables == [("Event", "events", 3)]
        assert placement(postgres_url, "events") == {"p202501": 2, "p202504": 1}
