"""What a load job returns: exact counts, per-batch timings and the rejected rows.

Plain types in the vocabulary layer: the backends' load jobs fill the report the bulk nodes
return (its public name stays ``dataflow_nb.bulk.BulkReport``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class Rejection:
    """One value that did not fit: where it was, what it was, and why."""

    row: int
    column: str
    value: str | None
    reason: str


# What each count of a report means, in the order reports show them.
MEANINGS = {
    "rows_written": "rows inserted, updated or deleted",
    "rows_rejected": "input rows dropped because a value did not fit (on_error 'skip' or 'quarantine')",
    "inserted": "new rows",
    "updated": "stored rows the input changed (updated_at and version moved)",
    "unchanged": "upsert: stored rows the input matched with equal values, left as they were (not rewritten)",
    "deleted": "rows deleted (or soft-deleted)",
    "collapsed": "input rows dropped because a later input row had the same key (the last one won)",
    "rows_read": "input rows read",
    "seconds": "wall time of the node",
    "batches": "batches streamed (report.batches has each one's rows and seconds)",
}


@dataclass
class BulkReport:
    """The outcome of one bulk node. Counts are exact, not estimates.

    Each count is explained in ``MEANINGS`` (shown in the HTML repr too).
    """

    node: str
    model: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    collapsed: int = 0
    rows_read: int = 0
    seconds: float = 0.0
    batch_log: list[tuple[int, int, float]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    rows_rejected: int = 0

    @property
    def rows_written(self) -> int:
        return self.inserted + self.updated + self.deleted

    @property
    def batches(self) -> pl.DataFrame:
        """A polars frame: batch, rows, seconds."""
        import polars as pl

        return pl.DataFrame(
            self.batch_log, schema={"batch": pl.Int64, "rows": pl.Int64, "seconds": pl.Float64}, orient="row"
        )

    @property
    def rejected(self) -> pl.DataFrame:
        """A polars frame of the rejected rows: row (in the source, from 1), column, value, reason."""
        import polars as pl

        return pl.DataFrame(
            [(r.row, r.column, r.value, r.reason) for r in self.rejections],
            schema={"row": pl.Int64, "column": pl.String, "value": pl.String, "reason": pl.String},
            orient="row",
        )

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        """The counts, for logs and assertions."""
        names = [name for name in MEANINGS if name != "batches"]
        return {name: getattr(self, name) for name in names} | {"batches": len(self.batch_log)}

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v:,}" for k, v in self.as_dict().items())
        return f"BulkReport({self.node}: {counts})"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v:,.3f}</td><td>{html.escape(MEANINGS[k])}</td></tr>"
            if isinstance(v, float)
            else f"<tr><td>{html.escape(k)}</td><td>{v:,}</td><td>{html.escape(MEANINGS[k])}</td></tr>"
            for k, v in self.as_dict().items()
        )
        bad = ""
        if self.rejections:
            shown = "".join(
                f"<tr><td>{r.row}</td><td>{html.escape(r.column)}</td><td>{html.escape(str(r.value))}</td>"
                f"<td>{html.escape(r.reason)}</td></tr>"
                for r in self.rejections[:10]
            )
            bad = (
                f"<p>First rejected rows (of {self.rows_rejected:,}):</p><table><tr><th>row</th><th>column</th>"
                f"<th>value</th><th>reason</th></tr>{shown}</table>"
            )
        return f"<b>{html.escape(self.node)}</b> on {html.escape(self.model)}<table>{rows}</table>{bad}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Plain text for a notebook without HTML: the counts, then the first rejected rows."""
        lines = [f"{self.node} on {self.model}"]
        lines += [f"  {k}: {v:,.3f}" if isinstance(v, float) else f"  {k}: {v:,}" for k, v in self.as_dict().items()]
        if self.rejections:
            lines.append(f"first rejected rows (of {self.rows_rejected:,}):")
            lines += [f"  row {r.row}, {r.column}={r.value!s}: {r.reason}" for r in self.rejections[:10]]
        printer.text("\n".join(lines))
