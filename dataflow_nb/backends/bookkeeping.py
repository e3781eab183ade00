"""dataflow_nb's own tables (migration log, run history, audit log): made when missing, grown when old.

One catalog query says which of the tables exist and with which columns (``information_schema``,
which both databases answer alike); a missing table is created with the sequences its ids come
from, and an existing one made by an older dataflow_nb gets the nullable columns added since.
Asking the catalog first matters: a login role that may write rows may not create tables, and
PostgreSQL refuses it ``CREATE TABLE IF NOT EXISTS`` even when the table is there. Each backend's
connection calls this with its own dialect (``Connection.ensure_tables``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateSequence, CreateTable
from sqlalchemy.sql.functions import next_value

log = logging.getLogger("dataflow_nb")

_COLUMNS = (
    "SELECT table_name, column_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name IN ({names})"
)


def ensure_tables(connection: Any, dialect: Dialect, tables: Sequence[sa.Table]) -> set[str]:
    """Create the missing ``tables`` and add missing nullable columns to existing ones, in the
    caller's transaction; the names of the tables created (a caller may fill or protect them)."""
    names = ", ".join(f"${i}" for i in range(1, len(tables) + 1))
    found = connection.execute_sql(_COLUMNS.format(names=names), [t.name for t in tables])
    present: dict[str, set[str]] = {}
    if found is not None:
        for table_name, column in zip(found.column(0).to_pylist(), found.column(1).to_pylist(), strict=True):
            present.setdefault(str(table_name), set()).add(str(column))
    created = set()
    for table in tables:
        columns = present.get(table.name)
        if columns is None:
            statements: list[Any] = [CreateSequence(s, if_not_exists=True) for s in _sequences(table)]
            for statement in [*statements, CreateTable(table, if_not_exists=True)]:
                connection.execute_sql(str(statement.compile(dialect=dialect)))
            created.add(table.name)
        else:
            _add_columns(connection, dialect, table, columns)
    return created


def _sequences(table: sa.Table) -> list[sa.Sequence]:
    """The sequences the table's ids come from: a column's own, or its server default's ``nextval``."""
    found: dict[str, sa.Sequence] = {}
    for column in table.c:
        server = column.server_default.arg if isinstance(column.server_default, sa.DefaultClause) else None
        drawn = server.sequence if isinstance(server, next_value) else None
        for sequence in (column.default, drawn):
            if isinstance(sequence, sa.Sequence):
                found.setdefault(sequence.name, sequence)
    return list(found.values())


def _add_columns(connection: Any, dialect: Dialect, table: sa.Table, present: set[str]) -> None:
    """Columns added to a bookkeeping table after its first release (nullable: old rows read NULL).
    ADD COLUMN IF NOT EXISTS: two processes doing it at once both succeed."""
    preparer = dialect.identifier_preparer
    for column in table.c:
        if column.name not in present and column.nullable:
            connection.execute_sql(
                f"ALTER TABLE {preparer.quote(table.name)} ADD COLUMN IF NOT EXISTS {preparer.quote(column.name)} "
                f"{column.type.compile(dialect=dialect)}"
            )
            log.info("added column %s to %s", column.name, table.name)
