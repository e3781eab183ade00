"""The base of every generated node: a node bound to one model of one DataFlow."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from dataflow_nb.backends.base import CompiledSQL, compile_statement
from dataflow_nb.core.spec import ModelSpec
from dataflow_nb.exceptions import NotFoundError, ValidationError, WorkflowError
from dataflow_nb.frames import Frame, JsonMode, check_json_mode
from dataflow_nb.model.validate import check_known, record_id
from dataflow_nb.nodes.base import Node, check_parameter_names
from dataflow_nb.nodes.describe import node_doc
from dataflow_nb.query.filters import FilterTarget, model_target
from dataflow_nb.query.scope import scope_clauses, tenant_of

if TYPE_CHECKING:
    from dataflow_nb.protocols import Run, RunDatabase


STATEMENTS_KEPT = 512  # compiled statement shapes kept per node class


class DatabaseRef:
    """A node class's DataFlow, held weakly.

    Generated classes live in ``db.nodes`` and in any workflow built from them; a strong
    reference back would make a cycle, so a DataFlow that a re-run notebook cell replaced
    would stay alive (and keep its node names taken) until a garbage collection.
    """

    def __init__(self, db: RunDatabase):
        self._ref = weakref.ref(db)
        self._name = db.name

    def __get__(self, instance: object, owner: type | None = None) -> RunDatabase:
        db = self._ref()
        if db is None:
            node = getattr(owner, "node_type", "this node")
            raise WorkflowError(
                f"{node}: its DataFlow {self._name!r} no longer exists (nothing referenced it, so it was "
                f"freed); use the nodes of a live DataFlow: db.nodes[{node!r}] or the name {node!r}"
            )
        return db


def node_class(name: str, base: type[ModelNode], db: RunDatabase, model: ModelSpec) -> type[ModelNode]:
    """A generated node class ``name``: ``base`` bound to one model of one DataFlow (held weakly)."""
    doc = node_doc(name, base, model)
    attrs = {
        "model": model,
        "db": DatabaseRef(db),
        "node_type": name,
        "_statements": {},
        "filter_target": model_target(model, model.table),
        "__doc__": doc,
    }
    return type(name, (base,), attrs)


class ModelNode(Node):
    """A node bound to one model of one DataFlow."""

    model: ClassVar[ModelSpec]
    db: ClassVar[RunDatabase]
    _statements: ClassVar[dict[Hashable, CompiledSQL]]
    filter_target: ClassVar[FilterTarget]  # what its filters compile against (made with the class)

    @classmethod
    def statement(cls, key: Hashable, build: Callable[[], sa.sql.ClauseElement]) -> CompiledSQL:
        """Compile a statement shape once per node class: compiling costs more than running it.

        ``key`` holds everything the SQL depends on but its bound values (the run's scope among
        them); the oldest shapes go beyond ``STATEMENTS_KEPT``.
        """
        compiled = cls._statements.get(key)
        if compiled is None:
            if len(cls._statements) >= STATEMENTS_KEPT:
                del cls._statements[next(iter(cls._statements))]
            compiled = cls._statements[key] = compile_statement(build(), cls.db.backend.dialect)
        return compiled

    def rows(
        self, ctx: Run, compiled: CompiledSQL, binds: Mapping[str, Any], params: Mapping[str, Any] | None = None
    ) -> Frame:
        """The statement's rows as the DataFlow's frame kind; ``params["json"]`` overrides the DataFlow's ``json``."""
        db = self.db
        return ctx.execute_frame(db, compiled, binds, self.model.fields, kind=db.frame, json=self.json_mode(params, db))

    def json_mode(self, params: Mapping[str, Any] | None, db: RunDatabase | None = None) -> JsonMode:
        if params is None or params.get("json") is None:
            return (db or self.db).json
        return check_json_mode(self.node_type, params["json"])

    def first_or_missing(self, frame: Frame, record: int) -> Frame:
        if len(frame) == 0:
            raise NotFoundError(f"{self.node_type}: no {self.model.name} with id {record}")
        return frame

    def scope(self, ctx: Run) -> list[sa.ColumnElement[Any]]:
        return scope_clauses(self.model, self.model.table, ctx.scope)


class ByIdNode(ModelNode):
    """A node whose one parameter is the ``id`` of the record it acts on."""

    parameters = ("id",)

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        if complete or "id" in params:
            cls.checked(params)
        else:
            check_parameter_names(cls.node_type, params, cls.parameters)

    @classmethod
    def checked(cls, params: Mapping[str, Any]) -> int:
        """A complete set of parameters checked (once, as the node runs): the record's id."""
        check_parameter_names(cls.node_type, params, cls.parameters)
        return record_id(cls.model, params, cls.node_type)


def id_bind(table: sa.Table) -> sa.BindParameter[Any]:
    """The record's id as a named bind (``k_id``: a column's own name is SQLAlchemy's, in a SET),
    so one compiled statement serves every id."""
    return sa.bindparam("k_id", type_=table.c.id.type)


def with_tenant(model: ModelSpec, ctx: Run, values: dict[str, Any]) -> dict[str, Any]:
    """Stamp the run's tenant on a record of a multi-tenant model."""
    tenant = tenant_of(model, ctx.scope)
    return values if tenant is None else {"tenant_id": tenant, **values}


def conflict_keys(
    model: ModelSpec, node: str, params: Mapping[str, Any], *, allow_id: bool = False
) -> tuple[list[str], list[str] | None]:
    """An upsert's ``conflict_on`` (default: the first unique key) and ``update`` columns, checked."""
    uniques = [list(u) for u in model.options.get("unique", [])]
    keys = params.get("conflict_on") or (uniques[0] if uniques else None)
    if not keys:
        raise ValidationError(
            f"{node}: give conflict_on=[...], the unique key to match on; declare one with "
            f"__dataflow__ = {{'unique': [['email']]}} on {model.name}"
        )
    keys = [keys] if isinstance(keys, str) else list(keys)
    if keys == ["id"] and model.partitioning is not None:
        raise ValidationError(
            f"{node}: conflict_on=['id'] cannot match rows of {model.name}, which is partitioned by "
            f"{model.partitioning.column!r} (a key must include it); use a unique key with it, e.g. "
            f"__dataflow__ = {{'unique': [['...', {model.partitioning.column!r}]]}}"
        )
    if not (allow_id and keys == ["id"]):
        check_known(model, keys, model.writable)
        if sorted(keys) not in [sorted(u) for u in uniques]:
            raise ValidationError(
                f"{node}: conflict_on={keys} is not a unique key of {model.name}; "
                f"unique keys are {uniques} (declare them in __dataflow__['unique'])"
            )
    update = params.get("update")
    if update is not None:
        update = [update] if isinstance(update, str) else list(update)
        check_known(model, update, model.writable)
    return keys, update
