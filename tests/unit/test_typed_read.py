"""The cheaper SQL CSV float and int columns are typed with reads every spelling as the pattern does."""

from __future__ import annotations

import itertools
from typing import Any

import duckdb
import pyarrow as pa

from dataflow_nb.backends.typed_read import _FLOAT, _INT, _read, _read_float, _read_int

SPELLINGS: list[str | None] = [
    "".join(p)
    for n in range(5)
    for p in itertools.product(["1", "9", ".", "e", "E", "+", "-", "_", " ", "\t", "i", "n", "f", "a", "x"], repeat=n)
]
SPELLINGS += ["".join(p) for p in itertools.product(["1", ".", "e", "+", "-", "_"], repeat=6)]
SPELLINGS += [
    "infinity",
    "-Infinity",
    "NaN",
    "0x1p3",
    "1.5d",
    "1e+-5",
    "+-inf",
    "\u00a01.5\u2003",
    "\v1.5\f",
    "\u0661.\u0665",
]


def compare(spellings: list[str | None], reference: str, cheaper: str, *, nan: bool = False) -> tuple[list[Any], int]:
    """The spellings the two SQL reads of column ``x`` read differently (NaN equal to NaN when
    ``nan``), and how many the cheaper one accepts."""
    same_nan = " AND NOT (isnan(pattern) AND isnan(cheaper))" if nan else ""
    with duckdb.connect() as db:
        db.register("spellings", pa.table({"x": pa.array(spellings, pa.string())}))
        differing = db.sql(
            f"SELECT x, {reference} AS pattern, {cheaper} AS cheaper FROM spellings "
            f"WHERE pattern IS DISTINCT FROM cheaper{same_nan}"
        ).fetchall()
        [(accepted,)] = db.sql(f"SELECT count({cheaper}) FROM spellings").fetchall()
    return differing, accepted


def test_the_float_read_takes_exactly_what_the_pattern_takes() -> None:
    differing, accepted = compare(SPELLINGS, _read("x", _FLOAT, "DOUBLE"), _read_float("x"), nan=True)
    assert differing == []
    assert accepted > 500  # the comparison saw many good spellings too


INT_SPELLINGS: list[str | None] = [
    "".join(p)
    for n in range(6)
    for p in itertools.product(["0", "1", "9", ".", "e", "+", "-", "_", " ", "\t", "x", "b"], repeat=n)
]
INT_SPELLINGS += [
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "00000000000000000000042",
    "2009.0",
    "2009.000",
    "0x10",
    "1_000",
    "\u00a042\u2003",
    "\v42\f",
    "\u0664\u0662",
    None,
]


def test_the_int_read_takes_exactly_what_the_pattern_takes() -> None:
    differing, accepted = compare(INT_SPELLINGS, _read("x", _INT, "BIGINT"), _read_int("x"))
    assert differing == []
    assert accepted > 3000  # the comparison saw many good spellings too
