"""Compare a model with its live table and turn the difference into a plan of DDL.

Alembic's autogenerate does the comparison (on the reflection of ``backends.reflect``) and its
operations render the DDL for the backend's dialect; this module only decides which changes
are safe (nothing can be lost and nothing can fail on existing rows) and which need a decision.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateSequence, CreateTable, ExecutableDDLElement

from dataflow_nb.backends.base import Backend, Capabilities, Connection
from dataflow_nb.backends.reflect import sqlalchemy_connection
from dataflow_nb.core.spec import ModelSpec
from dataflow_nb.exceptions import SchemaError


@dataclass(frozen=True)
class Change:
    """One step of a plan: what it does, whether it is safe, and the SQL that does it."""

    operation: str
    target: str
    safe: bool
    reason: str
    ddl: tuple[str, ...]


@dataclass
class MigrationPlan:
    """The changes that bring one model's table in line with its class."""

    model: str
    table: str
    dialect: str
    changes: list[Change] = field(default_factory=list)
    before: list[str] = field(default_factory=list)  # DuckDB: indexes dropped around ALTERs
    after: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[Change]:
        """Changes that need ``allow_destructive=True``."""
        return [c for c in self.changes if not c.safe]

    @property
    def statements(self) -> list[str]:
        return [*self.before, *(s for c in self.changes for s in c.ddl), *self.after]

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "model": self.model,
                "table": self.table,
                "operation": c.operation,
                "target": c.target,
                "safe": c.safe,
                "reason": c.reason,
                "ddl": "\n".join(f"{s};" for s in c.ddl),
            }
            for c in self.changes
        ]

    def describe(self) -> str:
        """The plan as a reader sees it: each change, then the SQL exactly as it would run."""
        lines = [f"  - {c.operation} {c.target}: {c.reason}" for c in self.changes]
        lines.append(f"The plan, as it would run on {self.dialect} (in one transaction):")
        lines += [f"    {s};" for s in self.statements]
        return "\n".join(lines)


def _render(dialect: Dialect, operations: list[ops.MigrateOperation]) -> list[str]:
    """The DDL Alembic emits for ``operations`` on ``dialect``, one string per statement."""
    context = MigrationContext.configure(dialect=dialect, opts={"as_sql": True, "output_buffer": io.StringIO()})
    statements: list[str] = []

    def capture(text: str) -> None:
        statements.append(text.strip().removesuffix(context.impl.command_terminator).strip())

    context.impl.static_output = capture  # type: ignore[method-assign]
    runner = Operations(context)
    for operation in operations:
        runner.invoke(operation)
    return statements


def _create_plan(spec: ModelSpec, backend: Backend) -> MigrationPlan:
    dialect = backend.dialect
    sequence = spec.table.c.id.default
    assert isinstance(sequence, sa.Sequence)
    statements: list[ExecutableDDLElement] = [
        CreateSequence(sequence, if_not_exists=True),
        CreateTable(spec.table, if_not_exists=True),
        *(CreateIndex(index, if_not_exists=True) for index in sorted(spec.table.indexes, key=lambda i: str(i.name))),
    ]
    ddl = tuple(str(s.compile(dialect=dialect)).strip() for s in statements)
    ddl += tuple(backend.partitions.create_statements(spec.table))
    change = Change("create table", spec.table_name, True, "the table does not exist yet", ddl)
    return MigrationPlan(spec.name, spec.table_name, dialect.name, [change])


def _scalar(connection: Connection, sql: str) -> int:
    result = connection.execute_sql(sql)
    assert result is not None
    return int(result.column(0)[0].as_py())


class _Classifier:
    """Decide, for each Alembic operation on one table, whether it is safe, and why."""

    def __init__(self, connection: Connection, dialect: Dialect, capabilities: Capabilities, table: str):
        self.capabilities = capabilities
        self.connection = connection
        self.quote = dialect.identifier_preparer.quote
        self.table = table
        self.rows = _scalar(connection, f"SELECT count(*) FROM {self.quote(table)}")
        self.empty = self.rows == 0

    def _count(self, where: str) -> int:
        return _scalar(self.connection, f"SELECT count(*) FROM {self.quote(self.table)} WHERE {where}")

    def classify(self, op: ops.MigrateOperation, dialect: Dialect) -> tuple[str, str, bool, str]:
        """(operation, target, safe, reason) for one Alembic operation."""
        if isinstance(op, ops.AddColumnOp):
            column = op.column
            if column.nullable:
                return "add column", column.name, True, "a new nullable column; existing rows get NULL"
            if column.server_default is not None:
                return "add column", column.name, True, "a new column with a default; existing rows get the default"
            reason = (
                f"a new NOT NULL column without a default cannot be filled on the {self.rows} existing row(s): "
                "declare it Optional[...] or give it a default"
            )
            return "add column", column.name, self.empty, reason
        if isinstance(op, ops.DropColumnOp):
            reason = f"its values in {self.rows} row(s) would be lost"
            return "drop column", op.column_name, self.empty, reason
        if isinstance(op, ops.AlterColumnOp):
            return self._alter(op, dialect)
        if isinstance(op, ops.CreateIndexOp):
            return "add index", str(op.index_name), True, f"a new index on {list(map(str, op.columns))}"
        if isinstance(op, ops.DropIndexOp):
            return "drop index", str(op.index_name), True, "the model no longer declares it; no data is lost"
        if isinstance(op, ops.CreateUniqueConstraintOp):
            columns = ", ".join(self.quote(str(c)) for c in op.columns)
            duplicates = _scalar(
                self.connection,
                f"SELECT count(*) FROM (SELECT {columns} FROM {self.quote(self.table)} "
                f"GROUP BY {columns} HAVING count(*) > 1) AS d",
            )
            if duplicates:
                reason = f"{duplicates} value(s) of {list(op.columns)} repeat in existing rows; remove the duplicates"
                return "add unique", str(op.constraint_name), False, reason
            return "add unique", str(op.constraint_name), True, "a new unique key; no existing rows repeat it"
        if isinstance(op, ops.DropConstraintOp):
            if not self.capabilities.drops_constraints:
                reason = (
                    f"{self.capabilities.label} cannot drop a constraint (ALTER TABLE ... DROP CONSTRAINT): "
                    "keep the key in __dataflow__['unique'], or copy the rows into a new table"
                )
                return "drop unique", str(op.constraint_name), False, reason
            return "drop unique", str(op.constraint_name), True, "the model no longer declares it; no data is lost"
        return type(op).__name__, self.table, False, "a change dataflow_nb does not classify; review the DDL"

    def _alter(self, op: ops.AlterColumnOp, dialect: Dialect) -> tuple[str, str, bool, str]:
        name = op.column_name
        if op.modify_type is not None:
            new = op.modify_type.compile(dialect=dialect)
            existing: sa.types.TypeEngine[Any] | None = op.existing_type
            old = existing.compile(dialect=dialect) if existing is not None else "?"
            # Convert explicitly: PostgreSQL refuses e.g. TEXT -> BIGINT without a USING cast.
            op.kw["postgresql_using"] = f"{self.quote(name)}::{new}"
            reason = f"{old} -> {new}: values that do not convert fail, others may change"
            return "change type", name, self.empty, reason
        if op.modify_nullable is False:
            nulls = self._count(f"{self.quote(name)} IS NULL")
            if nulls:
                return "set not null", name, False, f"{nulls} existing row(s) hold NULL; fill them first"
            return "set not null", name, True, "no existing row holds NULL"
        if op.modify_nullable is True:
            return "drop not null", name, True, "the column now accepts NULL; no data is lost"
        return "alter column", name, True, "a column property changed"


def _flatten(upgrade: ops.UpgradeOps) -> list[ops.MigrateOperation]:
    flat: list[ops.MigrateOperation] = []
    for op in upgrade.ops:
        flat.extend(op.ops if isinstance(op, ops.ModifyTableOps) else [op])
    return flat


def _without_renamed_keys(operations: list[ops.MigrateOperation]) -> list[ops.MigrateOperation]:
    """Drop a unique key's drop-and-add when both cover the same columns: a key is its columns.

    DuckDB keeps no constraint names and reads a key back as ``<table>_<columns>_key``, which
    for a tenant-scoped key (``tenant_id`` first) is not the model's name for it.
    """
    added = {tuple(op.columns): op for op in operations if isinstance(op, ops.CreateUniqueConstraintOp)}
    same: set[int] = set()
    for op in operations:
        if isinstance(op, ops.DropConstraintOp) and op.constraint_type == "unique":
            twin = added.pop(tuple(_dropped_columns(op)), None)
            if twin is not None:
                same.update((id(op), id(twin)))
    return [op for op in operations if id(op) not in same]


def _dropped_columns(op: ops.DropConstraintOp) -> list[str]:
    """The columns of the key a drop removes (autogenerate keeps the reflected key; none: unknown)."""
    try:
        constraint = op.to_constraint()
    except ValueError:  # a drop written by hand, without the constraint it drops
        return []
    return [c.name for c in constraint.columns] if isinstance(constraint, sa.UniqueConstraint) else []


def _apply_renames(
    operations: list[ops.MigrateOperation], table: str, renames: dict[str, str]
) -> list[ops.MigrateOperation]:
    """Turn a drop of ``old`` plus an add of ``new`` into one RENAME COLUMN that keeps the values."""
    dropped = {op.column_name for op in operations if isinstance(op, ops.DropColumnOp)}
    added = {op.column.name for op in operations if isinstance(op, ops.AddColumnOp)}
    result: list[ops.MigrateOperation] = []
    for old, new in renames.items():
        if old not in dropped or new not in added:
            raise SchemaError(
                f"table {table!r}: cannot rename {old!r} to {new!r}: the table must have {old!r} and the model "
                f"{new!r} (the table has no {old!r} or the model already had {new!r})"
            )
        result.append(ops.AlterColumnOp(table, old, modify_name=new))
    skip = set(renames) | set(renames.values())
    for op in operations:
        if isinstance(op, ops.DropColumnOp) and op.column_name in skip:
            continue
        if isinstance(op, ops.AddColumnOp) and op.column.name in skip:
            continue
        result.append(op)
    return result


def plan_migration(
    connection: Connection, backend: Backend, spec: ModelSpec, *, renames: dict[str, str] | None = None
) -> MigrationPlan:
    """What it takes to bring the live table of ``spec`` in line with it (empty when it is)."""
    table = spec.table_name
    dialect = backend.dialect
    with sqlalchemy_connection(connection, backend) as sa_connection:
        inspector = sa.inspect(sa_connection)
        if table not in inspector.get_table_names():
            return _create_plan(spec, backend)
        _check_partitioning(connection, backend, spec)
        context = MigrationContext.configure(
            connection=sa_connection,
            opts={"compare_type": True, "include_name": lambda name, kind, _: kind != "table" or name == table},
        )
        upgrade = produce_migrations(context, spec.table.metadata).upgrade_ops
        assert upgrade is not None
        operations = _without_renamed_keys(_flatten(upgrade))
        existing_indexes = inspector.get_indexes(table)
        live_key = inspector.get_pk_constraint(table)
    if renames:
        operations = _apply_renames(operations, table, renames)
    # Drop indexes first: a column they cover may be renamed, dropped or retyped next.
    operations.sort(key=lambda op: not isinstance(op, ops.DropIndexOp))
    plan = MigrationPlan(spec.name, table, dialect.name)
    classifier = _Classifier(connection, dialect, backend.capabilities, table)
    for op in operations:
        if isinstance(op, ops.AlterColumnOp) and op.modify_name:
            change = ("rename column", f"{op.column_name} -> {op.modify_name}", True, "keeps the values")
        else:
            change = classifier.classify(op, dialect)
        plan.changes.append(Change(*change, tuple(_render(dialect, [op]))))
    if not backend.capabilities.alters_indexed_tables:
        _around_indexes(plan, dialect, operations, existing_indexes)
    first, last = _primary_key_changes(connection, backend, spec, live_key)
    plan.changes = [*first, *plan.changes, *last]
    return plan


def _primary_key_changes(
    connection: Connection, backend: Backend, spec: ModelSpec, live: Mapping[str, Any]
) -> tuple[list[Change], list[Change]]:
    """Alembic does not compare primary keys: a multi-tenant table made when its key was ``(id)``
    (or before tenancy was turned on) gets ``(tenant_id, id)``. The old key is dropped before any
    other change (a dropped column takes its key with it) and the new one added after them all
    (it may need a new column).

    A database that cannot drop a constraint (DuckDB) keeps the table's key as it is.
    """
    wanted, old = [c.name for c in spec.table.primary_key.columns], live["constrained_columns"]
    if old == wanted or not backend.capabilities.drops_constraints:
        return [], []
    table, name = spec.table_name, live["name"] or f"{spec.table_name}_pkey"
    repeats = 0
    if not set(old) <= set(wanted):  # a key narrower than a unique one may repeat in existing rows
        quote = backend.dialect.identifier_preparer.quote
        columns = ", ".join(quote(c) for c in wanted)
        grouped = f"SELECT 1 FROM {quote(table)} GROUP BY {columns} HAVING count(*) > 1"
        repeats = _scalar(connection, f"SELECT count(*) FROM ({grouped}) AS d")
    shown = f"({', '.join(old)}) -> ({', '.join(wanted)})"
    reason = ("every unique key of a multi-tenant table includes tenant_id; " if spec.multi_tenant else "") + (
        f"{repeats} value(s) of the new key repeat in existing rows; remove the duplicates"
        if repeats
        else "no existing rows repeat the new key"
    )
    drop = tuple(_render(backend.dialect, [ops.DropConstraintOp(name, table, type_="primary")]))
    add = tuple(_render(backend.dialect, [ops.CreatePrimaryKeyOp(name, table, wanted)]))
    dropped = Change("drop primary key", name, True, f"{shown}: the new key is added after the other changes", drop)
    added = Change("add primary key", name, not repeats, f"{shown}: {reason}", add)
    return ([dropped] if live["name"] else []), [added]


def _check_partitioning(connection: Connection, backend: Backend, spec: ModelSpec) -> None:
    """A table is partitioned when it is created; an existing one cannot become (or stop being) so."""
    if not backend.partitions.supported:
        return
    live = backend.partitions.is_partitioned(connection, spec.table_name)
    if live == (spec.partitioning is not None):
        return
    now, wanted = ("plain", "partitioned") if not live else ("partitioned", "plain")
    raise SchemaError(
        f"model {spec.name}: table {spec.table_name!r} is {now}, and the class asks for a {wanted} one; a "
        f"table cannot be changed into the other in place, so nothing was applied. Give the model a new "
        f"table (__dataflow__['table']) and copy the rows with a BulkCreateNode, or "
        + ("drop partition_by." if not live else "put partition_by back.")
    )


def _around_indexes(
    plan: MigrationPlan, dialect: Dialect, operations: list[ops.MigrateOperation], indexes: list[Any]
) -> None:
    """For a database that refuses most ALTER TABLE on a table with an index: drop them first, recreate after."""
    altering = any(isinstance(op, ops.AlterColumnOp | ops.DropColumnOp | ops.AddColumnOp) for op in operations)
    if not altering:
        return
    dropped = {op.index_name for op in operations if isinstance(op, ops.DropIndexOp)}
    keep = [i for i in indexes if i["name"] not in dropped]
    plan.before = _render(dialect, [ops.DropIndexOp(i["name"], table_name=plan.table) for i in keep])
    plan.after = _render(
        dialect,
        [ops.CreateIndexOp(i["name"], plan.table, i["column_names"], unique=i["unique"]) for i in keep],
    )
