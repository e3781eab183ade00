"""Citus: the statements that spread a DataFlow's tables over servers by tenant (``db.distribution_plan()``).

Citus shards a table by one column and keeps a unique key only if it contains that column.
Every key of a multi-tenant model starts with ``tenant_id`` (``core/spec.py``), so each such
table is distributed by ``tenant_id``, all of them colocated: one tenant's rows of every table
live on one server, and a run, which always names its tenant, is answered there. A model
without tenants becomes a reference table (a copy on every server, joinable with any shard).

dataflow_nb's own bookkeeping stays an ordinary table on the coordinator, where every run's
statements arrive: see ``KEPT_LOCAL``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from dataflow_nb.backends.base import Connection
from dataflow_nb.backends.row_security import RUN_TENANTS
from dataflow_nb.backends.sql import quoted
from dataflow_nb.core.spec import ModelSpec
from dataflow_nb.exceptions import SchemaError

DISTRIBUTED = "create_distributed_table"
REFERENCE = "create_reference_table"

# dataflow_nb's own tables, and why each stays a plain table on the coordinator.
KEPT_LOCAL = {
    "dataflow_nb_runs": "the run history: written by every run, tenant_id is NULL for runs without one "
    "(Citus refuses NULL in a distribution column), and a reference table would copy each run's row to every server",
    "dataflow_nb_audit": "the audit log: one row per write, in the write's transaction, which the coordinator commits "
    "with the shards'; tenant_id may be NULL",
    "dataflow_nb_audit_key": "the audit key: a secret read by the coordinator only",
    "dataflow_nb_migrations": "the migration history: written by model changes, which run on the coordinator",
    RUN_TENANTS: "the tenant each open transaction acts for, keyed by the coordinator's transaction id",
}


@dataclass(frozen=True)
class Step:
    """One table: how Citus should hold it, and the statement that makes it so (None: nothing to run)."""

    table: str
    model: str | None  # None for dataflow_nb's own tables
    function: str | None  # create_distributed_table, create_reference_table, or None (kept local)
    sql: str | None
    why: str


@dataclass(frozen=True)
class DistributionPlan:
    """The statements that distribute the models' tables on Citus, in the order to run them.

    ``str(plan)`` is the SQL script; a notebook shows it as a SQL block.
    """

    steps: tuple[Step, ...]

    @property
    def statements(self) -> list[str]:
        return [s.sql for s in self.steps if s.sql is not None]

    def __str__(self) -> str:
        lines = ["-- Run on the Citus coordinator, after CREATE EXTENSION citus and adding the workers,"]
        lines.append("-- with the DataFlow's search_path (the table names are unqualified).")
        lines += [f"{s.sql};  -- {s.why}" for s in self.steps if s.sql is not None]
        lines += [f"-- {s.table}: kept local on the coordinator ({s.why})" for s in self.steps if s.sql is None]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return f"```sql\n{self}\n```"

    def _repr_html_(self) -> str:
        return f"<pre><code>{html.escape(str(self))}</code></pre>"


def plan_distribution(connection: Connection, models: Sequence[ModelSpec], pending: Sequence[str]) -> DistributionPlan:
    """Reference tables first, then the distributed ones (colocated with the first), then what stays local.

    Raises:
        SchemaError: a model that cannot be distributed, naming it and the fix.
    """
    if pending:
        raise SchemaError(
            f"distribution_plan(): model(s) {sorted(pending)} have a change waiting for a decision, so their "
            "tables are not what the plan would describe; run db.migrate(...) (see db.migration_plan()) first"
        )
    reference: list[Step] = []
    distributed: list[Step] = []
    for spec in models:
        name = _literal(spec.table_name)
        if not spec.multi_tenant:
            _check_reference(spec)
            why = f"model {spec.name} has no tenants: a copy on every server"
            reference.append(Step(spec.table_name, spec.name, REFERENCE, f"SELECT {REFERENCE}({name})", why))
            continue
        _check_keys(connection, spec)
        colocate = _literal(distributed[0].table) if distributed else "'default'"
        sql = f"SELECT {DISTRIBUTED}({name}, 'tenant_id', colocate_with => {colocate})"
        why = f"model {spec.name}: sharded by tenant"
        distributed.append(Step(spec.table_name, spec.name, DISTRIBUTED, sql, why))
    local = [Step(t, None, None, None, why) for t, why in KEPT_LOCAL.items() if _exists(connection, t)]
    return DistributionPlan((*reference, *distributed, *local))


def _literal(table: str) -> str:
    """A table name as the text of a ``regclass`` argument (quoted as an identifier when it needs it)."""
    name = table if table.islower() else quoted(table)
    return "'" + name.replace("'", "''") + "'"


def _exists(connection: Connection, table: str) -> bool:
    found = connection.execute_sql("SELECT to_regclass($1) IS NOT NULL", [quoted(table)])
    return found is not None and bool(found.column(0)[0].as_py())


def _check_reference(spec: ModelSpec) -> None:
    if spec.partitioning is not None:
        raise SchemaError(
            f"model {spec.name}: Citus distributes a partitioned table only by hash, and {spec.name} has no "
            f"tenant_id to distribute by (a reference table cannot be partitioned). Make it multi-tenant "
            f"(__dataflow__['multi_tenant'] = True), or drop partition_by (a new __dataflow__['table'])"
        )


def _check_keys(connection: Connection, spec: ModelSpec) -> None:
    """Every unique index of the live table (a key or one made by hand) must contain ``tenant_id``."""
    found = connection.execute_sql(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = to_regclass($1) AND i.indisunique AND NOT EXISTS ("
        " SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attname = 'tenant_id'"
        " AND a.attnum = ANY(i.indkey)) ORDER BY 1",
        [quoted(spec.table_name)],
    )
    without = [] if found is None else found.column(0).to_pylist()
    if without:
        raise SchemaError(
            f"model {spec.name}: table {spec.table_name!r} has unique index(es) {without} without tenant_id, "
            "and Citus keeps a unique key of a table distributed by tenant_id only if it contains it. Drop "
            "them (a unique key belongs in __dataflow__['unique'], which scopes it to the tenant), or add "
            "tenant_id to them"
        )
