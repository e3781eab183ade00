"""Notebook views of a DataFlow on ipywidgets: runs, slow queries and tenant metrics, live.

``import dataflow_nb`` never imports this package (nor ipywidgets); importing it does.

Examples:
    >>> from dataflow_nb import DataFlow
    >>> from dataflow_nb.widgets import RunsView
    >>> db = DataFlow()
    >>> view = RunsView(db, interval=0)
    >>> view.close(); db.close()
"""

from __future__ import annotations

from dataflow_nb.widgets.runs import RunsView
from dataflow_nb.widgets.slow import SlowQueriesView
from dataflow_nb.widgets.tenants import TenantMetricsView

__all__ = ["RunsView", "SlowQueriesView", "TenantMetricsView"]
