"""The generated nodes that write one record: Create, Update, Delete and Upsert.

Statements are built with SQLAlchemy Core, compiled once per shape and cached on the node
class; values are always bound. Each returns the stored record (RETURNING) as a one-row frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from dataflow_nb.backends.base import compile_statement
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.validate import check_known, record_id, record_values
from dataflow_nb.nodes.model_node import ByIdNode, ModelNode, with_tenant

if TYPE_CHECKING:
    from dataflow_nb.workflow.context import RunContext


class CreateNode(ModelNode):
    """Insert one record; returns it as a one-row frame with id and timestamps."""

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        record_values(cls.model, params, partial=not complete)

    def run(self, ctx: RunContext, params: dict[str, Any]) -> Any:
        values = with_tenant(self.model, ctx, record_values(self.model, params))
        table = self.model.table

        def build() -> sa.sql.ClauseElement:
            binds = {k: sa.bindparam(k, type_=table.c[k].type) for k in values}
            return sa.insert(table).values(binds).returning(*table.c)

        compiled = self.statement(("create", tuple(values)), build)
        return self.frame(ctx.execute(self.db, compiled, values))


class UpdateNode(ModelNode):
    """Change the given fields of the record ``id``; ``updated_at`` moves with every update."""

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        if complete or "id" in params:
            record_id(cls.model, params, cls.node_type)
        changes = {k: v for k, v in params.items() if k != "id"}
        values = record_values(cls.model, changes, partial=True)
        if complete and not values:
            raise ValidationError(
                f"{cls.node_type}: give at least one field to change; valid fields are {cls.model.writable}"
            )

    def run(self, ctx: RunContext, params: dict[str, Any]) -> Any:
        self.check_params(params, complete=True)
        record = record_id(self.model, params, self.node_type)
        values = record_values(self.model, {k: v for k, v in params.items() if k != "id"}, partial=True)
        table = self.model.table
        changes: dict[str, Any] = {k: sa.bindparam(f"v_{k}", v, type_=table.c[k].type) for k, v in values.items()}
        if "updated_at" not in changes:
            changes["updated_at"] = sa.func.now()
        stmt = sa.update(table).where(table.c.id == record, *self.scope(ctx)).values(changes).returning(*table.c)
        return self.first_or_missing(ctx.execute(self.db, compile_statement(stmt, self.db.backend.dialect)), record)


class DeleteNode(ByIdNode):
    """Delete the record ``id``; returns it as it was."""

    def run(self, ctx: RunContext, params: dict[str, Any]) -> Any:
        self.check_params(params, complete=True)
        record = record_id(self.model, params, self.node_type)
        table = self.model.table
        stmt = sa.delete(table).where(table.c.id == record, *self.scope(ctx)).returning(*table.c)
        return self.first_or_missing(ctx.execute(self.db, compile_statement(stmt, self.db.backend.dialect)), record)


class UpsertNode(ModelNode):
    """Insert a record, or update it where ``conflict_on`` (a unique key) matches an existing one."""

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
        uniques = [list(u) for u in model.options.get("unique", [])]
        conflict_on = params.get("conflict_on") or (uniques[0] if uniques else None)
        if not conflict_on:
            raise ValidationError(
                f"{cls.node_type}: give conflict_on=[...], the unique key to match on; declare one with "
                f"__dataflow__ = {{'unique': [['email']]}} on {model.name}"
            )
        conflict_on = [conflict_on] if isinstance(conflict_on, str) else list(conflict_on)
        check_known(model, conflict_on, model.writable)
        if sorted(conflict_on) not in [sorted(u) for u in uniques]:
            raise ValidationError(
                f"{cls.node_type}: conflict_on={conflict_on} is not a unique key of {model.name}; "
                f"unique keys are {uniques} (declare them in __dataflow__['unique'])"
            )
        update = params.get("update")
        if update is not None:
            update = [update] if isinstance(update, str) else list(update)
            check_known(model, update, model.writable)
        return record, conflict_on, update

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        record, _, _ = cls.split(params)
        record_values(cls.model, record, partial=not complete)

    def run(self, ctx: RunContext, params: dict[str, Any]) -> Any:
        record, conflict_on, update = self.split(params)
        values = with_tenant(self.model, ctx, record_values(self.model, record))
        missing = [k for k in conflict_on if values.get(k) is None]
        if missing:
            raise ValidationError(f"{self.node_type}: the conflict key field(s) {missing} need a value")
        table = self.model.table
        changed = [k for k in (update if update is not None else values) if k in values and k not in conflict_on]

        def build() -> sa.sql.ClauseElement:
            insert = pg_insert(table).values({k: sa.bindparam(k, type_=table.c[k].type) for k in values})
            set_: dict[str, Any] = {k: insert.excluded[k] for k in changed}
            set_.setdefault("updated_at", sa.func.now())
            keys = ["tenant_id", *conflict_on] if self.model.multi_tenant else conflict_on
            return insert.on_conflict_do_update(index_elements=keys, set_=set_).returning(*table.c)

        compiled = self.statement(("upsert", tuple(values), tuple(conflict_on), tuple(changed)), build)
        return self.frame(ctx.execute(self.db, compiled, values))
