"""What the layers below ``dataflow.py`` need of a DataFlow, so they name no upper module.

A DataFlow is a ``RunDatabase``: nodes, the run, bulk loads, the audit and ``transfer`` take one.
``backends.base.Database`` is the smaller part (name, backend, models) lower layers need.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from dataflow_nb.backends.base import Database

if TYPE_CHECKING:
    from dataflow_nb.backends.replicas import Replicas
    from dataflow_nb.cache.results import ResultCache
    from dataflow_nb.frames import JsonMode
    from dataflow_nb.monitor.monitor import Monitor
    from dataflow_nb.monitor.runs import RunHistory


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
