"""The one registry of field types: Python hints, SQL column types, Arrow types and frame dtypes.

Each supported hint becomes a ``FieldType``: the SQLAlchemy column type, the Arrow type that
frames and bound parameters use, the pandas dtype a frame gives it, and the check that turns a
Python value into what the driver binds. UUID and JSON are marked ``as_object``: pandas frames
give them back as the Python objects that went in, polars frames as text (see ``frames``).

Every other module asks this one, by hint (``field_type_for``: a model's fields), by value
(``field_type_of``: parameters of SQL nodes, the query builder, filters on untyped columns), by
SQL type (``field_type_for_sql``, ``arrow_bind_type``: bound parameters; ``field_type_for_column``:
a table read back) or by Arrow type (``field_type_for_arrow``: a model inferred from data), so a
type means the same thing everywhere (``tests/unit/test_architecture.py`` checks it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
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
from sqlalchemy.dialects.postgresql import JSONB  # DuckDB's dialect compiles it as JSON (backends/duckdb.py)
from sqlalchemy.engine import Dialect

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
    python: Any = None  # the hint itself (None for Literal and Enum types, built per hint)
    # The SQLAlchemy class whose instances hold this type (any width: Integer for BIGINT and
    # INTEGER), for lookups by SQL type; None: never found that way.
    sql_kind: type[sa.types.TypeEngine[Any]] | None = None
    # Which Arrow types a model inferred from data types as this; None: never inferred.
    reads_arrow: Callable[[pa.DataType], bool] | None = None
    pandas: str | None = None  # the nullable pandas dtype of its frame column, where it is not numpy's


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


def has_nul(value: Any) -> bool:
    """Whether a str, or any key or string inside a dict or list, holds a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(v) for v in value)
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
        python=Decimal,
        sql_kind=sa.Numeric,
        reads_arrow=pa.types.is_decimal,
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
        if has_nul(value):
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


def _is_text(arrow: pa.DataType) -> bool:
    return bool(pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow))


def _is_binary(arrow: pa.DataType) -> bool:
    return bool(pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow))


# Order matters for every lookup but the one by hint: bool before int (a bool is an int, and
# BOOLEAN is no INTEGER), float before Decimal (SQLAlchemy 2.0's Float is a Numeric), str before
# UUID and JSON (all three are text in Arrow), datetime before date (a datetime is a date).
FIELD_TYPES: tuple[FieldType, ...] = (
    FieldType(
        "bool",
        sa.Boolean,
        pa.bool_(),
        _check(bool, "bool"),
        python=bool,
        sql_kind=sa.Boolean,
        reads_arrow=pa.types.is_boolean,
        pandas="boolean",
    ),
    # BIGINT: INTEGER would overflow above 2**31.
    FieldType(
        "int",
        sa.BigInteger,
        pa.int64(),
        _to_int,
        python=int,
        sql_kind=sa.Integer,
        reads_arrow=pa.types.is_integer,
        pandas="Int64",
    ),
    FieldType(
        "float",
        sa.Double,
        pa.float64(),
        _to_float,
        python=float,
        sql_kind=sa.Float,
        reads_arrow=pa.types.is_floating,
        pandas="Float64",
    ),
    decimal_type(),
    # TEXT everywhere: columns, casts of bound values (``backends/postgres.py``), filters, SQL nodes.
    FieldType("str", sa.Text, pa.string(), _to_text, python=str, sql_kind=sa.String, reads_arrow=_is_text),
    FieldType(
        "bytes",
        sa.LargeBinary,
        pa.binary(),
        _check(bytes, "bytes"),
        python=bytes,
        sql_kind=sa.LargeBinary,
        reads_arrow=_is_binary,
    ),
    FieldType(
        "datetime",
        lambda: sa.DateTime(timezone=True),
        pa.timestamp("us", "UTC"),
        _to_datetime,
        python=dt.datetime,
        sql_kind=sa.DateTime,
        reads_arrow=pa.types.is_timestamp,
    ),
    FieldType("date", sa.Date, pa.date32(), _to_date, python=dt.date, sql_kind=sa.Date, reads_arrow=pa.types.is_date),
    FieldType(
        "time",
        sa.Time,
        pa.time64("us"),
        _to_time,
        python=dt.time,
        sql_kind=sa.Time,
        reads_arrow=pa.types.is_time,
    ),
    # UUID and JSON travel as text: drivers bind str, not uuid.UUID objects or dicts.
    FieldType(
        "UUID",
        lambda: sa.Uuid(as_uuid=False),
        pa.string(),
        _to_uuid,
        as_object=True,
        python=uuid.UUID,
        sql_kind=sa.Uuid,
    ),
    FieldType("dict", JSONB, pa.string(), _to_json(dict), as_object=True, python=dict, sql_kind=sa.JSON),
    FieldType("list", JSONB, pa.string(), _to_json(list), as_object=True, python=list, sql_kind=sa.JSON),
)
_BY_HINT: dict[Any, FieldType] = {f.python: f for f in FIELD_TYPES}
_BY_LABEL: dict[str, FieldType] = {f.label: f for f in FIELD_TYPES}

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
    """By hint: one (non-Optional) type hint's FieldType, or None when unsupported."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if all(isinstance(c, str) for c in choices):
            return _choice_type(f"Literal{list(choices)}", choices)
        return None
    # Check enums before the table: a str-Enum is also a str.
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _choice_type(hint.__name__, tuple(hint))
    if origin in (dict, list):
        return _BY_HINT[origin]
    return _BY_HINT.get(hint)


def _choice_type(label: str, choices: tuple[Any, ...]) -> FieldType:
    """Literal and Enum fields are text columns that hold one of their choices."""
    text = _BY_HINT[str]
    return dataclasses.replace(text, label=label, to_wire=_to_choice(choices, label), choices=choices, python=None)


def field_type_named(label: str) -> FieldType | None:
    """By label: ``"int"``, ``"UUID"``... (the labels messages and filter shapes use)."""
    return _BY_LABEL.get(label)


def field_type_of(value: Any) -> FieldType | None:
    """By value: the FieldType a Python value binds as where no column types it, or None.

    The nearest class in the value's MRO decides, so a bool is a bool (not an int), a
    datetime a datetime (not a date), and a subclass (a str-Enum member, numpy's float64,
    pandas' Timestamp) its base type.
    """
    kind = type(value)
    try:
        return _BY_CLASS[kind]
    except KeyError:
        found = _BY_CLASS[kind] = next((_BY_HINT[c] for c in kind.__mro__ if c in _BY_HINT), None)
        return found


_BY_CLASS: dict[type, FieldType | None] = {}  # filled as values of new classes arrive


def field_type_for_sql(sa_type: sa.types.TypeEngine[Any]) -> FieldType | None:
    """By SQL type: the FieldType whose kind of column ``sa_type`` is (any width), or None."""
    return next((f for f in FIELD_TYPES if f.sql_kind is not None and isinstance(sa_type, f.sql_kind)), None)


def arrow_bind_type(sa_type: sa.types.TypeEngine[Any]) -> pa.DataType | None:
    """The Arrow type a value bound as ``sa_type`` travels as; None lets Arrow infer it from the value."""
    if isinstance(sa_type, sa.ARRAY):  # an $in list bound as one array
        item = arrow_bind_type(sa_type.item_type)
        return None if item is None else pa.list_(item)
    found = field_type_for_sql(sa_type)
    if found is None:
        return None
    if found.python is Decimal and isinstance(sa_type, sa.Numeric):
        # The column's own precision and scale: a wider scale than the default must not round.
        precision, scale = sa_type.precision, sa_type.scale
        return pa.decimal128(precision or DECIMAL_PRECISION, DECIMAL_SCALE if scale is None else scale)
    return found.arrow


def field_type_for_column(sa_type: sa.types.TypeEngine[Any], dialect: Dialect) -> FieldType | None:
    """By backend type: the FieldType whose column is exactly ``sa_type`` in ``dialect`` (its DDL), or None.

    Exact, not by kind: a ``NUMERIC(10, 2)`` or ``INTEGER`` column is not what any field creates,
    so no field type would check values against it faithfully. dict wins over list (both JSON).
    """
    wanted = _ddl(sa_type, dialect)
    return next((f for f in FIELD_TYPES if _ddl(f.sa_type(), dialect) == wanted), None)


def _ddl(sa_type: sa.types.TypeEngine[Any], dialect: Dialect) -> str:
    return str(sa_type.compile(dialect=dialect)).upper().replace(" ", "")


def field_type_for_arrow(arrow: pa.DataType) -> FieldType | None:
    """By Arrow type: the FieldType a column of data in ``arrow`` infers as, or None."""
    return next((f for f in FIELD_TYPES if f.reads_arrow is not None and f.reads_arrow(arrow)), None)


@functools.cache
def pandas_dtypes() -> dict[pa.DataType, Any]:
    """Arrow type to the nullable pandas dtype a frame column gets (ints stay ints with nulls)."""
    import pandas as pd

    return {f.arrow: pd.api.types.pandas_dtype(f.pandas) for f in FIELD_TYPES if f.pandas is not None}
