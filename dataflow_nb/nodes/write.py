"""The generated nodes that write one record: Create, Update, Delete, Upsert (and Restore).

Statements are built with SQLAlchemy Core, compiled once per shape and cached on the node
class; values are always bound. Each returns the stored record (RETURNING) as a one-row frame.
Managed columns (updated_at, version, deleted_at) and scope come from ``query.scope``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow_nb.backends.base import compile_statement
from dataflow_nb.backends.errors import naming_conflicts
from dataflow_nb.backends.sql import insert as upsert_insert
from dataflow_nb.core.spec import ModelSpec
from dataflow_nb.exceptions import ConflictError, NotFoundError, ValidationError
from dataflow_nb.model.notebook_values import python_value
from dataflow_nb.model.validate import record_id, record_values
from dataflow_nb.nodes.model_node import ByIdNode, ModelNode, conflict_keys, id_bind, node_class, with_tenant
from dataflow_nb.query.scope import delete_statement, managed_update_values, restore_statement, upsert_assignments

if TYPE_CHECKING:
    from dataflow_nb.protocols import Run, RunDatabase


class CreateNode(ModelNode):
    """Insert one record; returns it as a one-row frame with id and timestamps."""

    writes = True

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        record_values(cls.model, params, partial=not complete)

    def run(self, ctx: Run, params: dict[str, Any]) -> Any:
        values = with_tenant(self.model, ctx, record_values(self.model, params))
        table = self.model.table

        def build() -> sa.sql.ClauseElement:
            binds = {k: sa.bindparam(k, type_=table.c[k].type) for k in values}
            return sa.insert(table).values(binds).returning(*table.c)

        compiled = self.statement(("create", tuple(values)), build)
        with naming_conflicts(self.model, self.node_type):
            return self.rows(ctx, compiled, values)


class UpdateNode(ModelNode):
    """Change the given fields of the record ``id``; ``updated_at`` moves with every update.

    On a versioned model ``version`` goes up by one; give ``version`` (the one you read) to
    update only if nobody changed the record since: otherwise ``ConflictError``, nothing changed.
    """

    writes = True

    @classmethod
    def split(cls, params: Mapping[str, Any]) -> tuple[dict[str, Any], int | None]:
        """The changes, and the expected version (None when not given)."""
        if "version" in params:
            expected = python_value(f"{cls.node_type}: parameter 'version'", params["version"])  # np.int64 too
            if not cls.model.versioned:
                raise ValidationError(
                    f"{cls.node_type}: {cls.model.name} is not versioned, so 'version' means nothing here; "
                    "add '__dataflow__ = {\"versioned\": True}' for optimistic locking"
                )
            if isinstance(expected, bool) or not isinstance(expected, int):
                raise ValidationError(f"{cls.node_type}: 'version' must be the int you read, got {expected!r}")
        else:
            expected = None
        if "created_at" in params:
            raise ValidationError(f"{cls.node_type}: created_at is set once, when the {cls.model.name} is created")
        return {k: v for k, v in params.items() if k not in ("id", "version")}, expected

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        cls.checked(params, complete=complete)

    @classmethod
    def checked(cls, params: Mapping[str, Any], *, complete: bool) -> tuple[int | None, dict[str, Any], int | None]:
        """The record's id (None when not given yet), the changes as written and the expected version."""
        record = record_id(cls.model, params, cls.node_type) if complete or "id" in params else None
        changes, expected = cls.split(params)
        values = record_values(cls.model, changes, partial=True)
        if complete and not values:
            raise ValidationError(
                f"{cls.node_type}: give at least one field to change; valid fields are {list(cls.model.writable)}"
            )
        return record, values, expected

    def run(self, ctx: Run, params: dict[str, Any]) -> Any:
        record, values, expected = self.checked(params, complete=True)
        assert record is not None
        table = self.model.table

        def build() -> sa.sql.ClauseElement:
            assignments: dict[str, Any] = managed_update_values(self.model, table)
            assignments.update({k: sa.bindparam(f"v_{k}", type_=table.c[k].type) for k in values})
            clauses = [table.c.id == id_bind(table), *self.scope(ctx)]
            if expected is not None:
                clauses.append(table.c.version == sa.bindparam("k_version", type_=table.c.version.type))
            return sa.update(table).where(*clauses).values(assignments).returning(*table.c)

        compiled = self.statement(("update", tuple(values), expected is not None, ctx.scope), build)
        binds = {f"v_{k}": v for k, v in values.items()}
        binds.update(k_id=record, k_version=expected)
        with naming_conflicts(self.model, self.node_type):
            result = self.rows(ctx, compiled, binds)
        if expected is not None and len(result) == 0:
            self._check_version(ctx, record, expected)
        return self.first_or_missing(result, record)

    def _check_version(self, ctx: Run, record: int, expected: int) -> None:
        table = self.model.table
        current = sa.select(table.c.version).where(table.c.id == record, *self.scope(ctx))
        found = ctx.execute(self.db, compile_statement(current, self.db.backend.dialect))
        if found is not None and found.num_rows:
            raise ConflictError(
                f"{self.node_type}: {self.model.name} {record} is at version {found.column(0)[0].as_py()}, not "
                f"{expected}: it changed since you read it, so nothing was updated. Read it again and retry."
            )


class DeleteNode(ByIdNode):
    """Delete the record ``id``; returns it as it was (soft delete: as it is now, with deleted_at).

    On a soft-delete model the row stays, with ``deleted_at`` set; ``hard=True`` removes it.
    """

    writes = True

    parameters = ("id", "hard")  # type: ignore[assignment]  # ByIdNode infers tuple[str]

    def run(self, ctx: Run, params: dict[str, Any]) -> Any:
        record = self.checked(params)
        hard = params.get("hard", False)
        if not isinstance(hard, bool):
            raise ValidationError(f"{self.node_type}: hard takes True or False, got {hard!r}")
        table = self.model.table
        compiled = self.statement(
            ("delete", hard, ctx.scope),
            lambda: delete_statement(self.model, table, ctx.scope, table.c.id == id_bind(table), hard=hard).returning(
                *table.c
            ),
        )
        return self.first_or_missing(self.rows(ctx, compiled, {"k_id": record}), record)


class RestoreNode(ByIdNode):
    """Bring back the soft-deleted record ``id``; returns it. (Soft-delete models only.)"""

    writes = True

    def run(self, ctx: Run, params: dict[str, Any]) -> Any:
        record = self.checked(params)
        table = self.model.table
        compiled = self.statement(
            ("restore", ctx.scope),
            lambda: restore_statement(self.model, table, ctx.scope, table.c.id == id_bind(table)).returning(*table.c),
        )
        with naming_conflicts(self.model, self.node_type):
            result = self.rows(ctx, compiled, {"k_id": record})
        if len(result) == 0:
            raise NotFoundError(f"{self.node_type}: no deleted {self.model.name} with id {record} to restore")
        return result


def make_restore_node(db: RunDatabase, model: ModelSpec) -> dict[str, type[ModelNode]]:
    """``{Model}RestoreNode`` for a soft-delete model (the other nodes come from ``generate``)."""
    name = f"{model.name}RestoreNode"
    return {name: node_class(name, RestoreNode, db, model)}


class UpsertNode(ModelNode):
    """Insert a record, or update it where ``conflict_on`` (a unique key) matches an existing one."""

    writes = True

    options = ("conflict_on", "update")

    @classmethod
    def split(cls, params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], list[str] | None]:
        model = cls.model
        if "id" in params:
            raise ValidationError(
                f"{cls.node_type}: 'id' is generated; upsert on a unique key with conflict_on=[...], "
                f"or change a known record with {model.name}UpdateNode"
            )
        record = {k: v for k, v in params.items() if k not in cls.options}
        conflict_on, update = conflict_keys(model, cls.node_type, params)
        return record, conflict_on, update

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        record, _, _ = cls.split(params)
        record_values(cls.model, record, partial=not complete)

    def run(self, ctx: Run, params: dict[str, Any]) -> Any:
        record, conflict_on, update = self.split(params)
        values = with_tenant(self.model, ctx, record_values(self.model, record))
        missing = [k for k in conflict_on if values.get(k) is None]
        if missing:
            raise ValidationError(f"{self.node_type}: the conflict key field(s) {missing} need a value")
        table = self.model.table
        # created_at is set once: an upsert that updates keeps the original.
        skip = {*conflict_on, "created_at", "tenant_id"}
        changed = [k for k in (update if update is not None else values) if k in values and k not in skip]

        def build() -> sa.sql.ClauseElement:
            insert = upsert_insert(table).values({k: sa.bindparam(k, type_=table.c[k].type) for k in values})
            set_ = upsert_assignments(self.model, table, insert.excluded, changed)
            keys = ["tenant_id", *conflict_on] if self.model.multi_tenant else conflict_on
            return insert.on_conflict_do_update(index_elements=keys, set_=set_).returning(*table.c)

        compiled = self.statement(("upsert", tuple(values), tuple(conflict_on), tuple(changed)), build)
        with naming_conflicts(self.model, self.node_type):
            return self.rows(ctx, compiled, values)
