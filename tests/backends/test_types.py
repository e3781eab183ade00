"""Every supported type, and None in every nullable one, written by Create and read back by List."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any, Literal, Optional
from zoneinfo import ZoneInfo

import pytest

from dataflow_nb import ValidationError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


BERLIN = dt.datetime(2024, 7, 1, 14, 30, 15, 123456, tzinfo=ZoneInfo("Europe/Berlin"))

# (hint, value written, value expected back)
ROUND_TRIP: dict[str, tuple[Any, Any, Any]] = {
    "s": (str, "O'Brien; DROP TABLE x; -- ünïcødé", "O'Brien; DROP TABLE x; -- ünïcødé"),
    "i": (int, 2**53 + 1, 2**53 + 1),
    "i_min": (int, -(2**63), -(2**63)),
    "f": (float, 0.1 + 0.2, 0.1 + 0.2),
    "b": (bool, False, False),
    "ts": (dt.datetime, BERLIN, BERLIN),
    "d": (dt.date, dt.date(1999, 12, 31), dt.date(1999, 12, 31)),
    "t": (dt.time, dt.time(23, 59, 58, 999999), dt.time(23, 59, 58, 999999)),
    "dec": (Decimal, Decimal("12345678901234567890.123456789"), Decimal("12345678901234567890.123456789")),
    "u": (uuid.UUID, uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
    "by": (bytes, b"\x00\xff\x10", b"\x00\xff\x10"),
    # polars frames give UUID and JSON as text (pandas gives the Python objects back).
    "js": (dict, {"b": {"c": True}, "a": [1, 2.5, None, "x"]}, '{"a": [1, 2.5, null, "x"], "b": {"c": true}}'),
    "ls": (list, [1, "two", {"three": 3}], '[1, "two", {"three": 3}]'),
    "lit": (Literal["low", "high"], "high", "high"),
    "col": (Color, Color.BLUE, "blue"),
}


def define(db: Any, *, nullable: bool) -> None:
    annotations = {name: (Optional[hint] if nullable else hint) for name, (hint, _, _) in ROUND_TRIP.items()}  # noqa: UP045
    db.model(type("Typed", (), {"__annotations__": annotations}))


def test_every_type_round_trips_unchanged(db: Any, run: Any) -> None:
    define(db, nullable=False)
    run("TypedCreateNode", {name: written for name, (_, written, _) in ROUND_TRIP.items()})
    [row] = run("TypedListNode").to_dicts()
    for name, (_, _, expected) in ROUND_TRIP.items():
        assert row[name] == expected, name
        assert type(row[name]) is type(expected), name
    assert row["ts"].utcoffset() == dt.timedelta(0)  # the same instant, reported in UTC


def test_none_round_trips_in_every_nullable_type(db: Any, run: Any) -> None:
    define(db, nullable=True)
    run("TypedCreateNode", dict.fromkeys(ROUND_TRIP))
    run("TypedCreateNode", {name: written for name, (_, written, _) in ROUND_TRIP.items()})
    frame = run("TypedListNode")
    rows = frame.to_dicts()
    assert all(rows[0][name] is None for name in ROUND_TRIP)
    assert rows[1]["i"] == 2**53 + 1
    assert str(frame.schema["i"]) == "Int64"  # a nullable int stays an int
    assert rows[1]["dec"] == Decimal("12345678901234567890.123456789")


def test_naive_datetime_is_read_as_utc(db: Any, run: Any) -> None:
    @db.model
    class Event:
        at: dt.datetime

    frame = run("EventCreateNode", {"at": dt.datetime(2024, 1, 1, 12, 0)})
    assert frame["at"][0] == dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (Decimal("1.0000000001"), "more than 9 decimal places"),
        (Decimal("1" + "0" * 29), "more than 29 digits"),
        (Decimal("NaN"), "not a finite number"),
        (1.5, "expects Decimal"),
    ],
)
def test_decimals_that_do_not_fit_are_refused(db: Any, run: Any, value: Any, message: str) -> None:
    @db.model
    class Price:
        amount: Decimal

    with pytest.raises(ValidationError, match=message):
        run("PriceCreateNode", {"amount": value})


def test_unsupported_hint_names_field_and_type(db: Any) -> None:
    with pytest.raises(ValidationError, match=r"field 'tags' has unsupported type set\[str\]"):
        db.model(type("Bad", (), {"__annotations__": {"tags": set[str]}}))
