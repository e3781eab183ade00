"""What follows a run: the result cache, the monitor, the run history and the audit subscribe to
its events instead of the run context carrying a field for each of them.

A ``RunObserver`` is built once per DataFlow (``workflow/subscribers.py``, kept as
``db.observers``), so a run pays nothing to set them up. One that keeps something about a run
opens a per-run observer for it (``open``, called when the run first names that database: the
cache's, the audit's); the others serve every run themselves. Run-wide observers (the history
record and the masking of sensitive values, which span every database of a run) are handed to
the run by the runtime. Every hook is a no-op by default; ``RunContext`` calls them.

A new concern that follows runs is a subclass overriding the hooks it needs, added in
``workflow/subscribers.py`` (one per DataFlow) or, if it spans databases, by the runtime.
Statements are the hot path: ``on_statement`` runs for every one, so it must stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pyarrow as pa

    from dataflow_nb.backends.base import CompiledSQL, Connection
    from dataflow_nb.dataflow import DataFlow
    from dataflow_nb.nodes.base import Node
    from dataflow_nb.workflow.context import RunContext


class Statement(NamedTuple):
    """One statement a run sent, after it ran (or failed); a tuple, cheap to make for every statement."""

    sql: str
    seconds: float
    rows: int  # returned or changed; 0 when it failed
    writes: bool  # counted as rows written (else read)
    error: BaseException | None = None
    values: Callable[[], list[Any]] | None = None  # its bound values, asked for only when needed
    result: pa.Table | None = None  # the rows a read returned


class RunObserver:
    """Hooks a run calls; each one does nothing unless overridden."""

    def open(self, run: RunContext, db: DataFlow) -> RunObserver:
        """The observer of ``run`` on ``db``: ``self``, or one that keeps what this run needs."""
        return self

    def on_connect(self, run: RunContext, db: DataFlow) -> None:
        """The run opened its connection (and transaction) to ``db``."""

    def on_node_start(self, run: RunContext, node_id: str, node: Node, params: Mapping[str, Any]) -> None:
        """A node is about to run with ``params``."""

    def answer(
        self, run: RunContext, db: DataFlow, compiled: CompiledSQL, params: Mapping[str, Any] | None, *, cacheable: bool
    ) -> pa.Table | None:
        """Rows for a read without asking the database (the result cache), or None to run it."""
        return None

    def on_statement(self, run: RunContext, db: DataFlow, statement: Statement) -> None:
        """A statement of the run ran on ``db`` (``statement.error`` set when it failed)."""

    def on_writes(self, run: RunContext, db: DataFlow, tables: frozenset[str] | set[str]) -> None:
        """The run wrote (or is about to write) ``tables`` of ``db``; ``"*"``: any of them."""

    def on_node_end(
        self,
        run: RunContext,
        node_id: str,
        node: Node | None,
        params: Mapping[str, Any],
        output: Any,
        *,
        status: str = "ok",
        error: str | None = None,
    ) -> None:
        """A node ended: ``"ok"`` with its ``output``, or ``"failed"``/``"interrupted"`` (masked ``error``)."""

    def on_outcome(self, run: RunContext, status: str, *, node_id: str | None = None, error: str | None = None) -> None:
        """The attempt's outcome is known: before the commit when ok, before the rollback when not."""

    def before_commit(self, run: RunContext, db: DataFlow, connection: Connection) -> None:
        """``db`` is about to commit the run's transaction on ``connection``."""

    def on_commit(self, run: RunContext, db: DataFlow, connection: Connection) -> None:
        """``db`` committed the run's transaction (the connection is not given back yet)."""

    def on_release(self, run: RunContext) -> None:
        """The attempt gave its connections back (committed or rolled back)."""

    def on_retry(self, run: RunContext) -> None:
        """The attempt failed and the run is tried again."""

    def on_run_end(self, run: RunContext, status: str, *, seconds: float, nodes: int, retries: int) -> None:
        """The run is over (``run`` is its last attempt): ok, failed or interrupted."""
