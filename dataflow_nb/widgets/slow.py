"""SlowQueriesView: the monitor's slow-query log as a sortable table, with a plan on request."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import traitlets

from dataflow_nb.explain import explain
from dataflow_nb.widgets.base import RefreshingView, html_table, plain, shown, table_widget

if TYPE_CHECKING:
    from dataflow_nb.dataflow import DataFlow
    from dataflow_nb.monitor.monitor import SlowQuery

COLUMNS = ("at", "seconds", "rows", "node_id", "run_id", "sql", "error")
SHOWN = ("at", "seconds", "rows", "node_id", "sql", "error")  # the run is in RunsView; here the SQL gets the room
SORTABLE = ("seconds", "rows", "at", "node_id", "run_id")
_QUOTED = re.compile(r"'(?:[^']|'')*'")  # a literal in a plan: PostgreSQL quotes every value, DuckDB text


def masked_plan(plan: str, values: Sequence[Any]) -> str:
    """``plan`` with every value the statement was bound to replaced by ``***``.

    The databases print the values they planned with (``name = 'x77'``, ``n > 12``); the view
    shows the plan's shape, never the values, Sensitive or not.
    """
    plan = _QUOTED.sub(lambda m: _mask(m, "'***'"), plan)
    for text in sorted({str(v) for v in values if v is not None and str(v)}, key=len, reverse=True):
        plan = re.sub(rf"(?<![\w.]){re.escape(text)}(?![\w.])", lambda m: _mask(m, "***"), plan)
    return plan


def _mask(found: re.Match[str], mask: str) -> str:
    """The mask, padded to the value's width: DuckDB draws its plan in boxes that must stay aligned."""
    return mask.ljust(len(found.group()))


class SlowQueriesView(RefreshingView):
    """The slow-query log of ``db`` (``DataFlow(monitoring=True)``): seconds, rows, node, run and
    the SQL, which has placeholders and never the values.

    Traits: ``rows`` (entries at or above ``threshold``, sorted by ``sort_by``, ``descending``),
    ``threshold`` (seconds; setting it also sets what the monitor logs from now on), ``entry``
    (the row whose plan is shown, -1 for none) and ``plan`` (the database's plan of that entry,
    asked for with ``explain(i)``: planned with the values the statement ran with, which the
    monitor keeps in memory and the view never shows).

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
    entry = traitlets.Int(-1)
    plan = traitlets.Unicode("")

    def __init__(self, db: DataFlow, *, interval: float = 2.0) -> None:
        monitor = db.get_monitor()  # a clear error when monitoring is off
        self._entries: list[SlowQuery] = []
        self._shown: list[SlowQuery] = []  # the entries of ``rows``, in the same order
        self._explained: SlowQuery | None = None  # keeps its plan when a refresh reorders the rows
        self._threshold_box = widgets.BoundedFloatText(
            value=monitor.slow_query_threshold, min=0.0, max=3600.0, step=0.1, description="threshold s"
        )
        self._sort_box = widgets.Dropdown(options=SORTABLE, value="seconds", description="sort by")
        self._order_box = widgets.ToggleButton(value=True, description="slowest first")
        self._pick = widgets.Dropdown(options=[], description="entry", layout=widgets.Layout(width="28em"))
        self._explain_button = widgets.Button(description="explain")
        self._table = table_widget()
        self._plan = table_widget()
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
        self._entries = self._db.get_monitor().slow_query_entries()
        self._arrange()

    def _arrange(self) -> None:
        kept = [e for e in self._entries if e.seconds >= self.threshold]
        key = self.sort_by
        self._shown = sorted(
            kept, key=lambda e: (getattr(e, key) is None, getattr(e, key) or 0), reverse=self.descending
        )
        self.rows = [{c: plain(getattr(e, c)) for c in COLUMNS} for e in self._shown]
        self.entry = next((i for i, e in enumerate(self._shown) if e is self._explained), -1)

    def explain(self, index: int) -> str:
        """The plan of ``rows[index]``'s statement with the values it ran with (EXPLAIN, never executed).

        The values stay in memory: the plan shows ``***`` where the database printed one.
        """
        if not 0 <= index < len(self._shown):
            self._explained, self.entry = None, -1
            self.plan = f"no entry {index}: there are {len(self._shown)}"
        else:
            chosen = self._explained = self._shown[index]
            self.entry = index
            try:
                found = explain((chosen.sql, list(chosen.values)), plan=True, db=self._db)
                self.plan = masked_plan(found.plan or "(the database gave no plan)", chosen.values)
            except Exception as exc:  # a bulk COPY or DDL has no plan; say so in the view
                self.plan = masked_plan(f"no plan for this statement: {type(exc).__name__}: {exc}", chosen.values)
        self._render()
        return self.plan

    def _render(self) -> None:
        options = [(entry_label(i, r), i) for i, r in enumerate(self.rows)]
        if list(self._pick.options) != options:
            self._pick.options = options
        if options:  # the picker names the entry explained, else the first one
            self._pick.value = self.entry if 0 <= self.entry < len(options) else 0
        problem = f"<div style='color:#c62828'>{shown(self.last_error)}</div>" if self.last_error else ""
        self._table.value = problem + html_table(SHOWN, self.rows, css_class="dataflow-slow-queries", numbered=True)
        if self.plan:
            heading = (
                f"<b>Plan of entry {entry_label(self.entry, self.rows[self.entry])}</b>"
                if 0 <= self.entry < len(self.rows)
                else "<b>Plan</b>"
            )
            self._plan.value = (
                f"<div class='dataflow-plan' style='overflow:auto'>{heading}<pre>{shown(self.plan)}</pre></div>"
            )
        else:
            self._plan.value = ""


def entry_label(index: int, row: dict[str, Any]) -> str:
    """How the picker and the plan's heading name a row: its number, seconds, node and SQL's start."""
    sql = " ".join(str(row["sql"]).split())
    return f"{index}: {row['seconds']:.3f}s {row['node_id'] or ''} {sql[:40]}".replace("  ", " ")
