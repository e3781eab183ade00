"""Read a model back from its live table, for tools that have no model class (the CLI).

A notebook defines its models in Python; ``dataflow-nb load`` run later in a terminal has only
the database. The table's columns, nullability, unique keys and indexes are enough to rebuild a
model class whose table is the same one, so loads into an existing table check each value
against it. What a table cannot say (Literal/Enum choices, field defaults) is not read back:
such columns come back as plain ``str`` fields and defaults stay the database's own.
"""

from __future__ import annotations

from typing import Any, Optional

import sqlalchemy as sa

from dataflow_nb.backends.base import Backend, Connection
from dataflow_nb.backends.reflect import sqlalchemy_connection
from dataflow_nb.core.spec import LIFECYCLE_COLUMNS, default_table_name
from dataflow_nb.core.types import field_type_for_column
from dataflow_nb.model.migration_log import MIGRATIONS_TABLE, read_migration_log

_MANAGED = ("id", "tenant_id", *LIFECYCLE_COLUMNS)


def _python_type(column: Any, dialect: sa.engine.Dialect) -> Any:
    """The field type whose column is exactly the reflected one (dict for JSON: only values tell it from list)."""
    found = field_type_for_column(column["type"], dialect)
    return None if found is None else found.python


def model_tables(connection: Connection, backend: Backend) -> dict[str, str]:
    """Model name to table name for every model whose table exists, from the migration log."""
    applied = read_migration_log(connection, backend.dialect).to_pylist()
    with sqlalchemy_connection(connection, backend) as sa_connection:
        tables = set(sa.inspect(sa_connection).get_table_names()) - {MIGRATIONS_TABLE}
    latest = {row["model"]: row["table_name"] for row in applied}  # oldest first: the last one wins
    return {model: table for model, table in sorted(latest.items()) if table in tables}


def read_model(connection: Connection, backend: Backend, name: str) -> type | None:
    """A model class named ``name`` rebuilt from its table, or None when the table does not exist.

    The table is the one the migration log records for ``name``, else its default name.
    Columns whose type no model field holds are left out (a load then cannot fill them).
    """
    table = model_tables(connection, backend).get(name) or default_table_name(name)
    with sqlalchemy_connection(connection, backend) as sa_connection:
        inspector = sa.inspect(sa_connection)
        if table not in inspector.get_table_names():
            return None
        columns = inspector.get_columns(table)
        uniques = [u["column_names"] for u in inspector.get_unique_constraints(table)]
        indexes = [i["column_names"] for i in inspector.get_indexes(table) if not i["unique"]]
    names = {c["name"] for c in columns}
    annotations: dict[str, Any] = {}
    for column in columns:
        kind = _python_type(column, backend.dialect)
        if column["name"] in _MANAGED or kind is None:
            continue
        annotations[column["name"]] = Optional[kind] if column["nullable"] else kind  # noqa: UP045 - a runtime type
    tenant = "tenant_id" in names
    options: dict[str, Any] = {
        "table": table,
        "unique": [[c for c in u if c != "tenant_id"] for u in uniques if u != ["id"]],
        "indexes": indexes,
        "soft_delete": "deleted_at" in names,
        "versioned": "version" in names,
        "multi_tenant": tenant,
    }
    namespace = {"__annotations__": annotations, "__dataflow__": options, "__module__": __name__}
    return type(name, (), namespace)


__all__ = ["model_tables", "read_model"]
