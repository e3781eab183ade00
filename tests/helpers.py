"""One helper to compare frames with expected rows, whatever the frame library."""

from __future__ import annotations

from typing import Any


def rows_of(frame: Any, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of a polars or pandas frame as dicts of Python values (pandas NA becomes None)."""
    if hasattr(frame, "to_dicts"):
        rows = frame.to_dicts()
    else:
        import pandas as pd

        rows = [
            {k: (None if v is pd.NA or v is pd.NaT else v) for k, v in r.items()}
            for r in frame.astype(object).to_dict("records")
        ]
    if columns is not None:
        rows = [{c: r[c] for c in columns} for r in rows]
    return rows


def assert_frame_rows(frame: Any, expected: list[dict[str, Any]]) -> None:
    """The frame holds exactly ``expected`` (compared on the expected rows' columns, in order)."""
    columns = list(expected[0]) if expected else None
    actual = rows_of(frame, columns)
    assert actual == expected, f"rows differ:\nactual:   {actual}\nexpected: {expected}"
