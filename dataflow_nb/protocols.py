"""What the layers below ``dataflow.py`` and ``workflow/`` need of a DataFlow and of a run.

A DataFlow is a ``RunDatabase``: nodes, the run, bulk loads, the audit and ``transfer`` take one
(``backends.base.Database`` is the smaller part, name, backend and models, that lower layers need).
``workflow/context.py``'s RunContext is a ``Run``: what a node's ``run`` is given. Neither names
this module; typing against it keeps nodes and the layers under them from naming upper modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dataflow_nb.backends.base import Database

if TYPE_CHECKING:
    import pyarrow as pa

    from dataflow_nb.backends.base import CompiledSQL, Connection
    from dataflow_nb.backends.replicas import Replicas
    from dataflow_nb.cache.results import CachePolicy, ResultCache
    from dataflow_nb.core.digest import InputDigest
    from dataflow_nb.frames import JsonMode
    from dataflow_nb.monitor.monitor import Monitor
    from dataflow_nb.monitor.runs import NodeRecord, RunHistory
    from dataflow_nb.query.scope import Scope


@runtime_checkable
class RunDatabase(Database, Protocol):
    """A DataFlow as its nodes and their run see it: also its caches, history, monitor and node types."""

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


class Run(Protocol):
    """A workflow run as a node sees it: its scope, its connections, and statements it counts."""

    cache_policy: CachePolicy | None  # the running node's; a node may drop it (None: not cached)

    @property
    def run_id(self) -> str: ...
    @property
    def scope(self) -> Scope: ...
    @property
    def node_id(self) -> str | None: ...
    @property
    def current(self) -> NodeRecord | None: ...  # the running node's history record
    @property
    def digests(self) -> dict[str, InputDigest]: ...  # bulk input per node, for the audit
    def connection(self, db: RunDatabase) -> Connection: ...
    def execute(
        self,
        db: RunDatabase,
        compiled: CompiledSQL,
        params: Mapping[str, Any] | None = None,
        *,
        read_only: bool = False,
    ) -> pa.Table | None: ...
    def execute_count(self, db: RunDatabase, compiled: CompiledSQL, params: Mapping[str, Any] | None = None) -> int: ...
    def ingest(self, db: RunDatabase, table: str, data: pa.RecordBatchReader, *, temporary: bool = False) -> int: ...
    def note_writes(self, db: RunDatabase, tables: set[str] | frozenset[str]) -> None: ...
