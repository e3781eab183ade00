"""The generated nodes that read: Read (by id), List (filter, order, page) and Count."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow_nb.backends.base import CompiledSQL, compile_statement
from dataflow_nb.cache.results import CACHE_PARAMETERS
from dataflow_nb.core.spec import Field
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.frames import check_json_mode
from dataflow_nb.model.notebook_values import preview, python_value
from dataflow_nb.model.validate import check_known
from dataflow_nb.nodes.base import check_parameter_names
from dataflow_nb.nodes.model_node import STATEMENTS_KEPT, ByIdNode, ModelNode, id_bind
from dataflow_nb.query.aggregate import build_grouping
from dataflow_nb.query.filters import FilterPlan, freeze, order_clauses, ordered, plan_filter, render
from dataflow_nb.query.scope import include_deleted, scope_clauses

if TYPE_CHECKING:
    from dataflow_nb.protocols import Run


def visible(node: ModelNode, ctx: Run, params: Mapping[str, Any]) -> list[sa.ColumnElement[Any]]:
    """The run's scope; soft-deleted rows only with ``include_deleted=True`` (see ``query.scope``)."""
    flag = include_deleted(node.node_type, node.model, params)
    return scope_clauses(node.model, node.model.table, ctx.scope, include_deleted=flag)


class ReadNode(ByIdNode):
    """Fetch one record by id; ``NotFoundError`` when there is none (or it is soft-deleted)."""

    parameters = ("id", "include_deleted", "json", *CACHE_PARAMETERS)  # type: ignore[assignment]  # ByIdNode: tuple[str]
    cacheable = True

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        super().check_params(params, complete=complete)
        if params.get("json") is not None:
            check_json_mode(cls.node_type, params["json"])

    @classmethod
    def checked(cls, params: Mapping[str, Any]) -> int:
        record = super().checked(params)
        if params.get("json") is not None:
            check_json_mode(cls.node_type, params["json"])
        return record

    def run(self, ctx: Run, params: dict[str, Any]) -> Any:
        record = self.checked(params)
        table = self.model.table
        flag = include_deleted(self.node_type, self.model, params)
        compiled = self.statement(
            ("read", flag, ctx.scope),
            lambda: sa.select(table).where(
                table.c.id == id_bind(table), *scope_clauses(self.model, table, ctx.scope, include_deleted=flag)
            ),
        )
        return self.first_or_missing(self.rows(ctx, compiled, {"k_id": record}, params), record)


def _non_negative(node: str, name: str, value: Any) -> int | None:
    value = python_value(f"{node}: {name}", value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{node}: {name} must be a non-negative int, got {preview(value)}")
    return value


def cached(
    node: ModelNode, key: Hashable | None, build: Callable[[], tuple[CompiledSQL, Any]]
) -> tuple[CompiledSQL, Any]:
    """A compiled statement by shape: compiling costs milliseconds, a filter's values do not.

    ``key`` must hold everything the SQL depends on except the filter's values (the run's
    scope and every other parameter); None (an unhashable parameter) skips the cache.
    """
    store: dict[Hashable, Any] = node._statements
    if key is None:
        return build()
    found = store.get(key)
    if found is None:
        if len(store) >= STATEMENTS_KEPT:
            del store[next(iter(store))]
        found = store[key] = build()
    return found


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def cache_key(kind: str, params: Mapping[str, Any], ctx: Run, shape: Hashable) -> Hashable | None:
    try:
        key = (kind, freeze({k: v for k, v in params.items() if k != "filter"}), shape, ctx.scope)
        hash(key)
    except TypeError:
        return None
    return key


class ListNode(ModelNode):
    """Records matching ``filter``, ordered (by id unless ``order_by``), paged, as a frame.

    With ``group_by`` and/or ``aggregate`` (and ``having``) it returns one row per group
    instead, ordered by the groups unless ``order_by`` names group fields or aggregates.
    """

    parameters = (
        "filter",
        "order_by",
        "limit",
        "offset",
        "fields",
        "group_by",
        "aggregate",
        "having",
        "include_deleted",
        "json",
        *CACHE_PARAMETERS,
    )
    cacheable = True

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        cls.build(params, [])

    @classmethod
    def build(cls, params: Mapping[str, Any], scope: list[sa.ColumnElement[Any]]) -> sa.Select[Any]:
        check_parameter_names(cls.node_type, params, cls.parameters)
        if params.get("json") is not None:
            check_json_mode(cls.node_type, params["json"])
        return cls.plan(params, scope, plan_filter(cls.filter_target, params.get("filter")))[0]

    @classmethod
    def plan(
        cls, params: Mapping[str, Any], scope: list[sa.ColumnElement[Any]], where: FilterPlan
    ) -> tuple[sa.Select[Any], Mapping[str, Field]]:
        """The SELECT for ``params`` and the fields that type its frame's columns."""
        model, table = cls.model, cls.model.table
        target = cls.filter_target
        fields: Mapping[str, Field] = model.fields
        if any(params.get(k) is not None for k in ("group_by", "aggregate", "having")):
            if params.get("fields") is not None:
                raise ValidationError(
                    f"{cls.node_type}: fields picks columns of records; a grouped List returns the "
                    "group_by fields and the aggregate names, so drop fields"
                )
            if params.get("group_by") is None and params.get("aggregate") is None:
                raise ValidationError(f"{cls.node_type}: having filters groups; give group_by and/or aggregate")
            grouping = build_grouping(
                model, table, params.get("group_by"), params.get("aggregate"), params.get("having")
            )
            stmt = sa.select(*grouping.columns).select_from(table).where(*scope).group_by(*grouping.group_by)
            if grouping.having is not None:
                stmt = stmt.having(grouping.having)
            order = order_clauses(grouping.order, params.get("order_by")) + [ordered(c) for c in grouping.group_by]
            fields = grouping.fields
        else:
            selected = params.get("fields")
            if selected is not None:
                if (
                    not selected
                    or not isinstance(selected, list | tuple)
                    or not all(isinstance(f, str) for f in selected)
                ):
                    raise ValidationError(f"{cls.node_type}: fields takes a list of field names, got {selected!r}")
                check_known(model, selected, list(model.fields))
            stmt = sa.select(*([table.c[f] for f in selected] if selected else table.c)).where(*scope)
            # A stable default order, so both backends return rows in the same order.
            order = [*order_clauses(target, params.get("order_by")), table.c.id]
        condition = render(target, where)
        if condition is not None:
            stmt = stmt.where(condition)
        stmt = stmt.order_by(*order)
        limit = _non_negative(cls.node_type, "limit", params.get("limit"))
        offset = _non_negative(cls.node_type, "offset", params.get("offset"))
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        return stmt, fields

    def compiled(self, ctx: Run, params: Mapping[str, Any]) -> tuple[CompiledSQL, dict[str, Any], Mapping[str, Field]]:
        """The statement of the filter's shape, the filter's values, and the fields that type the frame."""
        check_parameter_names(self.node_type, params, self.parameters)
        where = plan_filter(self.filter_target, params.get("filter"))

        def build() -> tuple[CompiledSQL, Mapping[str, Field]]:
            stmt, fields = self.plan(params, visible(self, ctx, params), where)
            return compile_statement(stmt, self.db.backend.dialect), fields

        compiled, fields = cached(self, cache_key("list", params, ctx, where.shape), build)
        return compiled, where.binds(), fields

    def sql_for(self, ctx: Run, params: Mapping[str, Any]) -> CompiledSQL:
        """The statement ``run`` would execute, with its values (what ``dataflow_nb.explain`` shows)."""
        compiled, binds, _ = self.compiled(ctx, params)
        return compiled.filled(binds)

    def run(self, ctx: Run, params: dict[str, Any]) -> Any:
        compiled, binds, fields = self.compiled(ctx, params)
        db = self.db
        return ctx.execute_frame(db, compiled, binds, fields, kind=db.frame, json=self.json_mode(params, db))


class CountNode(ModelNode):
    """How many records match ``filter``, as an int."""

    parameters = ("filter", "include_deleted", *CACHE_PARAMETERS)
    cacheable = True

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        check_parameter_names(cls.node_type, params, cls.parameters)
        plan_filter(cls.filter_target, params.get("filter"))

    def compiled(self, ctx: Run, params: Mapping[str, Any]) -> tuple[CompiledSQL, dict[str, Any]]:
        """The statement of the filter's shape, and the filter's values."""
        check_parameter_names(self.node_type, params, self.parameters)
        table = self.model.table
        target = self.filter_target
        where = plan_filter(target, params.get("filter"))

        def build() -> tuple[CompiledSQL, None]:
            stmt = sa.select(sa.func.count()).select_from(table).where(*visible(self, ctx, params))
            condition = render(target, where)
            if condition is not None:
                stmt = stmt.where(condition)
            return compile_statement(stmt, self.db.backend.dialect), None

        compiled, _ = cached(self, cache_key("count", params, ctx, where.shape), build)
        return compiled, where.binds()

    def sql_for(self, ctx: Run, params: Mapping[str, Any]) -> CompiledSQL:
        """The statement ``run`` would execute, with its values (what ``dataflow_nb.explain`` shows)."""
        compiled, binds = self.compiled(ctx, params)
        return compiled.filled(binds)

    def run(self, ctx: Run, params: dict[str, Any]) -> Any:
        compiled, binds = self.compiled(ctx, params)  # the values bound as the statement runs: no copy of it
        result = ctx.execute(self.db, compiled, binds)
        assert result is not None
        return int(result.column(0)[0].as_py())
