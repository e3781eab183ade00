"""Text parsing of the bulk nodes: the Arrow fast paths read exactly what the polars path reads.

Clean columns of ints, floats, booleans and ISO 8601 dates and timestamps are read by one Arrow
call; any column with a value of another spelling goes to polars. Each case here is read both
ways and must give the same values (a bad value: null, reported as a bad row by the caller).
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from dataflow_nb.bulk import parse
from dataflow_nb.bulk.parse import parse_text
from dataflow_nb.core.reading import ReadOptions

UTC = pa.timestamp("us", "UTC")
ISO = "%Y-%m-%dT%H:%M:%S%.f"
CASES = [
    (pa.int64(), None, ["42", " 42", "-5", "007", None, "-0"]),
    (pa.int64(), None, ["+5", "2009.0", "0x10", "1e3", "4.5", "", "9223372036854775808", "1_000"]),
    (pa.float64(), None, ["1.5", "+1.5", ".5", "5.", "1e3", "inf", "-inf", "NaN", "Infinity", None, " 2 "]),
    (pa.float64(), None, ["1,5", "", "1.5e", "0x1p3", "1e400"]),
    (pa.bool_(), None, ["true", "T", "yes", "N", "0", " False ", None, "maybe", ""]),
    (UTC, ISO, ["2024-01-01 00:00:00.850624Z", "2024-01-01T10:00:00+01:00", None, " 2024-02-29 23:59:59Z "]),
    (UTC, ISO, ["2024-01-01 00:00:00", "2024-01-01T10:00:00.5", None]),
    (UTC, ISO, ["2024-01-01 00:00:00+0530", "2024-01-01 00:00:00-03"]),
    (UTC, ISO, ["2024-01-01 00:00:00", "2024-01-01T10:00:00Z"]),  # mixed: values without offset are UTC
    (UTC, ISO, ["2024-02-30 00:00:00Z", "2024-01-01 24:00:00Z", "2024-13-01 00:00:00Z", "2024-01-01 10:00Z"]),
    (UTC, ISO, ["2024-01-01 00:00:00.123456789Z"]),
    (pa.date32(), "%Y-%m-%d", ["2024-01-31", " 2023-02-28", None]),
    (pa.date32(), "%Y-%m-%d", ["2024-02-30", "2024-1-01", "2024-01-01T00:00"]),
]


@pytest.mark.parametrize(("target", "fmt", "values"), CASES)
def test_the_fast_path_reads_what_polars_reads(
    monkeypatch: pytest.MonkeyPatch, target: pa.DataType, fmt: str | None, values: list[str | None]
) -> None:
    array = pa.array(values, pa.string())
    fast = parse_text(array, target, fmt, ReadOptions())
    monkeypatch.setattr(parse, "_arrow_fast", lambda *args: None)
    monkeypatch.setattr(parse, "_iso_fast", lambda *args: None)
    slow = parse_text(array, target, fmt, ReadOptions())
    assert fast.type == slow.type
    assert _values(fast) == _values(slow), values


def _values(array: pa.Array) -> list[object]:
    """The Python values, NaN as the text 'nan' (NaN equals nothing, itself included)."""
    return ["nan" if isinstance(v, float) and v != v else v for v in array.to_pylist()]


def test_hex_and_signs_are_not_read_by_arrow() -> None:
    ints = parse_text(pa.array(["0x10", "0X10", "+5", "2009.0"]), pa.int64(), None, ReadOptions())
    assert ints.to_pylist() == [None, None, 5, 2009]


def test_clean_columns_take_the_fast_path() -> None:
    options = ReadOptions()
    assert parse._arrow_fast(pa.array([" 42", "-5"]), pa.int64(), options) is not None
    assert parse._arrow_fast(pa.array(["1.5", "nan"]), pa.float64(), options) is not None
    assert parse._arrow_fast(pa.array(["t", "no"]), pa.bool_(), options) is not None
    assert parse._iso_fast(pa.array(["2024-01-01 00:00:00Z"]), UTC, ISO) is not None
    assert parse._iso_fast(pa.array(["2024-01-01"]), pa.date32(), "%Y-%m-%d") is not None
    assert parse._arrow_fast(pa.array(["0x10"]), pa.int64(), options) is None
    assert parse._arrow_fast(pa.array(["0X10"]), pa.int64(), options) is None
