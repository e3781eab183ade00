"""The one place that narrows every statement on a model to what a run may see.

Every generated node builds its WHERE clause through ``scope_clauses``; tenant, soft-delete
and version scope are added here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dataflow_nb.exceptions import TenantError
from dataflow_nb.model.spec import ModelSpec


@dataclass(frozen=True)
class Scope:
    """What a run is allowed to see (grows with tenancy and soft delete)."""

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


def scope_clauses(model: ModelSpec, table: sa.Table, scope: Scope) -> list[sa.ColumnElement[Any]]:
    """Clauses that every statement on ``model`` must carry for ``scope``."""
    tenant = tenant_of(model, scope)
    return [] if tenant is None else [table.c.tenant_id == tenant]
