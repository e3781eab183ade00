"""PostgreSQL declarative partitions for models with ``partition_by``.

The table is created ``PARTITION BY RANGE (column)`` or ``LIST (column)`` with a DEFAULT partition,
so every insert succeeds, whatever writes it (a node, a bulk COPY, the user's SQL). Before a run
that wrote the table commits, ``settle`` gives the rows that landed in the DEFAULT partition a
partition of their own: it creates the month's (day's, week's, year's, value's) partition in the
run's transaction and moves the rows there. A load into existing partitions moves nothing; rows
for a new month are written twice (into DEFAULT, then moved into the new partition, which is
attached afterwards so its indexes are built in one go).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from dataflow_nb.backends.partitions import Partitions
from dataflow_nb.backends.sql import quoted
from dataflow_nb.core.partitions import Partitioning

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def partitioning_of(table: sa.Table) -> Partitioning | None:
    found = table.info.get("partitioning")
    return found if isinstance(found, Partitioning) else None


def partition_clause(table: sa.Table) -> str:
    """``PARTITION BY RANGE (created_at)`` after a partitioned model's CREATE TABLE; else nothing."""
    partitioning = partitioning_of(table)
    if partitioning is None:
        return ""
    return f" PARTITION BY {partitioning.strategy.upper()} ({quoted(partitioning.column)})"


def default_partition(table: str) -> str:
    return f"{table[:54]}_default"


class PostgresPartitions(Partitions):
    """Partitions created as rows need them, inside the transaction that wrote the rows."""

    supported = True

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect

    def create_statements(self, table: sa.Table) -> list[str]:
        if partitioning_of(table) is None:
            return []
        return [
            f"CREATE TABLE IF NOT EXISTS {quoted(default_partition(table.name))} "
            f"PARTITION OF {quoted(table.name)} DEFAULT"
        ]

    def is_partitioned(self, connection: Any, table: str) -> bool:
        found = connection.execute_sql(
            "SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace",
            [table],
        )
        return found is not None and bool(found.column(0)[0].as_py())

    def settle(self, connection: Any, table: sa.Table) -> int:
        partitioning = partitioning_of(table)
        if partitioning is None:
            return 0
        column = quoted(partitioning.column)
        default = quoted(default_partition(table.name))
        if partitioning.strategy == "range":
            key = f"date_trunc('{partitioning.interval}', {column}" + (", 'UTC')" if partitioning.datetime else ")")
            if not partitioning.datetime:
                key = f"({key})::date"
        else:
            key = column
        found = connection.execute_sql(f"SELECT DISTINCT {key} AS k FROM ONLY {default}")
        moved = 0
        for value in [] if found is None else found.column(0).to_pylist():
            moved += self._move(connection, table, partitioning, value)
        return moved

    def _move(self, connection: Any, table: sa.Table, partitioning: Partitioning, value: Any) -> int:
        """Create the partition ``value`` belongs to (unless another run did) and move its rows there."""
        column, typed = quoted(partitioning.column), table.c[partitioning.column]
        if partitioning.strategy == "range":
            low, high = value, _next(value, str(partitioning.interval))
            name = f"{table.name[:50]}_p{_stamp(low, str(partitioning.interval))}"
            where, params = f"{column} >= $1 AND {column} < $2", [low, high]
            bounds = f"FROM ({self._literal(low, typed)}) TO ({self._literal(high, typed)})"
        else:
            digest = hashlib.sha256(repr(value).encode()).hexdigest()[:8]
            name = f"{table.name[:30]}_{_UNSAFE.sub('_', str(value))[:20]}_{digest}"
            where, params = f"{column} = $1", [value]
            bounds = f"IN ({self._literal(value, typed)})"
        parent, default, target = quoted(table.name), quoted(default_partition(table.name)), quoted(name)
        exists = connection.execute_sql("SELECT to_regclass($1) IS NOT NULL", [target])
        assert exists is not None
        moved = (
            f"WITH moved AS (DELETE FROM ONLY {default} WHERE {where} RETURNING *), "
            f"put AS (INSERT INTO {target} SELECT * FROM moved RETURNING 1) SELECT count(*) FROM put"
        )
        if exists.column(0)[0].as_py():  # made by another run after these rows went to DEFAULT
            return _rows(connection.execute_sql(moved, params))
        # A new partition may not be created while DEFAULT holds rows of its range: the rows move
        # into a table of the parent's shape, which is then attached (its indexes built in one go).
        connection.execute_sql(f"CREATE TABLE {target} (LIKE {parent} INCLUDING DEFAULTS)")
        count = connection.execute_sql(moved, params)
        connection.execute_sql(f"ALTER TABLE {parent} ATTACH PARTITION {target} FOR VALUES {bounds}")
        return _rows(count)

    def _literal(self, value: Any, column: sa.Column[Any]) -> str:
        """A bound as SQL text of ``column``'s type (partition bounds take no parameters); SQLAlchemy quotes it."""
        literal = sa.literal(value, column.type)
        return str(literal.compile(dialect=self._dialect, compile_kwargs={"literal_binds": True}))


def _rows(table: pa.Table | None) -> int:
    return 0 if table is None or table.num_rows == 0 else int(table.column(0)[0].as_py() or 0)


def _next(low: dt.date, interval: str) -> dt.date:
    """The start of the next interval (``low`` is the start of one; a datetime stays one)."""
    if interval == "day":
        return low + dt.timedelta(days=1)
    if interval == "week":
        return low + dt.timedelta(days=7)
    if interval == "month":
        return low.replace(year=low.year + low.month // 12, month=low.month % 12 + 1)
    return low.replace(year=low.year + 1)


def _stamp(low: dt.date, interval: str) -> str:
    return low.strftime({"day": "%Y%m%d", "week": "%Y%m%d", "month": "%Y%m", "year": "%Y"}[interval])
