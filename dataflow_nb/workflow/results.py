"""What a run returns: node outputs by id, the run's seconds, and per-node timings as a frame."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, NamedTuple

from dataflow_nb.core.masking import mask_columns

if TYPE_CHECKING:
    import polars as pl


class NodeTiming(NamedTuple):
    """One node's time in a run (a tuple: one is made for every node a run runs)."""

    node_id: str
    node_type: str
    seconds: float
    status: str


class RunResults(dict[str, Any]):
    """A dict of node id to output, plus ``execution_time``; ``.timings`` is a polars frame."""

    def __init__(
        self,
        run_id: str,
        outputs: dict[str, Any],
        timings: list[NodeTiming],
        seconds: float,
        *,
        sensitive: dict[str, set[str]] | None = None,
        retries: int = 0,
    ):
        super().__init__(outputs)
        self["execution_time"] = seconds
        self.run_id = run_id
        self._timings = timings
        self.retries = retries  # how many times the run was tried again before it succeeded
        self._sensitive = sensitive or {}  # node id -> columns of sensitive fields, masked in the repr

    def __repr__(self) -> str:
        return repr({k: mask_columns(v, self._sensitive.get(k, set())) for k, v in self.items()})

    @property
    def timings(self) -> pl.DataFrame:
        """One row per node: node_id, node_type, seconds, status."""
        import polars as pl

        return pl.DataFrame(
            [t._asdict() for t in self._timings],
            schema={"node_id": pl.String, "node_type": pl.String, "seconds": pl.Float64, "status": pl.String},
        )

    def _outputs(self) -> list[tuple[str, Any]]:
        """Each node's output as shown: sensitive columns masked."""
        return [(k, mask_columns(v, self._sensitive.get(k, set()))) for k, v in self.items() if k != "execution_time"]

    def _repr_html_(self) -> str:
        """The run, its nodes' timings, then each node's output (frames truncated as their library does)."""
        rows = "".join(
            f"<tr><td>{html.escape(t.node_id)}</td><td>{html.escape(t.node_type)}</td>"
            f"<td>{t.seconds * 1000:.1f} ms</td><td>{html.escape(t.status)}</td></tr>"
            for t in self._timings
        )
        retried = f" &middot; retried {self.retries}&times;" if self.retries else ""
        outputs = "".join(
            f"<details open><summary><code>{html.escape(k)}</code></summary>{_html_of(v)}</details>"
            for k, v in self._outputs()
        )
        return (
            f"<b>Run</b> <code>{html.escape(self.run_id)}</code> &middot; {self['execution_time']:.3f} s{retried}"
            f"<table><tr><th>node</th><th>type</th><th>time</th><th>status</th></tr>{rows}</table>{outputs}"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """The plain-text view for a notebook without HTML (and IPython's terminal)."""
        retried = f" · retried {self.retries}x" if self.retries else ""
        lines = [f"Run {self.run_id} · {self['execution_time']:.3f} s{retried}"]
        lines += [f"  {t.node_id} ({t.node_type}): {t.status}, {t.seconds * 1000:.1f} ms" for t in self._timings]
        printer.text("\n".join(lines))
        for k, v in self._outputs():
            printer.text(f"\n\n{k}:\n")
            printer.pretty(v)  # a bulk report's own text; a frame's repr, truncated as its library does


def _html_of(value: Any) -> str:
    """An output as HTML: its own ``_repr_html_`` (polars and pandas truncate long frames), else its repr."""
    render = getattr(value, "_repr_html_", None)
    if callable(render):
        shown = render()
        if isinstance(shown, str):
            return shown
    return f"<pre>{html.escape(repr(value))}</pre>"
