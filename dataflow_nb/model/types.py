"""Type hints to column types: one ordered function, with a clear error for anything unknown.

Each supported hint becomes a ``FieldType``: the SQLAlchemy column type, the Arrow type that
frames and bound parameters use, and the check that turns a Python value into what the
driver binds. UUID and JSON are marked ``as_object``: pandas frames give them back as the
Python objects that went in, polars frames as text (see ``frames``).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from dataflow_nb.backends.sql import JSONB

DECIMAL_PRECISION = 38  # the widest decimal both DuckDB and Arrow's decimal128 hold
DECIMAL_SCALE = 9
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class FieldType:
    """How one Python type is stored, bound and returned."""

    label: str
    sa_type: Callable[[], sa.types.TypeEngine[Any]]
    arrow: pa.DataType
    to_wire: Callable[[Any], Any]
    as_object: bool = False
    choices: tuple[Any, ...] | None = None


def _check(kind: type | tuple[type, ...], label: str) -> Callable[[Any], Any]:
    def to_wire(value: Any) -> Any:
        if not isinstance(value, kind):
            raise TypeError(label)
        return value

    return to_wire


def _to_int(value: Any) -> int:
    # Check bool first: a bool is also an int, and True stored as 1 is a silent surprise.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("int")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError("is outside the 64-bit integer range")
    return value


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError("float")
    try:
        return float(value)
    except OverflowError:
        raise ValueError("is too large for a float (at most about 1.8e308); use a Decimal or int field") from None


def _to_datetime(value: Any) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise TypeError("datetime")
    # Naive datetimes are read as UTC, so both backends store the same instant.
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:  # the instant in UTC, as both databases store it, must itself be a datetime (years 1-9999)
        value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("is outside the years 1 to 9999 once in UTC, where the column stores it") from None
    return value


def _to_time(value: Any) -> dt.time:
    if not isinstance(value, dt.time):
        raise TypeError("time")
    # A time column keeps no zone; dropping tzinfo silently would change what the value means.
    if value.tzinfo is not None:
        raise ValueError("has a time zone, which a time column cannot keep; give a naive time or use a datetime field")
    return value


NUL_REFUSED = "contains a NUL character (\\x00), which PostgreSQL cannot store in text; remove it or use bytes"


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _to_text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("str")
    if "\x00" in value:  # refused on DuckDB too, so a notebook moves between them unchanged
        raise ValueError(NUL_REFUSED)
    return value


def _to_date(value: Any) -> dt.date:
    # Check datetime first: a datetime is also a date and would lose its time silently.
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise TypeError("date")
    return value


@dataclass(frozen=True)
class Precision:
    """Digits and decimal places of a Decimal field: ``amount: Annotated[Decimal, Precision(38, 12)]``.

    Without it a Decimal column keeps 38 digits, 9 of them after the point.
    """

    precision: int
    scale: int = 0

    def __post_init__(self) -> None:
        # 38: the widest decimal DuckDB and Arrow's decimal128 hold (PostgreSQL holds more).
        if not (isinstance(self.precision, int) and isinstance(self.scale, int)) or not (
            1 <= self.precision <= DECIMAL_PRECISION and 0 <= self.scale <= self.precision
        ):
            raise ValueError(
                f"Precision({self.precision!r}, {self.scale!r}): give 1 <= precision <= {DECIMAL_PRECISION} "
                "and 0 <= scale <= precision"
            )


def _to_decimal(precision: int, scale: int) -> Callable[[Any], Decimal]:
    def to_wire(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError("Decimal")
        number = Decimal(value)
        if not number.is_finite():
            raise ValueError("is not a finite number")
        _, digits, exponent = number.as_tuple()
        assert isinstance(exponent, int)
        if -exponent > scale:
            raise ValueError(f"has more than {scale} decimal places, the column keeps {scale}")
        if len(digits) + exponent > precision - scale:
            raise ValueError(f"has more than {precision - scale} digits before the point")
        return number

    return to_wire


def decimal_type(precision: int = DECIMAL_PRECISION, scale: int = DECIMAL_SCALE) -> FieldType:
    """The Decimal column of a precision and scale; the default one is labelled plain ``Decimal``."""
    default = (precision, scale) == (DECIMAL_PRECISION, DECIMAL_SCALE)
    return FieldType(
        "Decimal" if default else f"Decimal({precision}, {scale})",
        lambda: sa.Numeric(precision, scale),
        pa.decimal128(precision, scale),
        _to_decimal(precision, scale),
    )


def _to_uuid(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("is not a valid UUID") from None
    raise TypeError("UUID")


def _jsonb_order(value: Any) -> Any:
    if isinstance(value, dict):
        ordered = sorted(value.items(), key=lambda item: (len(str(item[0]).encode()), str(item[0]).encode()))
        return {key: _jsonb_order(item) for key, item in ordered}
    if isinstance(value, list | tuple):
        return [_jsonb_order(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """JSON text as PostgreSQL's jsonb prints it (shorter keys first, then by bytes; ``", "``, ``": "``).

    DuckDB stores JSON text as given, so writing this form makes both databases hold, and
    return, the same text. NaN and Infinity are refused: JSON has no such numbers.
    """
    return json.dumps(_jsonb_order(value), ensure_ascii=False, allow_nan=False)


def _to_json(kind: type) -> Callable[[Any], str]:
    def to_wire(value: Any) -> str:
        if isinstance(value, str):  # JSON text, as a frame read with json="text" holds it
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError(f"is a str but not JSON text of a {kind.__name__}") from None
        if not isinstance(value, kind):
            raise TypeError(kind.__name__)
        if _has_nul(value):
            raise ValueError(NUL_REFUSED.replace("in text", "in JSON"))
        try:
            return canonical_json(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"is not JSON-serialisable ({exc})") from None

    return to_wire


def _to_choice(choices: tuple[Any, ...], label: str) -> Callable[[Any], str]:
    allowed = {c.value if isinstance(c, enum.Enum) else c: c for c in choices}

    def to_wire(value: Any) -> str:
        key = value.value if isinstance(value, enum.Enum) else value
        if key not in allowed:
            raise ValueError(f"is not one of {sorted(map(str, allowed))}")
        return str(key)

    return to_wire


_SIMPLE: dict[type, FieldType] = {
    bool: FieldType("bool", sa.Boolean, pa.bool_(), _check(bool, "bool")),
    int: FieldType("int", sa.BigInteger, pa.int64(), _to_int),
    float: FieldType("float", lambda: sa.Double(), pa.float64(), _to_float),
    str: FieldType("str", sa.Text, pa.string(), _to_text),
    bytes: FieldType("bytes", sa.LargeBinary, pa.binary(), _check(bytes, "bytes")),
    dt.datetime: FieldType("datetime", lambda: sa.DateTime(timezone=True), pa.timestamp("us", "UTC"), _to_datetime),
    dt.date: FieldType("date", sa.Date, pa.date32(), _to_date),
    dt.time: FieldType("time", sa.Time, pa.time64("us"), _to_time),
    Decimal: decimal_type(),
    uuid.UUID: FieldType("UUID", sa.Uuid, pa.string(), _to_uuid, as_object=True),
    dict: FieldType("dict", JSONB, pa.string(), _to_json(dict), as_object=True),
    list: FieldType("list", JSONB, pa.string(), _to_json(list), as_object=True),
}

SUPPORTED = "str int float bool datetime date time Decimal UUID bytes dict list Optional[...] Literal[...] Enum"


def unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """Return (inner hint, nullable) for ``Optional[X]`` / ``X | None``; other hints unchanged."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def field_type_for(hint: Any) -> FieldType | None:
    """Map one (non-Optional) type hint to its FieldType, or None when unsupported."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if all(isinstance(c, str) for c in choices):
            label = f"Literal{list(choices)}"
            return FieldType(label, sa.Text, pa.string(), _to_choice(choices, label), choices=choices)
        return None
    # Check enums before the simple table: a str-Enum is also a str.
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        choices = tuple(hint)
        return FieldType(hint.__name__, sa.Text, pa.string(), _to_choice(choices, hint.__name__), choices=choices)
    if origin in (dict, list):
        return _SIMPLE[origin]
    return _SIMPLE.get(hint)
