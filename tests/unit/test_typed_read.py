"""The cheaper SQL CSV float and int columns are typed with reads every spelling as the pattern does."""

from __future__ import annotations

import itertools

import duckdb
import pyarrow as pa

from dataflow_nb.backends.typed_read import _FLOAT, _INT, _read, _read_float, _read_int

SPELLINGS = [
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


def test_the_float_read_takes_exactly_what_the_pattern_takes() -> None:
    with duckdb.connect() as db:
        db.register("spellings", pa.table({"x": SPELLINGS}))
        reference, cheaper = _read("x", _FLOAT, "DOUBLE"), _read_float("x")
        differing = db.sql(
            f"SELECT x, {reference} AS pattern, {cheaper} AS cheaper FROM spellings "
            "WHERE pattern IS DISTINCT FROM cheaper AND NOT (isnan(pattern) AND isnan(cheaper))"
        ).fetchall()
        [(accepted,)] = db.sql(f"SELECT count({cheaper}) FROM spellings").fetchall()
    assert differing == []
    assert accepted > 500  # the comparison saw many good spellings too


INT_SPELLINGS = [
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
    with duckdb.connect() as db:
        db.register("spellings", pa.table({"x": pa.array(INT_SPELLINGS, pa.string())}))
        reference, cheaper = _read("x", _INT, "BIGINT"), _read_int("x")
        differing = db.sql(
            f"SELECT x, {reference} AS pattern, {cheaper} AS cheaper FROM spellings "
            "WHERE pattern IS DISTINCT FROM cheaper"
        ).fetchall()
        [(accepted,)] = db.sql(f"SELECT count({cheaper}) FROM spellings").fetchall()
    assert differing == []
    assert accepted > 3000  # the comparison saw many good spellings too
