"""What the layers below ``dataflow.py`` and ``workflow/`` need of a DataFlow, a run and a node,
and what a run tells the observers that follow it.

A DataFlow is a ``RunDatabase``: nodes, the run, bulk loads, the audit and ``transfer`` take one
(``backends.base.Database`` is the smaller part, name, backend and models, that lower layers need).
``workflow/context.py``'s RunContext is a ``Run``: what a node's ``run`` and every observer are
given. A node is a ``RunNode`` to the observers and guards: it says what they need to know of it
(the databases it writes, what it wrote, which values are sensitive), so none of them names a kind
of node. None of them names this module; typing against it keeps the layers below from naming
upper modules.

``RunObserver`` is the base of what follows a run (the result cache, the monitor, the run history,
the audit, the masking of sensitive values): each subscribes to the run's events instead of the
run context carrying a field for each of them. One is built once per DataFlow (kept as
``db.observers``, ``workflow/subscribers.py``), so a run pays nothing to set them up; one that keeps
something about a run opens a per-run observer for it (``open``, called when the run first names
that database). Run-wide observers (the history record and the masking of sensitive values, which
span every database of a run) are handed to the run by the runtime. Every hook is a no-op by
default; ``RunContext`` calls them. ``dataflow_nb/observers/`` says where a new one goes.
Statements are the hot path: ``on_statement`` runs for every one, so it must stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, runtime_checkable

from dataflow_nb.backends.base import Database

if TYPE_CHECKING:
    import pyarrow as pa

    from dataflow_nb.backends.base import CompiledSQL, Connection
    from dataflow_nb.backends.replicas import Replicas
    from dataflow_nb.cache.results import ResultCache
    from dataflow_nb.core.spec import Field
    from dataflow_nb.frames import Frame, FrameKind, JsonMode
    from dataflow_nb.monitor.monitor import Monitor
    from dataflow_nb.monitor.runs import RunHistory
    from dataflow_nb.query.scope import Scope

Obs = TypeVar("Obs", bound="RunObserver")


@runtime_checkable
class RunDatabase(Database, Protocol):
    """A DataFlow as its nodes and their run see it: also its caches, history, monitor, observers
    and node types."""

    @property
    def json(self) -> JsonMode: ...
    @property
    def result_cache(self) -> ResultCache | None: ...
    @property
    def history(self) -> RunHistory: ...
    @property
    def monitor(self) -> Monitor | None: ...
    @property
    def replicas(self) -> Replicas | None: ...
    @property
    def nodes(self) -> Mapping[str, type]: ...  # node classes by name (nodes/ sits above this module)
    @property
    def observers(self) -> tuple[RunObserver, ...]: ...  # what follows its runs (built once)


class Run(Protocol):
    """A workflow run as a node and an observer see it: its scope, its connections, the
    statements it counts, and its observers."""

    @property
    def run_id(self) -> str: ...
    @property
    def scope(self) -> Scope: ...
    @property
    def node_id(self) -> str | None: ...
    def connection(self, db: RunDatabase) -> Connection: ...
    def execute(
        self,
        db: RunDatabase,
        compiled: CompiledSQL,
        params: Mapping[str, Any] | None = None,
        *,
        read_only: bool = False,
        cacheable: bool = True,
    ) -> pa.Table | None: ...
    def execute_frame(
        self,
        db: RunDatabase,
        compiled: CompiledSQL,
        params: Mapping[str, Any] | None,
        fields: Mapping[str, Field],
        *,
        kind: FrameKind,
        json: JsonMode,
    ) -> Frame: ...
    def execute_count(self, db: RunDatabase, compiled: CompiledSQL, params: Mapping[str, Any] | None = None) -> int: ...
    def ingest(self, db: RunDatabase, table: str, data: pa.RecordBatchReader, *, temporary: bool = False) -> int: ...
    def note_writes(self, db: RunDatabase, tables: set[str] | frozenset[str]) -> None: ...
    def written_on(self, db: RunDatabase) -> set[str]: ...  # tables written on db so far ("*": any)
    def served_by(self, db: RunDatabase) -> str: ...  # "primary" or a replica's masked URL
    def reads_replica(self, db: RunDatabase) -> bool: ...
    def mask(self, text: str) -> str: ...  # the run's sensitive values shown as ***
    def observer(self, kind: type[Obs], db: RunDatabase | None = None) -> Obs | None: ...


@dataclass(frozen=True)
class Written:
    """What a node wrote, as the audit log keeps it: the ids of the records, or a value to keep
    a keyed digest of (a bulk node's filter; SQL with its values), never the values themselves."""

    operation: str
    rows: int | None
    model: str | None = None
    keys: list[int] | None = None
    digest_of: Any = None


class RunNode(Protocol):
    """A node as the run's observers and guards see it (``nodes/base.py``'s Node is one)."""

    @property
    def node_type(self) -> str: ...
    def writes_to(self, params: Mapping[str, Any]) -> RunDatabase | None: ...
    def written(self, params: Mapping[str, Any], output: Any) -> Written | None: ...
    def sensitive_fields(self, params: Mapping[str, Any]) -> frozenset[str]: ...
    def sensitive_columns(self, params: Mapping[str, Any]) -> set[str]: ...


class Statement(NamedTuple):
    """One statement a run sent, after it ran (or failed); a tuple, cheap to make for every statement."""

    sql: str
    seconds: float
    rows: int  # returned or changed; 0 when it failed
    writes: bool  # counted as rows written (else read)
    error: BaseException | None = None
    values: Callable[[], list[Any]] | None = None  # its bound values, asked for only when needed
    result: pa.Table | None = None  # the rows a read returned


class NodeEnd(NamedTuple):
    """A node that ended: ``"ok"`` with its ``output``, or ``"failed"``/``"interrupted"`` with its
    ``error`` (masked already); one tuple, so each observer's hook takes it whole."""

    node_id: str
    node: RunNode | None
    params: Mapping[str, Any]
    output: Any
    status: str = "ok"
    error: str | None = None


class RunObserver:
    """Hooks a run calls; each one does nothing unless overridden."""

    def open(self, run: Run, db: RunDatabase) -> RunObserver:
        """The observer of ``run`` on ``db``: ``self``, or one that keeps what this run needs."""
        return self

    def on_connect(self, run: Run, db: RunDatabase) -> None:
        """The run opened its connection (and transaction) to ``db``."""

    def on_node_start(self, run: Run, node_id: str, node: RunNode, params: Mapping[str, Any]) -> None:
        """A node is about to run with ``params``."""

    def answer(
        self, run: Run, db: RunDatabase, compiled: CompiledSQL, params: Mapping[str, Any] | None, *, cacheable: bool
    ) -> pa.Table | None:
        """Rows for a read without asking the database (the result cache), or None to run it."""
        return None

    def on_statement(self, run: Run, db: RunDatabase, statement: Statement) -> None:
        """A statement of the run ran on ``db`` (``statement.error`` set when it failed)."""

    def on_node_end(self, run: Run, end: NodeEnd) -> None:
        """A node ended: ``"ok"`` with its ``output``, or ``"failed"``/``"interrupted"`` (masked ``error``)."""

    def on_outcome(self, run: Run, status: str, *, node_id: str | None = None, error: str | None = None) -> None:
        """The attempt's outcome is known: before the commit when ok, before the rollback when not."""

    def before_commit(self, run: Run, db: RunDatabase, connection: Connection) -> None:
        """``db`` is about to commit the run's transaction on ``connection``."""

    def on_commit(self, run: Run, db: RunDatabase, connection: Connection) -> None:
        """``db`` committed the run's transaction (the connection is not given back yet)."""

    def on_release(self, run: Run) -> None:
        """The attempt gave its connections back (committed or rolled back)."""

    def on_retry(self, run: Run) -> None:
        """The attempt failed and the run is tried again."""

    def on_run_end(self, run: Run, status: str, *, seconds: float, nodes: int, retries: int) -> None:
        """The run is over (``run`` is its last attempt): ok, failed or interrupted."""
