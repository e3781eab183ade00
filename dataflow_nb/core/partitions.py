"""``__dataflow__ = {"partition_by": ...}``: how a model's table is split, checked when the model is read.

``("range", "created_at", "month")`` splits by a date or datetime field into one partition per
day, week, month or year; ``("list", "tenant_id")`` into one partition per value. The database
creates the partitions as rows need them (``backends/postgres_partitions.py``); a database
without declarative partitioning (DuckDB) keeps one plain table and the option changes nothing.

PostgreSQL requires every unique key of a partitioned table to include the partition column, so
the primary key becomes ``(id, column)`` (``(tenant_id, id, column)`` on a multi-tenant model) and a
declared unique key without the column is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from dataflow_nb.exceptions import SchemaError, ValidationError

if TYPE_CHECKING:
    from dataflow_nb.core.types import FieldType

STRATEGIES = ("range", "list")
INTERVALS = ("day", "week", "month", "year")
RANGE_TYPES = ("date", "datetime")  # field type labels a range can split
OPTION = "__dataflow__['partition_by']"
SPELLING = "('range', 'created_at', 'month') or ('list', 'tenant_id')"


@dataclass(frozen=True)
class Partitioning:
    """How a table is split: by ranges of ``column`` (one ``interval`` each), or by its values."""

    strategy: str  # "range" or "list"
    column: str
    interval: str | None = None  # a range's: "day", "week", "month" or "year"
    datetime: bool = False  # a range over a datetime (UTC bounds) rather than a date


class _Column(Protocol):
    """What a partitioning reads of a field (``spec.Field``, which builds on this module)."""

    @property
    def nullable(self) -> bool: ...
    @property
    def type(self) -> FieldType: ...


def read_partitioning(model: str, value: Any, fields: Mapping[str, _Column]) -> Partitioning | None:
    """The model's ``partition_by`` option, checked; None when it has none.

    Raises:
        ValidationError: a bad spelling, naming the part that is wrong and the field.
    """
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ValidationError(f"model {model}: {OPTION} takes {SPELLING}, got {value!r}")
    strategy, *rest = value
    if strategy not in STRATEGIES:
        raise ValidationError(
            f"model {model}: {OPTION} has unknown strategy {strategy!r}; use 'range' or 'list', e.g. {SPELLING}"
        )
    expected = 2 if strategy == "range" else 1
    if len(rest) != expected:
        shape = "('range', field, interval)" if strategy == "range" else "('list', field)"
        raise ValidationError(f"model {model}: {OPTION} for {strategy!r} takes {shape}, got {value!r}")
    column = rest[0]
    field = fields.get(column) if isinstance(column, str) else None
    if field is None:
        raise ValidationError(f"model {model}: {OPTION} names unknown field {column!r}; fields are {list(fields)}")
    if field.nullable:
        raise ValidationError(
            f"model {model}: {OPTION} partitions by field {column!r}, which is Optional; a partition "
            "column is part of the primary key, so it must always have a value: drop Optional[...]"
        )
    if strategy == "list":
        return Partitioning("list", column)
    interval = rest[1]
    if field.type.label not in RANGE_TYPES:
        raise ValidationError(
            f"model {model}: {OPTION} ranges over field {column!r} of type {field.type.label}; a range "
            "partition needs a date or datetime field (or use ('list', field) for values)"
        )
    if interval not in INTERVALS:
        raise ValidationError(
            f"model {model}: {OPTION} has unknown interval {interval!r} for field {column!r}; "
            f"use one of {list(INTERVALS)}"
        )
    return Partitioning("range", column, interval, datetime=field.type.label == "datetime")


def check_unique_key(model: str, partitioning: Partitioning, key: Sequence[str]) -> None:
    """A unique key must include the partition column (PostgreSQL checks uniqueness per partition).

    Raises:
        SchemaError: naming the key and the fix.
    """
    column = partitioning.column
    if column not in key:
        raise SchemaError(
            f"model {model}: unique key {list(key)} does not include the partition column {column!r}, and "
            "PostgreSQL only keeps a unique key of a partitioned table that includes it. Declare "
            f"{[*key, column]} instead, partition by a column the key has, or drop partition_by."
        )
