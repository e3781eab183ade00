"""``DataFlow(cache_enabled=True)``: read results cached at the run context, never stale.

How it stays correct:

- An entry's key hashes the database's identity, the version token of every table the
  statement reads, each read model's schema, the compiled SQL with its values, the tenant, the
  database role (its privileges decide what a statement may read) and the frame kind.
  Invalidating a table drops its token; every entry made under it becomes unreachable at once,
  in every process using the same Redis (tokens live next to the entries).
- A run records what it writes; after each database commits, its written tables are
  invalidated. A rolled-back run invalidates nothing, and a run reads the database directly
  for any table it has written, so its uncommitted rows never reach the cache.
- SQL text that may write invalidates everything of that database; a read-only SQL query
  depends on a token that every write drops.
- DuckDB holds one snapshot per transaction: a run that started before a commit of this process
  might read rows older than the tokens say, so it neither reads nor fills the cache then.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

import pyarrow as pa

from dataflow_nb.cache import create_query_cache
from dataflow_nb.cache.base import QueryCache, check_ttl
from dataflow_nb.cache.codec import Payload, UndecodablePayload, decode, encode
from dataflow_nb.cache.memory import MemoryStore
from dataflow_nb.exceptions import CacheError, ValidationError

if TYPE_CHECKING:
    from dataflow_nb.backends.base import CompiledSQL, Database
    from dataflow_nb.core.spec import ModelSpec

EVERYTHING: Final = "*"
"""What a run wrote when it ran SQL text that may write anything."""
ANY_WRITE: Final = "@any"  # dropped by every write: read-only SQL text depends on it
SQL_WRITE: Final = "@sql"  # dropped by SQL text that may write: model reads depend on it
CACHE_PARAMETERS: Final = ("cache", "cache_ttl")
NEAR_BYTES: Final = 64 * 1024 * 1024
# Per database (namespace), shared by every DataFlow of the process on it: two DataFlows on one
# DuckDB file must each see the other's commits to know their snapshot may be older.
_COMMITS: dict[str, int] = {}
_COMMITS_LOCK = threading.Lock()


@dataclass(frozen=True)
class CachePolicy:
    """A node's choice: ``cache=False`` reads the database; ``cache_ttl`` overrides the default."""

    enabled: bool = True
    ttl: float | None = None


class Named(Protocol):
    """A node as the cache sees it: its type names it in messages (``cacheable`` says if it caches)."""

    @property
    def node_type(self) -> str: ...


def cache_policy(node: Named, params: Mapping[str, Any]) -> CachePolicy | None:
    """The policy for one node run; None for a node whose results are never cached."""
    if not getattr(node, "cacheable", False):
        return None
    enabled = params.get("cache", True)
    if not isinstance(enabled, bool):
        raise ValidationError(f"{node.node_type}: cache takes True or False, got {enabled!r}")
    ttl = params.get("cache_ttl")
    try:
        ttl = check_ttl(ttl, allow_none=True)
    except CacheError:
        raise ValidationError(f"{node.node_type}: cache_ttl takes a positive number of seconds, got {ttl!r}") from None
    return CachePolicy(enabled, ttl)


@dataclass
class Lookup:
    """Where a read's result is (or will be) kept, and the version tokens it was read under."""

    key: str
    names: list[str]
    ttl: float | None
    tokens: list[str] | None = None  # set on a miss; None: do not store (the store is failing)


class ResultCache:
    """The result cache of one DataFlow: its namespace is the database's identity.

    An entry's key does not depend on the tokens; the entry carries the tokens it was read
    under, so a hit is one round trip (tokens and entry together) and a newer result simply
    replaces an outdated one instead of piling up next to it.
    """

    def __init__(self, cache: QueryCache, models: Mapping[str, ModelSpec], frame: str, *, role: str = "") -> None:
        """Bind ``cache`` (made with the database's namespace) to its models (the DataFlow's own
        dict, kept current by it; not the DataFlow, which must stay free to be collected) and to
        the database role the DataFlow logs in as.
        """
        self.cache = cache
        self._models = models
        self._frame = frame
        self._role = role
        # Redis entries this process has already read, validated by their tokens on each hit.
        self.near = MemoryStore(NEAR_BYTES) if cache.kind == "redis" else None

    @property
    def commits(self) -> int:
        """Invalidations of this database made by this process (any DataFlow on it): see above."""
        return _COMMITS.get(self.cache.namespace, 0)

    def lookup(
        self,
        compiled: CompiledSQL,
        values: list[Any],
        *,
        policy: CachePolicy,
        written: Collection[str],
        snapshot: int,
        tenant: str | None,
    ) -> Lookup | None:
        """Where this read is cached, or None when it must go to the database uncached."""
        if not policy.enabled or compiled.writes != frozenset() or not compiled.returns_rows:
            return None
        if EVERYTHING in written or snapshot != self.commits:
            return None
        if compiled.reads is None:  # SQL text: it may read anything
            if written:
                return None
            names, schema = [ANY_WRITE], ""
        else:
            tables = {spec.table_name: spec for spec in self._models.values()}
            if not compiled.reads or any(t not in tables or t in written for t in compiled.reads):
                return None
            reads = sorted(compiled.reads)
            names = [SQL_WRITE, *(f"t:{t}" for t in reads)]
            schema = repr([tables[t].signature() for t in reads])
        parts = [schema, compiled.sql, repr(values), repr(tenant), self._role, self._frame]
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
        return Lookup(f"r:{digest}", [f"v:{n}" for n in names], policy.ttl)

    def get(self, lookup: Lookup) -> pa.Table | None:
        """The cached Arrow table (a new one each time) if it was read under today's tokens.

        With Redis, an entry already copied into this process is checked against the tokens
        alone (a few bytes), so a large hit does not cross the network again.
        """
        near = self.near.load(lookup.key) if self.near is not None else None
        if near is not None:
            tokens = self.cache.peek_tokens(lookup.names)
            if tokens is None:
                return None
            table = self._current(near, tokens)
            if table is not None:
                return table
        fetched = self.cache.fetch(lookup.names, lookup.key)
        if fetched is None:
            return None
        tokens, data, seconds_left = fetched
        if data is not None:
            table = self._current(data, tokens)
            if table is not None:
                if self.near is not None:
                    self.near.store(lookup.key, data, seconds_left)  # never outlives the shared entry
                return table
        self.cache.count("misses")
        lookup.tokens = self.cache.tokens(lookup.names) if None in tokens else [t or "" for t in tokens]
        return None

    def _current(self, data: Payload, tokens: list[str | None]) -> pa.Table | None:
        """The table in ``data`` if it was stamped with exactly ``tokens``; counts the hit."""
        stamp = "".join(t or "-" for t in tokens).encode()
        if None in tokens or bytes(data[: len(stamp)]) != stamp:
            return None
        try:
            table = decode(memoryview(data)[len(stamp) :])
        except UndecodablePayload:
            return None
        if not isinstance(table, pa.Table):
            return None
        self.cache.count("hits")
        self.cache.count("bytes_read", len(data))
        return table

    def put(self, lookup: Lookup, table: pa.Table) -> None:
        """Keep a result read under ``lookup.tokens`` (taken before the query ran), written behind
        the run: an entry stamped with tokens that were dropped meanwhile is simply never served.
        """
        if lookup.tokens is None:
            return
        stamp = "".join(lookup.tokens).encode()

        def payload() -> Payload:
            if self._frame == "polars":
                return encode(as_string_views(table.combine_chunks()), prefix=stamp)  # one chunk casts 4x faster
            return encode(table, prefix=stamp)

        self.cache.put_later(lookup.key, payload, lookup.ttl)

    def invalidate(self, tables: Collection[str]) -> None:
        """After a commit: entries reading ``tables`` (``"*"``: all of them) are gone everywhere."""
        if not tables:
            return
        with _COMMITS_LOCK:
            _COMMITS[self.cache.namespace] = _COMMITS.get(self.cache.namespace, 0) + 1
        changed = [SQL_WRITE] if EVERYTHING in tables else [f"t:{t}" for t in sorted(tables)]
        names = [ANY_WRITE, *changed]
        self.cache.drop_tokens([f"v:{n}" for n in names])


def as_string_views(table: pa.Table) -> pa.Table:
    """Text as Arrow string views, polars' own layout: a hit becomes a frame without copying text."""
    if not any(pa.types.is_string(t) or pa.types.is_large_string(t) for t in table.schema.types):
        return table
    columns = [
        c.cast(pa.string_view()) if pa.types.is_string(c.type) or pa.types.is_large_string(c.type) else c
        for c in table.columns
    ]
    return pa.table(columns, names=table.column_names)


def database_namespace(identity: str) -> str:
    """A cache namespace for a database identity (hashed: it may hold paths and host names)."""
    return "db-" + hashlib.sha256(identity.encode()).hexdigest()[:24]


def open_result_cache(db: Database, url: str, ttl: float) -> ResultCache:
    """The result cache of ``db`` at ``url``; a Redis that does not answer yet is not an error."""
    try:
        ttl = check_ttl(ttl, allow_none=False)  # type: ignore[assignment]
    except CacheError:
        raise CacheError(f"cache_ttl={ttl!r}: give a positive number of seconds, e.g. cache_ttl=300") from None
    namespace = database_namespace(db.backend.identity())
    cache = create_query_cache(url, namespace=namespace, default_ttl=ttl, check=False)
    return ResultCache(cache, db.models, db.frame, role=db.backend.role())
