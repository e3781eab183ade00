"""Progress of long loads: tqdm's notebook widget in Jupyter, a text bar in terminals, or nothing.

The widget needs ipywidgets; without it the text bar is used rather than tqdm's warning.
``progress=False`` or ``DATAFLOW_PROGRESS=0`` turns it off; by default it shows where a person
is watching (a notebook, or a terminal on stderr) and stays quiet in logs and CI.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any


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


class Progress:
    """Rows (and megabytes read, for files) of one load; a no-op when not wanted.

    In a notebook the bar is tqdm's widget, displayed under a display id: a saved notebook keeps
    the text a widget was first shown with (``0%``), so ``close`` updates that display with the
    final count as its text, next to the widget itself.
    """

    def __init__(self, enabled: bool, *, description: str, total_rows: int | None, total_bytes: int | None):
        self._bar: Any = None
        self._display: Any = None
        self._total_bytes = total_bytes
        if not enabled:
            return
        options: dict[str, Any] = {
            "total": total_rows,
            "desc": description,
            "unit": " rows",
            "unit_scale": True,
            "leave": True,
            "dynamic_ncols": True,
        }
        try:
            if _in_notebook():
                try:
                    import ipywidgets  # noqa: F401 - only checking that the widget can render
                    from IPython.display import display
                    from tqdm.notebook import tqdm as notebook_bar
                except ImportError:
                    notebook_bar = None
                if notebook_bar is not None:
                    self._bar = notebook_bar(**options, display=False)
                    self._display = display(self._bar.container, display_id=True)  # type: ignore[no-untyped-call]
                    return
            from tqdm.std import tqdm

            self._bar = tqdm(**options)
        except Exception:  # a progress bar is never worth a failed load
            self._bar = None

    def update(self, rows: int, bytes_read: int | None = None) -> None:
        if self._bar is None:
            return
        try:
            self._bar.update(rows)
            if bytes_read and self._total_bytes:
                self._bar.set_postfix_str(f"{bytes_read / 1e6:,.0f}/{self._total_bytes / 1e6:,.0f} MB", refresh=False)
        except Exception:
            self._bar = None

    def close(self) -> None:
        if self._bar is not None:
            try:
                self._bar.close()
                with contextlib.suppress(Exception):  # the load is done; its bar must not fail it now
                    self._show_final()
            finally:
                self._bar = None

    def _show_final(self) -> None:
        """The notebook display's text becomes the final count (what a saved notebook shows)."""
        if self._display is None:
            return
        bundle = dict(self._bar.container._repr_mimebundle_())
        bundle["text/plain"] = self._bar.format_meter(**{**self._bar.format_dict, "ncols": 80})
        self._display.update(bundle, raw=True)
