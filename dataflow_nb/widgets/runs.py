"""RunsView: the recent runs, newest first, and the selected run's nodes as a timeline."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import traitlets

from dataflow_nb.widgets.base import STATUS_COLOURS, RefreshingView, html_table, plain, shown, table_widget

if TYPE_CHECKING:
    from dataflow_nb.dataflow import DataFlow

RUN_COLUMNS = ("run_id", "started_at", "status", "seconds", "nodes", "tenant_id", "served_by", "error_node", "error")
NODE_COLUMNS = ("node_id", "node_type", "status", "started", "seconds", "rows_read", "rows_written", "error")


class RunsView(RefreshingView):
    """The run history of ``db``, live: runs of this kernel, of other threads and of other kernels
    on the same database appear as they start, and the selected run's nodes change state as they
    finish.

    Traits (readable without a browser): ``runs`` (dicts, newest first), ``selected`` (a run id;
    the newest run unless chosen), ``nodes`` (the selected run's nodes, in order) and ``error``
    (the selected run's error, "" when it has none).

    Args:
        db: the DataFlow whose runs to show.
        last: how many of the newest runs to list.
        interval: seconds between refreshes (at least 1; 0: only ``refresh()``).

    Examples:
        >>> from dataflow_nb import DataFlow
        >>> db = DataFlow()
        >>> view = RunsView(db, interval=0)
        >>> view.runs, view.selected
        ([], '')
        >>> view.close(); db.close()
    """

    runs: traitlets.List[dict[str, Any]] = traitlets.List()
    selected = traitlets.Unicode("")
    nodes: traitlets.List[dict[str, Any]] = traitlets.List()
    error = traitlets.Unicode("")

    def __init__(self, db: DataFlow, *, last: int = 50, interval: float = 2.0) -> None:
        self._last = last
        self._rendering = False
        self._chosen = False  # the user picked a run: keep it selected when new runs arrive
        # The table lists the runs; the picker is one line that says which run the timeline shows.
        self._picker = widgets.Dropdown(options=[], description="timeline of", layout=widgets.Layout(width="32em"))
        self._table = table_widget()
        self._timeline = widgets.HTML()
        self._title = widgets.HTML()
        super().__init__(db, interval=interval)
        self.children = [self._title, self._table, self._picker, self._timeline]
        self.add_class("dataflow-runs-view")
        self._picker.observe(self._picked, names="value")

    def _picked(self, change: dict[str, Any]) -> None:
        if change["new"] and change["new"] != self.selected and not self._rendering:
            self._chosen = True
            self.selected = change["new"]
            self._load_nodes()
            self._render()

    def select(self, run_id: str) -> None:
        """Show ``run_id``'s nodes (as clicking it in the list does)."""
        self._chosen = True
        self.selected = run_id
        self._load_nodes()
        self._render()

    def _load(self) -> None:
        frame = self._db.history.read_runs(self._last).to_pylist()
        self.runs = [{c: plain(row[c]) for c in RUN_COLUMNS} for row in frame]
        ids = [r["run_id"] for r in self.runs]
        if not self._chosen or self.selected not in ids:
            self._chosen = False
            self.selected = ids[0] if ids else ""
        self._load_nodes()

    def _load_nodes(self) -> None:
        if not self.selected:
            self.nodes, self.error = [], ""
            return
        table = self._db.history.read_nodes(self.selected)
        self.nodes = [{c: row[c] for c in NODE_COLUMNS} for row in table.to_pylist()]
        run = next((r for r in self.runs if r["run_id"] == self.selected), None)
        failed = [n for n in self.nodes if n["error"]]
        if run is not None and run["error"]:
            self.error = f"{run['error_node'] or 'commit'}: {run['error']}"
        elif failed:
            self.error = f"{failed[-1]['node_id']}: {failed[-1]['error']}"
        else:
            self.error = ""

    def _render(self) -> None:
        database = shown(self._db.backend.safe_url)
        problem = f" &middot; <span style='color:#c62828'>{shown(self.last_error)}</span>" if self.last_error else ""
        self._title.value = f"<b>Runs</b> on <code>{database}</code> &middot; {len(self.runs)} shown{problem}"
        options = [(f"{r['run_id'][:12]} {r['status']} {r['started_at'][11:19]}", r["run_id"]) for r in self.runs]
        self._rendering = True  # the list changing under the user is not the user choosing
        try:
            if list(self._picker.options) != options:
                self._picker.options = options
            if self.selected and self._picker.value != self.selected:
                self._picker.value = self.selected
        finally:
            self._rendering = False
        self._table.value = html_table(RUN_COLUMNS, self.runs, css_class="dataflow-runs")
        self._timeline.value = timeline_html(self.selected, self.nodes, self.error)


def timeline_html(run_id: str, nodes: list[dict[str, Any]], error: str) -> str:
    """The nodes of one run as bars on a shared time axis, coloured by status."""
    if not run_id:
        return "<i>No runs yet.</i>"
    total = max((n["started"] + n["seconds"] for n in nodes), default=0.0) or 1e-9
    bars = []
    for node in nodes:
        left = 100 * node["started"] / total
        width = max(100 * node["seconds"] / total, 0.5)
        colour = STATUS_COLOURS.get(node["status"], "#757575")
        label = (
            f"{shown(node['node_id'])} <span style='color:#666'>{shown(node['node_type'])}</span> &middot; "
            f"{shown(node['status'])} &middot; {node['seconds'] * 1000:.1f} ms &middot; "
            f"rows read {node['rows_read']:,}, written {node['rows_written']:,}"
        )
        problem = (
            f"<div class='dataflow-node-error' style='color:#c62828'>{shown(node['error'])}</div>"
            if node["error"]
            else ""
        )
        bars.append(
            "<div class='dataflow-node' style='margin:3px 0'>"
            f"<div style='font-size:12px'>{label}</div>"
            "<div style='position:relative;height:10px;background:#eee'>"
            f"<div style='position:absolute;left:{left:.2f}%;width:{width:.2f}%;height:10px;background:{colour}'>"
            f"</div></div>{problem}</div>"
        )
    heading = f"<b>Run</b> <code>{html.escape(run_id)}</code> &middot; {len(nodes)} node(s)"
    failure = f"<div class='dataflow-run-error' style='color:#c62828'>error: {shown(error)}</div>" if error else ""
    return f"<div class='dataflow-timeline'>{heading}{failure}{''.join(bars)}</div>"
