"""The one place that narrows every statement on a model to what a run may see.

Every generated node builds its WHERE clause through ``scope_clauses``; tenant, soft-delete
and version scope are added here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dataflow_nb.model.spec import ModelSpec


@dataclass(frozen=True)
class Scope:
    """What a run is allowed to see (grows with tenancy and soft delete)."""

    tenant_id: str | None = None


def scope_clauses(model: ModelSpec, table: sa.Table, scope: Scope) -> list[sa.ColumnElement[Any]]:
    """Clauses that every statement on ``model`` must carry for ``scope``."""
    if scope.tenant_id is not None and "tenant_id" in table.c:
        return [table.c.tenant_id == scope.tenant_id]
    return []


def where(model: ModelSpec, table: sa.Table, scope: Scope, *clauses: Any) -> sa.ColumnElement[bool]:
    """The scope's clauses AND the caller's (None entries skipped)."""
    parts = [*scope_clauses(model, table, scope), *(c for c in clauses if c is not None)]
    return sa.and_(sa.true(), *parts) if not parts else sa.and_(*parts)
