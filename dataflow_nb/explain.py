"""See the SQL and parameters a node or the query builder will run, without running it.

``explain("FlightListNode", {"filter": ...})`` compiles the statement exactly as the node's
``run`` would (same scope, same parameters) and returns an ``Explanation`` that prints the
SQL and its bound values; ``plan=True`` adds the database's ``EXPLAIN`` (never ``ANALYZE``:
the statement itself is not executed).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dataflow_nb.backends.base import CompiledSQL
from dataflow_nb.core.masking import MASK, mask_values
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.protocols import RunDatabase
from dataflow_nb.query.builder import QueryBuilder
from dataflow_nb.query.scope import Scope
from dataflow_nb.registry import resolve_node_type
from dataflow_nb.security.sensitive import sensitive_values
from dataflow_nb.workflow.builder import Workflow
from dataflow_nb.workflow.context import RunContext

if TYPE_CHECKING:
    from dataflow_nb.dataflow import DataFlow


@dataclass(frozen=True)
class Explanation:
    """The SQL a node or builder runs, its parameters in ``$n`` order, and the plan if asked."""

    sql: str
    params: list[Any]
    dialect: str
    plan: str | None = None

    def __str__(self) -> str:
        lines = [self.sql]
        lines += [f"-- ${i} = {value!r}" for i, value in enumerate(self.params, 1)]
        if self.plan is not None:
            lines += ["", self.plan]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return f"<b>{html.escape(self.dialect)}</b><pre>{html.escape(str(self))}</pre>"


def _plan(db: RunDatabase, compiled: CompiledSQL) -> str:
    """The database's plan for a statement (EXPLAIN only; rolled back whatever it was)."""
    ctx = RunContext("explain")
    try:
        result = ctx.execute(db, replace(compiled, sql=f"EXPLAIN {compiled.sql}", returns_rows=True))
    finally:
        ctx.release()
    if result is None or result.num_columns == 0:
        return ""
    # PostgreSQL answers one "QUERY PLAN" line per row; DuckDB a (key, plan text) pair.
    return "\n".join(str(v) for v in result.column(result.num_columns - 1).to_pylist())


def _from_tuple(built: tuple[str, Sequence[Any]], db: DataFlow | None, plan: bool) -> Explanation:
    sql, values = built
    compiled = CompiledSQL(sql, tuple(f"p{i}" for i in range(len(values))), (None,) * len(values), tuple(values), True)
    if plan and db is None:
        raise ValidationError("explain(..., plan=True) of built SQL needs the database: pass db=<DataFlow>")
    dialect = db.backend.capabilities.name if db is not None else "built"
    return Explanation(sql, list(values), dialect, _plan(db, compiled) if plan and db is not None else None)


def explain(
    target: Any,
    params: Mapping[str, Any] | str | None = None,
    *,
    plan: bool = False,
    db: DataFlow | None = None,
    tenant_id: str | None = None,
) -> Explanation:
    """The SQL and parameters that ``target`` would run, and its plan with ``plan=True``.

    Args:
        target: a node type name (``"UserListNode"``), a node class (``db.nodes[...]``), a
            built ``Workflow`` (``params`` is then the node id), a ``QueryBuilder`` (its
            ``build_select()``) or a ``(sql, params)`` pair from any ``build_*`` method.
        params: the node's parameters, or the node id when ``target`` is a workflow.
        plan: also ask the database for its plan (``EXPLAIN``; nothing is executed).
        db: the database to plan built SQL on (nodes know their own).
        tenant_id: the tenant the run would act for (multi-tenant models).

    Returns:
        An ``Explanation``: ``sql``, ``params``, ``dialect`` and ``plan``; it prints readably
        and renders as HTML in a notebook. A value given for a Sensitive field reads ``***``.

    Examples:
        >>> from dataflow_nb.query import create_query_builder
        >>> print(explain(create_query_builder("duckdb").table("t").where("n", "$gt", 1).build_count()))
        SELECT count(*) AS count_1 FROM t WHERE t.n > $1
        -- $1 = 1
    """
    if isinstance(target, QueryBuilder):
        return _from_tuple(target.build_select(), db, plan)
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str):
        return _from_tuple(target, db, plan)
    if isinstance(target, Workflow):
        if not isinstance(params, str) or params not in target.nodes:
            raise ValidationError(f"explain(workflow, node_id): give one of the node ids {list(target.nodes)}")
        spec = target.nodes[params]
        node, node_params = spec.node, dict(spec.params)
    else:
        node_class = resolve_node_type(target, "explain") if isinstance(target, str) else target
        if not isinstance(node_class, type):
            raise ValidationError(
                f"explain takes a node type, a node class, a workflow, a QueryBuilder or (sql, params); got {target!r}"
            )
        if params is not None and not isinstance(params, Mapping):
            raise ValidationError(f"explain: a node's params are a dict, got {params!r}")
        node, node_params = node_class(), dict(params or {})
    sql_for = getattr(node, "sql_for", None)
    if sql_for is None:
        raise ValidationError(
            f"explain shows List, Count and SQLQuery nodes and the query builder; {node.node_type} does not say its SQL"
        )
    ctx = RunContext("explain", Scope(tenant_id=tenant_id))
    compiled: CompiledSQL = sql_for(ctx, node_params)
    database: RunDatabase | None = node.database(node_params) if hasattr(node, "database") else node.db
    assert database is not None  # every node that says its SQL belongs to a database
    # The values of Sensitive fields read *** here too: an explanation is shown and shared.
    model = getattr(node, "model", None)
    secrets = set(sensitive_values(model, node_params)) if model is not None else set()
    values = [MASK if isinstance(v, str) and v in secrets else v for v in compiled.bind()]
    shown_plan = mask_values(_plan(database, compiled), secrets) if plan else None
    return Explanation(compiled.sql, values, database.backend.capabilities.name, shown_plan)
