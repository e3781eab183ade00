"""CSV (plain, gzip, globs) and Parquet through reader nodes and ``source=``; models from files."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dataflow_nb import LocalRuntime, ValidationError, WorkflowBuilder, WorkflowError
from dataflow_nb.bulk.sources import BatchSource

CSV = (
    "carrier,flight,dep_delay,departed,cancelled,note\n"
    "AA,1,3.5,2024-01-01T10:00:00Z,false,\n"
    'BA,2,,2024-01-01 11:00:00+01:00,true,""\n'
)


def flights_frame(rows: int = 10) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "carrier": [["AA", "BA", "LH"][i % 3] for i in range(rows)],
            "flight": list(range(rows)),
            "dep_delay": [None if i % 4 == 0 else float(i) for i in range(rows)],
            "departed": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i) for i in range(rows)],
            "cancelled": [i % 5 == 0 for i in range(rows)],
        }
    )


@pytest.fixture
def flights(db: Any) -> Any:
    @db.model
    class Flight:
        carrier: str
        flight: int
        dep_delay: float | None
        departed: dt.datetime
        cancelled: bool
        note: str | None = None

    return Flight


def run(*nodes: tuple[Any, str, dict[str, Any]], connect: list[tuple[str, str, str, str]] = ()) -> Any:
    workflow = WorkflowBuilder()
    for node_type, node_id, params in nodes:
        workflow.add_node(node_type, node_id, params)
    for connection in connect:
        workflow.add_connection(*connection)
    return LocalRuntime().execute(workflow.build())[0]


def listed() -> list[dict[str, Any]]:
    return run(("FlightListNode", "all", {"order_by": "flight"}))["all"].to_dicts()


@pytest.mark.parametrize("name", ["flights.csv", "flights.csv.gz"])
def test_csv_source_casts_text_to_the_model(flights: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(CSV)
    else:
        path.write_text(CSV)
    report = run(("FlightBulkCreateNode", "load", {"source": str(path), "progress": False}))["load"]
    assert report.inserted == 2
    rows = listed()
    assert [(r["carrier"], r["dep_delay"], r["cancelled"], r["note"]) for r in rows] == [
        ("AA", 3.5, False, None),
        ("BA", None, True, ""),
    ]
    assert rows[1]["departed"] == dt.datetime(2024, 1, 1, 10, 0, tzinfo=dt.UTC)


def test_csv_bad_value_is_reported_with_its_row(flights: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(CSV + "LH,three,1.0,2024-01-01T12:00:00Z,false,x\n")
    with pytest.raises(WorkflowError, match=r"row 3, column 'flight': value 'three' does not fit int"):
        run(("FlightBulkCreateNode", "load", {"source": str(path)}))
    assert listed() == []


def test_malformed_csv_is_a_clear_error(flights: Any, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(CSV + "LH,3,1.0\n")
    with pytest.raises(WorkflowError, match=r"broken.csv: malformed CSV"):
        run(("FlightBulkCreateNode", "load", {"source": str(path)}))
    assert listed() == []


def test_parquet_glob_through_a_reader_node(flights: Any, tmp_path: Path) -> None:
    frame = flights_frame(30)
    for part in range(3):
        frame.slice(part * 10, 10).write_parquet(tmp_path / f"part{part}.parquet", row_group_size=4)
    results = run(
        ("ParquetReaderNode", "read", {"path": str(tmp_path / "part*.parquet"), "batch_size": 7}),
        ("FlightBulkCreateNode", "load", {"progress": False}),
        connect=[("read", "data", "load", "data")],
    )
    assert isinstance(results["read"], BatchSource)
    assert results["load"].inserted == 30
    assert max(results["load"].batches["rows"].to_list()) <= 7
    assert [r["flight"] for r in listed()] == list(range(30))


def test_csv_reader_node_feeds_an_upsert(db: Any, tmp_path: Path) -> None:
    @db.model
    class Carrier:
        code: str
        name: str

        __dataflow__ = {"unique": [["code"]]}

    (tmp_path / "carriers.csv").write_text("code,name\nAA,American\nBA,British\nAA,American Airlines\n")
    results = run(
        ("CSVReaderNode", "read", {"path": str(tmp_path / "carriers.csv")}),
        ("CarrierBulkUpsertNode", "load", {"progress": False}),
        ("CarrierListNode", "all", {"order_by": "code"}),
        connect=[("read", "data", "load", "data")],
    )
    assert (results["load"].inserted, results["load"].collapsed) == (2, 1)
    assert results["all"]["name"].to_list() == ["American Airlines", "British"]


def test_model_from_a_parquet_file_then_load_it(db: Any, tmp_path: Path) -> None:
    path = tmp_path / "flights.parquet"
    flights_frame(12).write_parquet(path)
    db.model_from(str(path), name="Flight")
    fields = db.models["Flight"].fields
    assert {n: f.label for n, f in fields.items() if not f.managed} == {
        "carrier": "str",
        "flight": "int",
        "dep_delay": "Optional[float]",
        "departed": "datetime",
        "cancelled": "bool",
    }
    assert run(("FlightBulkCreateNode", "load", {"source": str(path), "progress": False}))["load"].inserted == 12


def test_model_from_a_csv_and_a_frame(db: Any, tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(CSV)
    db.model_from(str(path), name="FromCsv")
    labels = {n: f.label for n, f in db.models["FromCsv"].fields.items() if not f.managed}
    assert labels["flight"] == "int" and labels["dep_delay"] == "Optional[float]" and labels["note"] == "Optional[str]"
    db.model_from(pl.DataFrame({"a": [1, None], "b": ["x", "y"]}), name="FromFrame")
    assert db.models["FromFrame"].fields["a"].label == "Optional[int]"
    with pytest.raises(ValidationError, match="no rows to infer"):
        db.model_from(pl.DataFrame({"a": []}), name="Empty")
