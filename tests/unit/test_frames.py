"""A small result becomes a polars frame column by column (no thread pool): the same frame as a big one's."""

from __future__ import annotations

import datetime as dt
import decimal

import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from dataflow_nb.frames import SMALL_RESULT, _stream_import, polars_frame, to_frame

COLUMNS = {
    "i": pa.array([1, None], pa.int64()),
    "i32": pa.array([1, 2], pa.int32()),
    "f": pa.array([0.5, None], pa.float64()),
    "b": pa.array([True, None], pa.bool_()),
    "s": pa.array(["a", None], pa.string()),
    "sv": pa.array(["a", "b"], pa.string_view()),
    "ls": pa.array(["a", "b"], pa.large_string()),
    "d": pa.array([dt.date(2024, 1, 1), None], pa.date32()),
    "ts": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.UTC), None], pa.timestamp("us", "UTC")),
    "naive": pa.array([dt.datetime(2024, 1, 1), None], pa.timestamp("us")),
    "dec": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(10, 2)),
    "bin": pa.array([b"\x00\x01", None], pa.binary()),
    "lst": pa.array([[1, 2], None], pa.list_(pa.int64())),
    "st": pa.array([{"x": 1}, None], pa.struct([("x", pa.int64())])),
    "null": pa.nulls(2),
    "cat": pa.array(["a", "b"]).dictionary_encode(),
}


@pytest.mark.parametrize("rows", [0, 1, 2])
def test_a_small_result_gives_the_frame_polars_from_arrow_gives(rows: int) -> None:
    table = pa.table({name: array.slice(0, rows) for name, array in COLUMNS.items()})
    assert table.num_rows <= SMALL_RESULT
    small = to_frame(table, {})
    expected = pl.from_arrow(table, rechunk=False)
    assert isinstance(expected, pl.DataFrame)
    assert_frame_equal(small, expected)
    assert small.schema == expected.schema


class DriverStream:
    """A driver's result as ADBC hands it over: an object with only ``__arrow_c_stream__``."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.table.__arrow_c_stream__(requested_schema)


def test_a_drivers_stream_gives_the_frame_polars_own_constructor_gives() -> None:
    table = pa.table({name: array.slice(0, 1) for name, array in COLUMNS.items()})
    frame = polars_frame(DriverStream(table))
    expected = pl.DataFrame(DriverStream(table))
    assert_frame_equal(frame, expected)
    assert frame.schema == expected.schema


def test_a_stream_skips_the_constructors_walk_with_this_polars() -> None:
    # Issue 24: polars' own PyCapsule import, not pl.DataFrame's walk past other kinds of data
    # first. A polars release that moved it falls back to the constructor: this says so.
    assert _stream_import() is not pl.DataFrame
    assert _stream_import().__module__ == "polars._utils.pycapsule"


def test_a_result_of_two_columns_of_one_name_is_refused_as_polars_refuses_it() -> None:
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(pl.exceptions.DuplicateError):
        to_frame(table, {})
    with pytest.raises(pl.exceptions.DuplicateError):
        pl.from_arrow(table)
