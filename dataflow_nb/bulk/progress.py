"""Progress of long loads: tqdm's notebook widget in Jupyter, a text bar in terminals, or nothing.

The widget needs ipywidgets; without it the text bar is used rather than tqdm's warning.
``progress=False`` or ``DATAFLOW_PROGRESS=0`` turns it off; by default it shows where a person
is watching (a notebook, or a terminal on stderr) and stays quiet in logs and CI.

A bar always has a total where one is known, so it shows a percentage and an ETA: the rows of
a frame or a Parquet file, else the bytes of a file (read position from the reader), with the
rows so far beside it. A load that fails or is interrupted ends red, saying it was rolled back.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Any

# Whole rows with thousands separators (tqdm's unit_scale would print 16 rows as "16.0").
_ROWS_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n:,.0f}/{total:,.0f} rows [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)
_BYTES_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
_COUNT_FORMAT = "{desc}: {n:,.0f} rows [{elapsed}, {rate_fmt}{postfix}]"
ROLLED_BACK = "rolled back, 0 rows written"


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    try:
        return shell is not None and type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"
    except Exception:  # a broken IPython must never break a load
        return False


def wanted(progress: bool | None) -> bool:
    """Whether to show a bar for this ``progress`` parameter."""
    if os.environ.get("DATAFLOW_PROGRESS", "").strip().lower() in ("0", "false", "off", "no"):
        return False
    if progress is not None:
        return bool(progress)
    return _in_notebook() or sys.stderr.isatty()


def bar_options(description: str, total_rows: int | None, total_bytes: int | None) -> dict[str, Any]:
    """tqdm's options for a load: rows when their number is known, else the file's bytes, else a count."""
    options: dict[str, Any] = {"desc": description, "leave": True, "dynamic_ncols": True}
    if total_rows is not None:
        return options | {"total": total_rows, "unit": " rows", "unit_scale": True, "bar_format": _ROWS_FORMAT}
    if total_bytes:
        return options | {"total": total_bytes, "unit": "B", "unit_scale": True, "bar_format": _BYTES_FORMAT}
    return options | {"total": None, "unit": " rows", "unit_scale": True, "bar_format": _COUNT_FORMAT}


@functools.cache
def _unmonitored(bar: type[Any]) -> type[Any]:
    """A tqdm class without its monitor thread, which would outlive the load (updates come often)."""
    return type(bar.__name__, (bar,), {"monitor_interval": 0})


class Progress:
    """Rows (and bytes read, for files) of one load; a no-op when not wanted.

    In a notebook the bar is tqdm's widget, displayed under a display id: a saved notebook keeps
    the text a widget was first shown with (``0%``), so ``close`` updates that display with the
    final count as its text, next to the widget itself.
    """

    def __init__(self, enabled: bool, *, description: str, total_rows: int | None, total_bytes: int | None):
        self._bar: Any = None
        self._display: Any = None
        self.rows = 0
        options = bar_options(description, total_rows, total_bytes)
        self._by_bytes = options["unit"] == "B"
        if not enabled:
            return
        try:
            if _in_notebook():
                try:
                    import ipywidgets  # noqa: F401 - only checking that the widget can render
                    from IPython.display import display
                    from tqdm.notebook import tqdm as notebook_bar
                except ImportError:
                    notebook_bar = None
                if notebook_bar is not None:
                    self._bar = _unmonitored(notebook_bar)(**options, display=False)
                    self._display = display(self._bar.container, display_id=True)  # type: ignore[no-untyped-call]
                    return
            from tqdm.std import tqdm

            self._bar = _unmonitored(tqdm)(**options)
        except Exception:  # a progress bar is never worth a failed load
            self._bar = None

    def update(self, rows: int, bytes_read: int | None = None) -> None:
        """``rows`` more rows read; ``bytes_read``: how far into the input the reader is."""
        self.rows += rows
        if self._bar is None:
            return
        try:
            if not self._by_bytes:
                self._bar.update(rows)
                return
            if bytes_read is not None and bytes_read > self._bar.n:
                self._bar.update(min(bytes_read, self._bar.total) - self._bar.n)
            self._bar.set_postfix_str(f"{self.rows:,} rows", refresh=True)
        except Exception:
            self._bar = None

    def fill(self) -> None:
        """The whole input was read (a file's bar counts bytes, and the reader's position lags)."""
        if self._bar is None or not self._by_bytes:
            return
        try:
            self._bar.update(self._bar.total - self._bar.n)
            self._bar.refresh()  # shown now, whenever the last update was
        except Exception:
            self._bar = None

    def close(self, *, ok: bool = True) -> None:
        """End the bar: full when the load wrote its rows, red and saying so when it was rolled back."""
        if ok:
            self.fill()
        if self._bar is None:
            return
        bar, self._bar = self._bar, None
        try:
            if not ok:
                bar.set_description_str(f"{bar.desc}: {ROLLED_BACK}", refresh=False)
                bar.colour = "red"
            bar.close()
            if not ok and self._display is not None:
                bar.disp(bar_style="danger", check_delay=False)  # tqdm colours a finished bar green
            with contextlib.suppress(Exception):  # the load is done; its bar must not fail it now
                self._show_final(bar)
        except Exception:  # a bar is never worth a failed load, nor hiding why it failed
            return

    def _show_final(self, bar: Any) -> None:
        """The notebook display's text becomes the final count (what a saved notebook shows)."""
        if self._display is None:
            return
        bundle = dict(bar.container._repr_mimebundle_())
        bundle["text/plain"] = bar.format_meter(**{**bar.format_dict, "ncols": 80})
        self._display.update(bundle, raw=True)
