"""What the three views share: a refresh that queries at most once a second, a timer thread that
stops when the view is closed, and HTML helpers that escape (and mask) every text they show.

Each view is an ipywidgets ``VBox`` whose state is plain traitlets (``runs``, ``nodes``,
``rows``...), so tests and scripts read exactly what a person would see, without a browser.
"""

from __future__ import annotations

import html
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import traitlets

from dataflow_nb.core.masking import mask_values

if TYPE_CHECKING:
    from dataflow_nb.dataflow import DataFlow

MIN_INTERVAL = 1.0  # seconds: a view never queries the database more often than this
STATUS_COLOURS = {
    "ok": "#2e7d32",
    "running": "#1565c0",
    "failed": "#c62828",
    "interrupted": "#ef6c00",
    "retried": "#8e24aa",
}


class RefreshingView(widgets.VBox):  # type: ignore[misc]
    """A view of one DataFlow that refreshes itself every ``interval`` seconds until closed.

    Args:
        db: the DataFlow to show.
        interval: seconds between refreshes (at least 1); ``0`` refreshes only when asked.
    """

    interval = traitlets.Float(2.0)
    refreshes = traitlets.Int(0)  # how many times the view queried the database
    last_error = traitlets.Unicode("")  # why the last refresh failed ("" when it did not)

    def __init__(self, db: DataFlow, *, interval: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._db = db
        self._lock = threading.Lock()
        self._queried_at = -MIN_INTERVAL
        self._stop = threading.Event()
        self.interval = interval
        self._thread: threading.Thread | None = None
        self.refresh(wait=False)
        if self.interval > 0:
            # The thread holds the view weakly: a view nobody shows any more can be collected.
            self._thread = threading.Thread(
                target=_tick, args=(weakref.ref(self), self._stop, self.interval), daemon=True
            )
            self._thread.start()

    @traitlets.validate("interval")
    def _check_interval(self, proposal: Any) -> float:
        value = float(proposal["value"])
        return 0.0 if value <= 0 else max(value, MIN_INTERVAL)

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called: the view no longer refreshes."""
        return self._stop.is_set()

    def refresh(self, *, wait: bool = True) -> bool:
        """Query the database and update the view; returns False when it did not query.

        A refresh within a second of the last one waits (``wait=True``) or is skipped.
        """
        with self._lock:
            if self.closed:
                return False
            pause = self._queried_at + MIN_INTERVAL - time.monotonic()
            if pause > 0:
                if not wait:
                    return False
                time.sleep(pause)
            self._queried_at = time.monotonic()
            try:
                self._load()
            except Exception as exc:  # a view shows why it could not refresh; it never raises in a thread
                self.last_error = f"{type(exc).__name__}: {exc}"
            else:
                self.last_error = ""
            self.refreshes += 1
            self._render()
        return True

    def close(self) -> None:
        """Stop refreshing and close the widget."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        super().close()

    def _load(self) -> None:
        """Read the database into the traits."""
        raise NotImplementedError

    def _render(self) -> None:
        """Show the traits."""
        raise NotImplementedError


def _tick(view_ref: weakref.ref[RefreshingView], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        view = view_ref()
        if view is None:
            return
        view.refresh(wait=False)
        del view


def shown(value: Any, secrets: Iterable[str] = ()) -> str:
    """A value as a view shows it: text, masked, escaped for HTML."""
    if value is None:
        text = ""
    elif isinstance(value, float):
        text = f"{value:.3f}"
    elif isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
    else:
        text = str(value)
    return html.escape(mask_values(text, secrets))


TIME_COLUMNS = ("at", "started_at", "finished_at")


# Column widths of the views' tables (the rest share what is left: the SQL takes most of it), so a
# table fits its notebook output at 1,000 px instead of running off its right side.
COLUMN_WIDTHS = {
    "#": "2em",
    "at": "6em",  # the time of day: the slow-query log is this kernel's, the date is on hover
    "started_at": "11em",
    "seconds": "5em",
    "rows": "4em",
    "nodes": "4em",
    "status": "6em",
    "node_id": "7em",
    "run_id": "6em",
    "tenant_id": "5.5em",
    "error_node": "6.5em",
    "error": "22%",  # next to the SQL; without SQL it takes what is left
}


def html_table(
    columns: Sequence[str], rows: Sequence[dict[str, Any]], *, css_class: str, numbered: bool = False
) -> str:
    """A plain HTML table as wide as its output, in a box that scrolls down, one line per row.

    A ``status`` cell is coloured; SQL is monospaced on one line; a long run id or statement is
    cut with "…" (the whole text shows on hover; ``at`` shows the time of day, its date on hover);
    an ``error`` wraps within its column.
    ``numbered`` adds a ``#`` column: the row numbers a view's picker uses.
    """
    shown_columns = ["#", *columns] if numbered else list(columns)
    sized = {c: w for c, w in COLUMN_WIDTHS.items() if c != "error" or "sql" in columns}
    widths = "".join(f"<col style='width:{sized[c]}'>" if c in sized else "<col>" for c in shown_columns)
    head = "".join(
        "<th style='text-align:left;padding:2px 6px;position:sticky;top:0;background:#fff;overflow:hidden;"
        f"text-overflow:ellipsis;white-space:nowrap'>{html.escape(c)}</th>"
        for c in shown_columns
    )
    body = []
    for number, row in enumerate(rows):
        cells = [f"<td style='padding:2px 6px;color:#666'>{number}</td>"] if numbered else []
        for column in columns:
            value = row.get(column)
            style = "padding:2px 6px;vertical-align:top;white-space:nowrap;overflow:hidden;text-overflow:ellipsis"
            if column == "status":
                style += f";color:{STATUS_COLOURS.get(str(value), '#333')};font-weight:bold"
            elif column == "sql":
                value = " ".join(str(value or "").split())  # one line, however the statement was laid out
                style += ";font-family:monospace;font-size:11px"
            elif column == "error":
                style += ";white-space:normal;overflow-wrap:anywhere"
            elif column in TIME_COLUMNS and isinstance(value, str):
                value = value[:19].replace("T", " ")  # ISO text, to the second, UTC
            text = shown(value)
            title = f" title='{text}'" if len(text) > 12 else ""
            if column == "at" and len(text) == 19:
                text = text[11:]
            cells.append(f"<td style='{style}'{title}>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    table = (
        f"<table class='{css_class}' style='width:100%;table-layout:fixed;border-collapse:collapse'>"
        f"<colgroup>{widths}</colgroup><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
    return f"<div style='max-height:560px;overflow:auto;width:100%'>{table}</div>"


def table_widget() -> widgets.HTML:
    """An HTML widget as wide as the view, so the table inside fits instead of growing past it."""
    return widgets.HTML(layout=widgets.Layout(width="auto", align_self="stretch"))


def plain(value: Any) -> Any:
    """A frame cell as a trait value: datetimes as ISO text, the rest as it is."""
    return value.isoformat() if isinstance(value, datetime) else value
