"""TenantMetricsView: per tenant, runs and errors, statements and their p50/p95, rows read and
written, and the rows each tenant holds in each multi-tenant model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import sqlalchemy as sa
import traitlets

from dataflow_nb.backends.base import compile_statement
from dataflow_nb.widgets.base import RefreshingView, html_table, shown, table_widget

if TYPE_CHECKING:
    from dataflow_nb.dataflow import DataFlow

COLUMNS = (
    "tenant",
    "runs",
    "failed_runs",
    "statements",
    "errors",
    "rows_read",
    "rows_written",
    "p50_seconds",
    "p95_seconds",
)


class TenantMetricsView(RefreshingView):
    """Per-tenant numbers for ``db``, refreshed every ``interval`` seconds.

    Runs, failed runs, rows read and written come from the run history (every kernel's runs);
    statements, statement errors and p50/p95 statement seconds from this kernel's monitor
    (``monitoring=True``; 0 without it). ``models`` counts each tenant's rows per multi-tenant model.

    Traits: ``rows`` (one dict per tenant, by name) and ``models`` (``{model: {tenant: rows}}``).

    Examples:
        >>> from dataflow_nb import DataFlow
        >>> db = DataFlow()
        >>> view = TenantMetricsView(db, interval=0)
        >>> view.rows, view.models
        ([], {})
        >>> view.close(); db.close()
    """

    rows: traitlets.List[dict[str, Any]] = traitlets.List()
    models = traitlets.Dict()

    def __init__(self, db: DataFlow, *, interval: float = 2.0) -> None:
        self._table = table_widget()
        self._models = table_widget()
        super().__init__(db, interval=interval)
        self.children = [widgets.HTML("<b>Tenants</b>"), self._table, self._models]
        self.add_class("dataflow-tenant-metrics-view")

    def _load(self) -> None:
        per: dict[str, dict[str, Any]] = {}

        def entry(tenant: str) -> dict[str, Any]:
            return per.setdefault(tenant, {c: 0 if c != "tenant" else tenant for c in COLUMNS})

        for row in self._db.history.tenant_summary().to_pylist():
            if row["tenant_id"] is not None:
                found = entry(row["tenant_id"])
                for key in ("runs", "failed_runs", "rows_read", "rows_written"):
                    found[key] = row[key]
        if self._db.monitor is not None:
            for row in self._db.monitor.tenant_metrics().to_dicts():
                found = entry(row["tenant"])
                found["statements"], found["errors"] = row["statements"], row["failed"]
                found["p50_seconds"], found["p95_seconds"] = row["p50_seconds"], row["p95_seconds"]
        self.rows = [per[t] for t in sorted(per)]
        self.models = self._model_rows()

    def _model_rows(self) -> dict[str, dict[str, int]]:
        """Each multi-tenant model's rows per tenant (soft-deleted rows included: they are stored)."""
        counted: dict[str, dict[str, int]] = {}
        specs = [m for m in self._db.models.values() if m.multi_tenant]
        if not specs:
            return counted
        with self._db.history.backend_connection() as connection:
            for spec in specs:
                table = sa.table(spec.table_name, sa.column("tenant_id"))
                query = sa.select(table.c.tenant_id, sa.cast(sa.func.count(), sa.BigInteger)).group_by(
                    table.c.tenant_id
                )
                result = connection.execute(compile_statement(query, self._db.backend.dialect))
                assert result is not None
                counted[spec.name] = {str(t): int(n) for t, n in zip(*result.to_pydict().values(), strict=True)}
        return counted

    def _render(self) -> None:
        problem = f"<div style='color:#c62828'>{shown(self.last_error)}</div>" if self.last_error else ""
        self._table.value = problem + html_table(COLUMNS, self.rows, css_class="dataflow-tenants")
        tenants = sorted({t for counts in self.models.values() for t in counts})
        rows = [{"model": m, **{t: counts.get(t, 0) for t in tenants}} for m, counts in sorted(self.models.items())]
        self._models.value = (
            "<b>Rows per model</b>" + html_table(["model", *tenants], rows, css_class="dataflow-tenant-models")
            if rows
            else ""
        )
