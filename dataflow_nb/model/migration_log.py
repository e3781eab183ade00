"""Apply a migration plan in one transaction and record it in the migration log.

The migration log, table ``dataflow_nb_migrations``, holds one row per applied change: when,
which model and table, what was done, whether it needed ``allow_destructive=True``, and the
DDL. It survives kernel restarts, so a notebook can always show what happened to its tables.
(Not to be confused with the run history, ``monitor/runs.py``: that one records runs.)
"""

from __future__ import annotations

import logging

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from dataflow_nb.backends.base import Connection, compile_statement
from dataflow_nb.exceptions import DatabaseError, SchemaError
from dataflow_nb.model.migrate import MigrationPlan

log = logging.getLogger("dataflow_nb")
MIGRATIONS_TABLE = "dataflow_nb_migrations"

_metadata = sa.MetaData()
_sequence = sa.Sequence(f"{MIGRATIONS_TABLE}_id_seq", metadata=_metadata)
migration_log = sa.Table(
    MIGRATIONS_TABLE,
    _metadata,
    sa.Column("id", sa.BigInteger, _sequence, server_default=_sequence.next_value(), primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("table_name", sa.Text, nullable=False),
    sa.Column("operation", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("destructive", sa.Boolean, nullable=False),
    sa.Column("ddl", sa.Text, nullable=False),
)


def apply_plan(connection: Connection, dialect: Dialect, plan: MigrationPlan) -> None:
    """Run every statement of ``plan`` and record each change; the caller commits or rolls back.

    Raises:
        SchemaError: a statement failed; the caller's rollback leaves the table as it was.
    """
    connection.ensure_tables([migration_log])
    for statement in plan.statements:
        try:
            connection.execute_sql(statement)
        except DatabaseError as exc:
            raise SchemaError(
                f"model {plan.model}: the migration of table {plan.table!r} failed at `{statement}` and was "
                f"rolled back, so nothing changed: {exc}.\n{plan.describe()}"
            ) from exc
    insert = sa.insert(migration_log).values(
        model=sa.bindparam("model", type_=sa.Text),
        table_name=sa.bindparam("table_name", type_=sa.Text),
        operation=sa.bindparam("operation", type_=sa.Text),
        target=sa.bindparam("target", type_=sa.Text),
        destructive=sa.bindparam("destructive", type_=sa.Boolean),
        ddl=sa.bindparam("ddl", type_=sa.Text),
    )
    compiled = compile_statement(insert, dialect)
    for row in plan.rows():
        values = {k: row[k] for k in ("model", "operation", "target", "ddl")}
        connection.execute(compiled, {**values, "table_name": plan.table, "destructive": not row["safe"]})
    for change in plan.changes:
        log.info("model %s: %s %s (%s)", plan.model, change.operation, change.target, change.reason)


def read_migration_log(connection: Connection, dialect: Dialect) -> pa.Table:
    """Every recorded change, oldest first (an empty table before the first migration)."""
    connection.ensure_tables([migration_log])
    columns = [c for c in migration_log.c if c.name != "id"]
    result = connection.execute(compile_statement(sa.select(*columns).order_by(migration_log.c.id), dialect))
    assert result is not None
    return result
