"""A bulk create from one file: DuckDB reads it itself, PostgreSQL streams it; the rows and the
errors are the same either way, and the same as a streamed load of the same file.

``on_error="skip"`` always streams, so each test loads a file both ways and compares.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataflow_nb import LocalRuntime, WorkflowBuilder, WorkflowError
from tests.conftest import model_fixtures, shared

CSV = (
    "code,n,ratio,ok,day,at,note\n"
    "a, 42 ,1.5,t,2024-01-31,2024-01-01 10:00:00Z,x\n"
    "b,+5,inf,No,2024-02-29,2024-01-01T11:30:00.25+01:00,\n"
    "c,2009.0,-1e3,TRUE, 2023-12-01 ,2024-01-01 12:00:00,NA\n"
    'd,-0,.5,0,2024-03-01,2024-01-01 13:00:00+0530,""\n'
)


def add_models(db: Any) -> Any:
    for name in ("Scanned", "Streamed"):
        namespace: dict[str, Any] = {
            "__annotations__": {
                "code": str,
                "n": int,
                "ratio": float,
                "ok": bool,
                "day": dt.date | None,
                "at": dt.datetime,
                "note": str | None,
                "label": str,
            },
            "label": "none",
        }
        db.model(type(name, (), namespace))
    return db


models, class_models = model_fixtures("models", add_models)


def load(node: str, params: dict[str, Any]) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node(node, "load", {"progress": False, **params})
    return LocalRuntime().execute(workflow.build())[0]["load"]


def rows(db: Any, model: str) -> list[dict[str, Any]]:
    workflow = WorkflowBuilder()
    workflow.add_node(f"{model}ListNode", "all", {"order_by": "code"})
    frame = LocalRuntime().execute(workflow.build())[0]["all"]
    return frame.drop("id", "created_at", "updated_at").to_dicts()


def test_a_csv_file_loads_as_the_stream_loads_it(models: Any, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(CSV)
    scanned = load("ScannedBulkCreateNode", {"source": str(path)})
    streamed = load("StreamedBulkCreateNode", {"source": str(path), "on_error": "skip"})
    assert (scanned.inserted, scanned.rows_read, scanned.rows_rejected) == (4, 4, 0)
    assert (streamed.inserted, streamed.rows_rejected) == (4, 0)
    assert rows(models, "Scanned") == rows(models, "Streamed")
    first = rows(models, "Scanned")[0]
    assert (first["n"], first["ok"], first["label"]) == (42, True, "none")
    assert first["at"] == dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC)


class TestBadValues:
    """The two tables made once for the class, emptied after each test."""

    models = shared("models", empty=("Scanned", "Streamed"))

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("e,0x10,1,t,2024-01-01,2024-01-01 10:00:00Z,x", r"row 5, column 'n': value '0x10' does not fit int"),
            ("e,1,1_0,t,2024-01-01,2024-01-01 10:00:00Z,x", r"row 5, column 'ratio': value '1_0' does not fit float"),
            ("e,1,1,maybe,2024-01-01,2024-01-01 10:00:00Z,x", r"row 5, column 'ok': value 'maybe' does not fit bool"),
            ("e,1,1,t,2024-02-30,2024-01-01 10:00:00Z,x", r"row 5, column 'day': value '2024-02-30' does not fit"),
            ("e,1,1,t,2024-01-01,2024-01-01 10:00Z,x", r"row 5, column 'at': value '2024-01-01 10:00Z' does not fit"),
            ("e,,1,t,2024-01-01,2024-01-01 10:00:00Z,x", r"row 5, column 'n': value None is null"),
        ],
    )
    def test_a_bad_value_is_reported_as_the_stream_reports_it(
        self, models: Any, tmp_path: Path, line: str, message: str
    ) -> None:
        path = tmp_path / "bad.csv"
        path.write_text(CSV + line + "\n")
        with pytest.raises(WorkflowError, match=message):
            load("ScannedBulkCreateNode", {"source": str(path)})
        assert rows(models, "Scanned") == []
        report = load("StreamedBulkCreateNode", {"source": str(path), "on_error": "quarantine"})
        assert (report.inserted, report.rows_rejected) == (4, 1)


def test_a_parquet_file_loads_as_the_stream_loads_it(models: Any, tmp_path: Path) -> None:
    path = tmp_path / "typed.parquet"
    table = pa.table(
        {
            "code": ["a", "b"],
            "n": pa.array([1, 2], pa.int32()),
            "ratio": pa.array([0.5, None], pa.float32()),
            "ok": [True, False],
            "day": pa.array([dt.date(2024, 1, 1), None], pa.date32()),
            "at": pa.array([dt.datetime(2024, 1, 1, 10), dt.datetime(2024, 1, 1, 11)], pa.timestamp("ms")),
        }
    )
    pq.write_table(table, path)
    with pytest.raises(WorkflowError, match=r"row 2, column 'ratio': value None is null"):
        load("ScannedBulkCreateNode", {"source": str(path)})
    pq.write_table(table.set_column(2, "ratio", pa.array([0.5, 2.25], pa.float32())), path)
    assert load("ScannedBulkCreateNode", {"source": str(path)}).inserted == 2
    assert load("StreamedBulkCreateNode", {"source": str(path), "on_error": "skip"}).inserted == 2
    assert rows(models, "Scanned") == rows(models, "Streamed")
    assert rows(models, "Scanned")[0]["at"] == dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC)


def test_a_key_already_there_names_the_key(db: Any, tmp_path: Path) -> None:
    @db.model
    class Keyed:
        code: str
        __dataflow__ = {"unique": [["code"]]}

    path = tmp_path / "keys.csv"
    pl.DataFrame({"code": ["a", "b"]}).write_csv(path)
    load("KeyedBulkCreateNode", {"source": str(path)})
    with pytest.raises(WorkflowError, match="code"), pytest.warns(UserWarning, match="already loaded"):
        load("KeyedBulkCreateNode", {"source": str(path)})


def test_unicode_spaces_and_other_spellings_read_the_same(models: Any, tmp_path: Path) -> None:
    nbsp = "\u00a0"
    path = tmp_path / "spaces.csv"
    path.write_text(
        "code,n,ratio,ok,day,at\n"
        f"a,{nbsp}42,{nbsp}1.5,{nbsp}t,{nbsp}2024-01-31,{nbsp}2024-01-01 10:00:00Z{nbsp}\n"
        "b,2009.,+.5,YES ,2024-02-29,2024-01-01T10:00:00.123456789-03\n"
        "c,+007.000,1E+05,\tf,2024-03-01,2024-01-01 10:00:00\n",
        encoding="utf-8",
    )
    assert load("ScannedBulkCreateNode", {"source": str(path)}).inserted == 3
    assert load("StreamedBulkCreateNode", {"source": str(path), "on_error": "skip"}).inserted == 3
    assert rows(models, "Scanned") == rows(models, "Streamed")


def test_a_nul_in_text_is_refused_as_the_stream_refuses_it(db: Any, tmp_path: Path) -> None:
    @db.model
    class Noted:
        note: str

    csv_path, parquet_path = tmp_path / "nul.csv", tmp_path / "nul.parquet"
    csv_path.write_bytes(b"note\nfine\nbad\x00one\n")
    gzipped = tmp_path / "nul.csv.gz"  # its bytes are not its text: DuckDB looks at every value
    gzipped.write_bytes(gzip.compress(csv_path.read_bytes()))
    pq.write_table(pa.table({"note": ["fine", "bad\x00one"]}), parquet_path)
    for path in (csv_path, gzipped, parquet_path):
        with pytest.raises(WorkflowError, match=r"row 2, column 'note'"):
            load("NotedBulkCreateNode", {"source": str(path)})


def test_a_date_column_with_nulls_first_reads_with_the_format_of_its_first_batch(models: Any, tmp_path: Path) -> None:
    # 2,500 rows without a date before the first one: the look ahead reads the whole first batch.
    lines = ["code,n,ratio,ok,day,at"] + [f"r{i},{i},1,t,,2024-01-01 10:00:00" for i in range(2_500)]
    lines += [f"s{i},{i},1,t,01/02/2024,2024-01-01 10:00:00" for i in range(3)]
    path = tmp_path / "late_dates.csv"
    path.write_text("\n".join(lines) + "\n")
    params = {"source": str(path), "batch_size": 5_000, "date_format": None}
    with pytest.raises(WorkflowError, match="fit both"):  # day and month: ambiguous, as when streamed
        load("ScannedBulkCreateNode", params)
    with pytest.raises(WorkflowError, match="fit both"):
        load("StreamedBulkCreateNode", {**params, "on_error": "skip"})
    path.write_text("\n".join(lines).replace("01/02/2024", "2024-02-01") + "\n")
    assert load("ScannedBulkCreateNode", params).inserted == 2_503
    assert load("StreamedBulkCreateNode", {**params, "on_error": "skip"}).inserted == 2_503
    assert rows(models, "Scanned") == rows(models, "Streamed")


def test_ids_follow_the_file_order_across_many_chunks_of_a_large_file(models: Any, tmp_path: Path) -> None:
    # ~7 MB: DuckDB reads it in several chunks on both cores; the rows must still arrive in order.
    size = 160_000
    path = tmp_path / "large.csv"
    pl.DataFrame(
        {
            "code": [f"c{i:07d}" for i in range(size)],
            "n": range(size),
            "ratio": [i / 8 for i in range(size)],
            "ok": ["yes" if i % 3 else "f" for i in range(size)],  # a boolean's spellings: a long constant list
            "day": ["2024-01-31"] * size,
            "at": [f"2024-01-01 10:00:{i % 60:02d}Z" for i in range(size)],
        }
    ).write_csv(path)
    assert load("ScannedBulkCreateNode", {"source": str(path)}).inserted == size
    workflow = WorkflowBuilder()
    workflow.add_node("ScannedListNode", "all", {"order_by": "id", "limit": size})
    frame = LocalRuntime().execute(workflow.build())[0]["all"]
    assert frame["n"].to_list() == list(range(size))
    assert frame["ok"].to_list() == [bool(i % 3) for i in range(size)]
