"""The one place that narrows every statement on a model to what a run may see.

Every generated node builds its WHERE clause through ``scope_clauses``; tenant, soft-delete
and version scope are added here and nowhere else. The managed columns every write must
touch (``updated_at``, ``version``, ``deleted_at``) are set here too, so single-record and
bulk nodes cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa

from dataflow_nb.core.spec import ModelSpec
from dataflow_nb.exceptions import TenantError, ValidationError


class Scope(NamedTuple):
    """What a run is allowed to see (its tenant; soft-deleted rows are hidden per statement).

    A tuple: it is part of the key every node looks its compiled statement up by, and a tuple
    hashes and compares without running Python code."""

    tenant_id: str | None = None


def tenant_of(model: ModelSpec, scope: Scope) -> str | None:
    """The run's tenant for a multi-tenant model (TenantError when the run names none)."""
    if not model.multi_tenant:
        return None
    if not scope.tenant_id:
        raise TenantError(
            f"model {model.name} is multi-tenant: run the workflow with "
            "LocalRuntime().execute(workflow, tenant_id='...')"
        )
    return scope.tenant_id


def scope_clauses(
    model: ModelSpec, table: sa.Table, scope: Scope, *, include_deleted: bool = False
) -> list[sa.ColumnElement[Any]]:
    """Clauses that every statement on ``model`` must carry for ``scope``.

    Soft-deleted rows are left out unless ``include_deleted`` (a restore or a hard delete
    must see them; Read, List and Count see them only when asked).
    """
    tenant = tenant_of(model, scope)
    clauses: list[sa.ColumnElement[Any]] = [] if tenant is None else [table.c.tenant_id == tenant]
    if model.soft_delete and not include_deleted:
        clauses.append(table.c.deleted_at.is_(None))
    return clauses


def include_deleted(node_type: str, model: ModelSpec, params: Mapping[str, Any]) -> bool:
    """The ``include_deleted`` parameter of Read, List and Count, checked."""
    value = params.get("include_deleted", False)
    if not isinstance(value, bool):
        raise ValidationError(f"{node_type}: include_deleted takes True or False, got {value!r}")
    if value and not model.soft_delete:
        raise ValidationError(
            f"{node_type}: include_deleted=True needs soft delete on {model.name}; "
            "add '__dataflow__ = {\"soft_delete\": True}' to the model"
        )
    return value


def managed_update_values(model: ModelSpec, table: sa.Table) -> dict[str, Any]:
    """What every UPDATE of ``model`` sets besides the caller's changes (single and bulk alike).

    ``updated_at`` moves to the transaction's time and ``version`` goes up by one.
    """
    values: dict[str, Any] = {"updated_at": sa.func.now()}
    if model.versioned:
        values["version"] = table.c.version + 1
    return values


UPSERT_KEEPS = ("id", "created_at", "tenant_id")  # an upsert that updates never moves these


def upsert_assignments(model: ModelSpec, table: sa.Table, excluded: Any, changed: list[str]) -> dict[str, Any]:
    """The SET of ``ON CONFLICT DO UPDATE`` for single and bulk upserts alike.

    ``changed`` columns take the incoming values; ``updated_at``/``version`` move as on any update;
    upserting a soft-deleted record brings it back.
    """
    values = managed_update_values(model, table)
    values.update({k: excluded[k] for k in changed if k not in UPSERT_KEEPS})
    if model.soft_delete:
        values["deleted_at"] = None
    return values


def upsert_differs(model: ModelSpec, table: sa.Table, incoming: Any, changed: list[str]) -> sa.ColumnElement[bool]:
    """Whether an upsert would change a stored row: a ``changed`` column's value differs (nulls
    compare equal), or the row is soft-deleted (the upsert brings it back). A row that would not
    change is left as it is: no new row version, ``updated_at`` and ``version`` kept."""
    differs: list[sa.ColumnElement[bool]] = [
        table.c[k].is_distinct_from(incoming[k]) for k in changed if k not in UPSERT_KEEPS
    ]
    if model.soft_delete:
        differs.append(table.c.deleted_at.is_not(None))
    return sa.or_(sa.false(), *differs)


def delete_statement(
    model: ModelSpec, table: sa.Table, scope: Scope, *where: sa.ColumnElement[Any], hard: bool = False
) -> sa.Update | sa.Delete:
    """Delete rows matching ``where`` within ``scope``: on a soft-delete model, set ``deleted_at``.

    ``hard=True`` removes rows for good, soft-deleted ones included. Add ``.returning(...)``
    as needed; BulkDelete and DeleteNode both build their statement here.
    """
    if model.soft_delete and not hard:
        clauses = scope_clauses(model, table, scope)
        values = {**managed_update_values(model, table), "deleted_at": sa.func.now()}
        return sa.update(table).where(*where, *clauses).values(values)
    return sa.delete(table).where(*where, *scope_clauses(model, table, scope, include_deleted=True))


def restore_statement(model: ModelSpec, table: sa.Table, scope: Scope, *where: sa.ColumnElement[Any]) -> sa.Update:
    """Bring soft-deleted rows matching ``where`` back (``deleted_at`` to NULL)."""
    clauses = scope_clauses(model, table, scope, include_deleted=True)
    values = {**managed_update_values(model, table), "deleted_at": None}
    return sa.update(table).where(*where, table.c.deleted_at.is_not(None), *clauses).values(values)
