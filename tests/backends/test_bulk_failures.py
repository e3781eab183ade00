"""A failure in the middle of a bulk load leaves the table exactly as before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dataflow_nb import DataFlow, LocalRuntime, ValidationError, WorkflowBuilder, WorkflowError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def readings(db: Any) -> Any:
    @db.model
    class Reading:
        sensor: str
        value: int

    return Reading


def frame_with_bad_row(rows: int = 20_000, bad_at: int = 12_345) -> pl.DataFrame:
    values = [str(i) for i in range(1, rows + 1)]
    values[bad_at - 1] = "twelve"
    return pl.DataFrame({"sensor": [f"s{i % 7}" for i in range(rows)], "value": values})


def stored(db: Any) -> list[tuple[str, int]]:
    workflow = WorkflowBuilder()
    workflow.add_node(db.nodes["ReadingListNode"], "all", {})
    frame = LocalRuntime().execute(workflow.build())[0]["all"]
    return list(zip(frame["sensor"].to_list(), frame["value"].to_list(), strict=True))


def seed(db: Any) -> list[tuple[str, int]]:
    workflow = WorkflowBuilder()
    workflow.add_node(db.nodes["ReadingBulkCreateNode"], "seed", {"data": [{"sensor": "kept", "value": 1}]})
    LocalRuntime().execute(workflow.build())
    return stored(db)


def load(db: Any, data: Any, **params: Any) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node(
        db.nodes["ReadingBulkCreateNode"], "load", {"data": data, "batch_size": 1_000, "progress": False, **params}
    )
    return LocalRuntime().execute(workflow.build())[0]["load"]


def test_a_bad_row_in_the_middle_rolls_back_the_whole_load(db: Any, readings: Any) -> None:
    before = seed(db)
    with pytest.raises(WorkflowError) as info:
        load(db, frame_with_bad_row())
    cause = info.value.__cause__
    assert isinstance(cause, ValidationError)
    assert "row 12345, column 'value': value 'twelve' does not fit int" in str(cause)
    assert stored(db) == before


def test_the_rollback_error_shows_a_value_with_spaces_once(db: Any, readings: Any) -> None:
    with pytest.raises(WorkflowError) as info:
        load(db, pl.DataFrame({"sensor": ["a", "b"], "value": ["1", "not a number"]}))
    assert "row 2, column 'value': value 'not a number' does not fit int. Nothing was written" in str(info.value)


def test_skip_drops_and_counts_bad_rows(db: Any, readings: Any) -> None:
    report = load(db, frame_with_bad_row(), on_error="skip")
    assert (report.inserted, report.rows_rejected, report.rows_read) == (19_999, 1, 20_000)
    assert report.rejected.height == 0
    assert len(stored(db)) == 19_999


def test_quarantine_returns_bad_rows_with_source_row_numbers(db: Any, readings: Any) -> None:
    data = frame_with_bad_row().with_columns(
        pl.when(pl.int_range(pl.len()) == 19_999).then(None).otherwise(pl.col("sensor")).alias("sensor")
    )
    report = load(db, data, on_error="quarantine")
    assert report.inserted == 19_998
    assert report.rejected.to_dicts() == [
        {"row": 12345, "column": "value", "value": "twelve", "reason": "value: 'twelve' does not fit int"},
        {"row": 20000, "column": "sensor", "value": None, "reason": "sensor: None is null, but sensor is not nullable"},
    ]


def test_an_exception_in_a_later_node_rolls_back_the_load(db: Any, readings: Any) -> None:
    before = seed(db)

    def fail(report: Any) -> None:
        assert report.inserted == 5_000
        raise RuntimeError("later node failed")

    workflow = WorkflowBuilder()
    data = pl.DataFrame({"sensor": ["x"] * 5_000, "value": list(range(5_000))})
    workflow.add_node(db.nodes["ReadingBulkCreateNode"], "load", {"data": data, "batch_size": 1_000})
    workflow.add_node(fail, "after")
    workflow.add_connection("load", "data", "after", "report")
    with pytest.raises(WorkflowError, match="later node failed"):
        LocalRuntime().execute(workflow.build())
    assert stored(db) == before


KILLED_LOAD = textwrap.dedent("""
    import sys, time
    import pyarrow as pa
    from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder
    db = DataFlow(sys.argv[1])
    @db.model
    class Reading:
        sensor: str
        value: int
    def batches():
        for i in range(1_000_000):
            if i == 3:
                print("loading", flush=True)  # three batches are in the table, uncommitted
            yield pa.record_batch({"sensor": ["k"] * 1000, "value": list(range(1000))})
            time.sleep(0.05)
    reader = pa.RecordBatchReader.from_batches(pa.schema({"sensor": pa.string(), "value": pa.int64()}), batches())
    workflow = WorkflowBuilder()
    workflow.add_node("ReadingBulkCreateNode", "load", {"data": reader, "progress": False})
    LocalRuntime().execute(workflow.build())
""")


@pytest.mark.slow  # kills a loading child process
def test_a_process_killed_mid_load_leaves_the_table_as_before(backend_url: str | None, tmp_path: Path) -> None:
    url = backend_url or f"duckdb:///{tmp_path / 'killed.duckdb'}"
    with DataFlow(url) as db:

        @db.model
        class Reading:
            sensor: str
            value: int

        before = seed(db)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", KILLED_LOAD, url], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "loading"
        time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    with DataFlow(url) as db:

        @db.model
        class Reading:
            sensor: str
            value: int

        assert stored(db) == before
