"""SlowQueriesView: the monitor's slow-query log as a sortable table, with a plan on request."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import traitlets

from dataflow_nb.widgets.base import RefreshingView, html_table, plain, shown

if TYPE_CHECKING:
    from dataflow_nb.dataflow import DataFlow

COLUMNS = ("at", "seconds", "rows", "node_id", "run_id", "sql", "error")
SORTABLE = ("seconds", "rows", "at", "node_id", "run_id")
_PLACEHOLDER = re.compile(r"\$(\d+)")


class SlowQueriesView(RefreshingView):
    """The slow-query log of ``db`` (``DataFlow(monitoring=True)``): seconds, rows, node, run and
    the SQL, which has placeholders and never the values.

    Traits: ``rows`` (entries at or above ``threshold``, sorted by ``sort_by``, ``descending``),
    ``threshold`` (seconds; setting it also sets what the monitor logs from now on), ``plan``
    (the database's plan of the entry asked for with ``explain(i)``).

    Examples:
        >>> from dataflow_nb import DataFlow
        >>> db = DataFlow(monitoring=True, slow_query_threshold=0.5)
        >>> view = SlowQueriesView(db, interval=0)
        >>> view.threshold, view.rows
        (0.5, [])
        >>> view.close(); db.close()
    """

    rows: traitlets.List[dict[str, Any]] = traitlets.List()
    threshold = traitlets.Float(1.0)
    sort_by = traitlets.Enum(SORTABLE, default_value="seconds")
    descending = traitlets.Bool(True)
    plan = traitlets.Unicode("")

    def __init__(self, db: DataFlow, *, interval: float = 2.0) -> None:
        monitor = db.get_monitor()  # a clear error when monitoring is off
        self._entries: list[dict[str, Any]] = []
        self._threshold_box = widgets.BoundedFloatText(
            value=monitor.slow_query_threshold, min=0.0, max=3600.0, step=0.1, description="threshold s"
        )
        self._sort_box = widgets.Dropdown(options=SORTABLE, value="seconds", description="sort by")
        self._order_box = widgets.ToggleButton(value=True, description="slowest first")
        self._pick = widgets.Dropdown(options=[], description="entry")
        self._explain_button = widgets.Button(description="explain")
        self._table = widgets.HTML()
        self._plan = widgets.HTML()
        super().__init__(db, interval=interval)
        self.threshold = monitor.slow_query_threshold
        controls = widgets.HBox([self._threshold_box, self._sort_box, self._order_box])
        self.children = [
            widgets.HTML("<b>Slow queries</b>"),
            controls,
            self._table,
            widgets.HBox([self._pick, self._explain_button]),
            self._plan,
        ]
        self.add_class("dataflow-slow-queries-view")
        widgets.link((self._threshold_box, "value"), (self, "threshold"))
        widgets.link((self._sort_box, "value"), (self, "sort_by"))
        widgets.link((self._order_box, "value"), (self, "descending"))
        self._explain_button.on_click(lambda _: self.explain(self._pick.value or 0))

    @traitlets.observe("threshold", "sort_by", "descending")
    def _changed(self, change: dict[str, Any]) -> None:
        if change["name"] == "threshold":
            self._db.get_monitor().slow_query_threshold = max(float(change["new"]), 0.0)
        if hasattr(self, "_table"):
            self._arrange()
            self._render()

    def _load(self) -> None:
        frame = self._db.get_monitor().slow_queries()
        self._entries = [{c: plain(v) for c, v in row.items()} for row in frame.to_dicts()]
        self._arrange()

    def _arrange(self) -> None:
        kept = [e for e in self._entries if e["seconds"] >= self.threshold]
        key = self.sort_by
        self.rows = sorted(kept, key=lambda e: (e[key] is None, e[key] or 0), reverse=self.descending)

    def explain(self, index: int) -> str:
        """The plan of ``rows[index]``'s statement (EXPLAIN, never executed; values bound as NULL).

        The log keeps no values, so the plan is the one for unknown (NULL) values.
        """
        from dataflow_nb.explain import explain

        if not 0 <= index < len(self.rows):
            self.plan = f"no entry {index}: there are {len(self.rows)}"
        else:
            sql = self.rows[index]["sql"]
            placeholders = {int(n) for n in _PLACEHOLDER.findall(sql)}
            try:
                found = explain((sql, [None] * max(placeholders, default=0)), plan=True, db=self._db)
                self.plan = found.plan or "(the database gave no plan)"
            except Exception as exc:  # a bulk COPY or DDL has no plan; say so in the view
                self.plan = f"no plan for this statement: {type(exc).__name__}: {exc}"
        self._render()
        return self.plan

    def _render(self) -> None:
        options = [(f"{i}: {r['seconds']:.3f}s {r['node_id'] or ''}", i) for i, r in enumerate(self.rows)]
        if list(self._pick.options) != options:
            self._pick.options = options
        problem = f"<div style='color:#c62828'>{shown(self.last_error)}</div>" if self.last_error else ""
        self._table.value = problem + html_table(COLUMNS, self.rows, css_class="dataflow-slow-queries")
        self._plan.value = f"<pre>{shown(self.plan)}</pre>" if self.plan else ""
