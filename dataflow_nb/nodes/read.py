"""The generated nodes that read: Read (by id), List (filter, order, page) and Count."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow_nb.backends.base import compile_statement
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.validate import check_known, record_id
from dataflow_nb.nodes.base import check_parameter_names
from dataflow_nb.nodes.model_node import ByIdNode, ModelNode
from dataflow_nb.query.filters import compile_filter, model_target, order_clauses

if TYPE_CHECKING:
    from dataflow_nb.workflow.context import RunContext


class ReadNode(ByIdNode):
    """Fetch one record by id; ``NotFoundError`` when there is none."""

    def run(self, ctx: RunContext, params: dict[str, Any]) -> Any:
        self.check_params(params, complete=True)
        record = record_id(self.model, params, self.node_type)
        table = self.model.table
        stmt = sa.select(table).where(table.c.id == record, *self.scope(ctx))
        return self.first_or_missing(ctx.execute(self.db, compile_statement(stmt, self.db.backend.dialect)), record)


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
