"""The generated per-model nodes: Create, Read, Update, Delete, List, Count and Upsert.

Parameters are checked against the model before any SQL runs. Statements are built with
SQLAlchemy Core, compiled once per shape and cached on the node class; values are always bound.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from dataflow_nb.backends.base import CompiledSQL, compile_statement
from dataflow_nb.exceptions import NotFoundError, ValidationError
from dataflow_nb.frames import to_frame
from dataflow_nb.model.spec import ModelSpec
from dataflow_nb.model.validate import check_known, record_id, record_values
from dataflow_nb.nodes.base import Node, check_parameter_names
from dataflow_nb.query.filters import compile_filter, model_target, order_clauses
from dataflow_nb.query.scope import scope_clauses, tenant_of

if TYPE_CHECKING:
    from dataflow_nb.dataflow import DataFlow
    from dataflow_nb.workflow.context import RunContext


class ModelNode(Node):
    """A node bound to one model of one DataFlow."""

    model: ClassVar[ModelSpec]
    db: ClassVar[DataFlow]
    _statements: ClassVar[dict[Hashable, CompiledSQL]]

    @classmethod
    def statement(cls, key: Hashable, build: Callable[[], sa.sql.ClauseElement]) -> CompiledSQL:
        """Compile a statement shape once per node class (compiling costs more than running)."""
        compiled = cls._statements.get(key)
        if compiled is None:
            compiled = cls._statements[key] = compile_statement(build(), cls.db.backend.dialect)
        return compiled

    def frame(self, table: pa.Table | None) -> Any:
        assert table is not None
        return to_frame(table, self.model.fields, self.db.frame)

    def first_or_missing(self, table: pa.Table | None, record: int) -> Any:
        if table is None or table.num_rows == 0:
            raise NotFoundError(f"{self.node_type}: no {self.model.name} with id {record}")
        return self.frame(table)

    def scope(self, ctx: RunContext) -> list[sa.ColumnElement[Any]]:
        return scope_clauses(self.model, self.model.table, ctx.scope)


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


class ByIdNode(ModelNode):
    """A node whose one parameter is the ``id`` of the record it acts on."""

    parameters = ("id",)

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        check_parameter_names(cls.node_type, params, cls.parameters)
        if complete or "id" in params:
            record_id(cls.model, params, cls.node_type)


class ReadNode(ByIdNode):
    """Fetch one record by id; ``NotFoundError`` when there is none."""

    def run(self, ctx: RunContext, params: dict[str, Any]) -> Any:
        self.check_params(params, complete=True)
        record = record_id(self.model, params, self.node_type)
        table = self.model.table
        stmt = sa.select(table).where(table.c.id == record, *self.scope(ctx))
        return self.first_or_missing(ctx.execute(self.db, compile_statement(stmt, self.db.backend.dialect)), record)


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


def with_tenant(model: ModelSpec, ctx: RunContext, values: dict[str, Any]) -> dict[str, Any]:
    """Stamp the run's tenant on a record of a multi-tenant model."""
    tenant = tenant_of(model, ctx.scope)
    return values if tenant is None else {"tenant_id": tenant, **values}


def _non_negative(node: str, name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{node}: {name} must be a non-negative int, got {value!r}")
    return value


class ListNode(ModelNode):
    """Records matching ``filter``, ordered (by id unless ``order_by``), paged, as a frame."""

    parameters = ("filter", "order_by", "limit", "offset", "fields")

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        cls.build(params, [])

    @classmethod
    def build(cls, params: Mapping[str, Any], scope: list[sa.ColumnElement[Any]]) -> sa.Select[Any]:
        check_parameter_names(cls.node_type, params, cls.parameters)
        model, table = cls.model, cls.model.table
        fields = params.get("fields")
        if fields is not None:
            if not isinstance(fields, list | tuple) or not all(isinstance(f, str) for f in fields) or not fields:
                raise ValidationError(f"{cls.node_type}: fields takes a list of field names, got {fields!r}")
            check_known(model, fields, list(model.fields))
        columns = [table.c[f] for f in fields] if fields else list(table.c)
        stmt = sa.select(*columns).where(*scope)
        target = model_target(model, table)
        condition = compile_filter(target, params.get("filter"))
        if condition is not None:
            stmt = stmt.where(condition)
        # A stable default order, so both backends return rows in the same order.
        stmt = stmt.order_by(*order_clauses(target, params.get("order_by")), table.c.id)
        limit = _non_negative(cls.node_type, "limit", params.get("limit"))
        offset = _non_negative(cls.node_type, "offset", params.get("offset"))
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        return stmt

    def run(self, ctx: RunContext, params: dict[str, Any]) -> Any:
        stmt = self.build(params, self.scope(ctx))
        return self.frame(ctx.execute(self.db, compile_statement(stmt, self.db.backend.dialect)))


class CountNode(ModelNode):
    """How many records match ``filter``, as an int."""

    parameters = ("filter",)

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        check_parameter_names(cls.node_type, params, cls.parameters)
        compile_filter(model_target(cls.model, cls.model.table), params.get("filter"))

    def run(self, ctx: RunContext, params: dict[str, Any]) -> Any:
        check_parameter_names(self.node_type, params, self.parameters)
        table = self.model.table
        stmt = sa.select(sa.func.count()).select_from(table).where(*self.scope(ctx))
        condition = compile_filter(model_target(self.model, table), params.get("filter"))
        if condition is not None:
            stmt = stmt.where(condition)
        result = ctx.execute(self.db, compile_statement(stmt, self.db.backend.dialect))
        assert result is not None
        return int(result.column(0)[0].as_py())


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


OPERATIONS: dict[str, type[ModelNode]] = {
    "Create": CreateNode,
    "Read": ReadNode,
    "Update": UpdateNode,
    "Delete": DeleteNode,
    "List": ListNode,
    "Count": CountNode,
    "Upsert": UpsertNode,
}


def make_nodes(db: DataFlow, model: ModelSpec) -> dict[str, type[ModelNode]]:
    """The node classes for one model, named ``{Model}{Operation}Node``."""
    nodes: dict[str, type[ModelNode]] = {}
    for operation, base in OPERATIONS.items():
        name = f"{model.name}{operation}Node"
        doc = f"{base.__doc__} (model {model.name}, table {model.table_name})"
        nodes[name] = type(name, (base,), {"model": model, "db": db, "node_type": name,
                                           "_statements": {}, "__doc__": doc})
    return nodes
