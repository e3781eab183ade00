"""The result cache as a run observer: answers a cacheable read, fills the cache behind the run,
and invalidates what the run wrote once its database committed (``cache/results.py`` says why
this never serves a stale result)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataflow_nb.cache.results import CachePolicy, Lookup, ResultCache, cache_policy
from dataflow_nb.protocols import Run, RunDatabase, RunNode, RunObserver, Statement

if TYPE_CHECKING:
    from dataflow_nb.backends.base import CompiledSQL, Connection

log = logging.getLogger("dataflow_nb")


class CacheObserver(RunObserver):
    """One per DataFlow with ``cache_enabled=True``; each run gets a ``CacheRun`` of its own."""

    def __init__(self, cache: ResultCache) -> None:
        self.cache = cache

    def open(self, run: Run, db: RunDatabase) -> RunObserver:
        return CacheRun(self.cache)


class CacheRun(RunObserver):
    """What one run knows about one database's cache: the running node's choice, the cache's
    commit count when the run's transaction began, and the results to keep once it let go."""

    def __init__(self, cache: ResultCache) -> None:
        self.cache = cache
        self.policy: CachePolicy | None = None  # the running node's; None: its reads are never cached
        self.snapshot: int | None = None  # the cache's commit count at BEGIN
        self.pending: Lookup | None = None  # the read being answered by the database
        # Results read on a miss: handed to the cache's writer once the run let go of its
        # connections, so copying them into the cache never competes with the run itself.
        self.fills: list[tuple[Lookup, pa.Table]] = []

    def on_connect(self, run: Run, db: RunDatabase) -> None:
        self.snapshot = self.cache.commits

    def on_node_start(self, run: Run, node_id: str, node: RunNode, params: Mapping[str, Any]) -> None:
        self.policy = cache_policy(node, params)

    def answer(
        self, run: Run, db: RunDatabase, compiled: CompiledSQL, params: Mapping[str, Any] | None, *, cacheable: bool
    ) -> pa.Table | None:
        self.pending = None
        if self.policy is None or not cacheable:
            return None
        # Without a transaction yet, the one opened on a miss is at least as new as the tokens.
        snapshot = self.cache.commits if self.snapshot is None else self.snapshot
        lookup = self.cache.lookup(
            compiled,
            compiled.bind(params),
            policy=self.policy,
            written=run.written_on(db),
            snapshot=snapshot,
            tenant=run.scope.tenant_id,
        )
        if lookup is None:
            return None
        cached = self.cache.get(lookup)
        if cached is None:
            self.pending = lookup
        return cached

    def on_statement(self, run: Run, db: RunDatabase, statement: Statement) -> None:
        lookup, self.pending = self.pending, None
        # A replica may not have replayed a write another process already invalidated the cache
        # for, so what it answers is never kept.
        if lookup is not None and statement.result is not None and not run.reads_replica(db):
            self.fills.append((lookup, statement.result))

    def on_commit(self, run: Run, db: RunDatabase, connection: Connection) -> None:
        self.cache.invalidate(run.written_on(db))

    def on_release(self, run: Run) -> None:
        fills, self.fills = self.fills, []
        for lookup, table in fills:
            try:
                self.cache.put(lookup, table)
            except Exception as exc:  # the cache only ever skips an entry
                log.debug("run %s: a result was not cached: %s", run.run_id, exc)
