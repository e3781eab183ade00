"""The query cache: keys, TTLs, statistics, and what happens when the store fails.

One class over two stores (``memory.MemoryStore``, ``redis.RedisStore``). A failing store never
fails a read or a computed result: the call counts an error, the cache reports "degraded", one
warning is logged, and a circuit breaker skips the store for ``retry_after`` seconds so a dead
Redis costs one timeout, not one per query. Invalidations that could not reach the store are
kept and sent first when it answers again.
"""

from __future__ import annotations

import html
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypeVar

from dataflow_nb.cache.codec import Fetched, Payload, UndecodablePayload, decode, encode
from dataflow_nb.cache.redis import CacheUnavailable, mask_url
from dataflow_nb.exceptions import CacheError

T = TypeVar("T")
log = logging.getLogger("dataflow_nb.cache")

KEY_ROOT: Final = "dataflow_nb"
"""First segment of every stored key: ``dataflow_nb:{namespace}:{key}``."""
RETRY_AFTER: Final = 5.0
STAT_NAMES: Final = ("hits", "misses", "sets", "invalidations", "errors", "bytes_read", "bytes_written")
MAX_PENDING_WRITES: Final = 4  # write-behind entries in flight before a put waits for the oldest


class Store(Protocol):
    """Where entries live: bytes by key, plus version tokens (see ``results``)."""

    kind: str

    def load(self, key: str) -> Payload | None: ...
    def store(self, key: str, data: Payload, ttl: float | None) -> None: ...
    def delete(self, key: str) -> bool: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def fetch(self, names: Sequence[str], key: str) -> Fetched: ...
    def peek_tokens(self, names: Sequence[str]) -> list[str | None]: ...
    def tokens(self, names: Sequence[str]) -> list[str]: ...
    def drop_tokens(self, names: Sequence[str]) -> None: ...
    def usage(self) -> dict[str, int]: ...
    def close(self) -> None: ...


def check_ttl(ttl: float | None, *, allow_none: bool) -> float | None:
    """A TTL in seconds: a positive finite number (or None where that means "no expiry").

    Raises:
        CacheError: for anything else.
    """
    if ttl is None and allow_none:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0:
        raise CacheError(f"Invalid cache ttl {ttl!r}: pass a positive number of seconds, e.g. ttl=300.")
    return float(ttl)


def check_namespace(namespace: str) -> str:
    """A namespace: non-empty, without ``:``.

    Raises:
        CacheError: otherwise.
    """
    if not isinstance(namespace, str) or not namespace or ":" in namespace:
        raise CacheError(
            f"Invalid cache namespace {namespace!r}: use a non-empty name without ':', e.g. namespace='analytics'."
        )
    return namespace


class QueryCache:
    """Cached values by key in one namespace of a store; every hit is a new object.

    Examples:
        >>> from dataflow_nb.cache import create_query_cache
        >>> cache = create_query_cache("memory://", namespace="doctest")
        >>> cache.get_or_execute("answer", lambda: 42, ttl=60)
        42
        >>> cache.get_or_execute("answer", lambda: 0), cache.stats()["hits"]
        (42, 1)
        >>> cache.clear()
        1
    """

    def __init__(
        self,
        store: Store,
        *,
        url: str,
        namespace: str = "default",
        default_ttl: float | None = 300,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        """Wrap a store; prefer ``create_query_cache(url)``.

        Args:
            store: the memory or Redis store.
            url: the URL it came from (only ever shown masked).
            namespace: name that isolates these keys from other caches on the same store.
            default_ttl: seconds an entry lives when no ttl is given; None never expires.
            retry_after: seconds the store is left alone after it failed.
        """
        self.store = store
        self.kind = store.kind
        self.url = mask_url(url)
        self.namespace = check_namespace(namespace)
        self.default_ttl = check_ttl(default_ttl, allow_none=True)
        self.retry_after = retry_after
        self._prefix = f"{KEY_ROOT}:{self.namespace}:"
        self._stats = dict.fromkeys(STAT_NAMES, 0)
        self._lock = threading.Lock()
        self._closed = False
        self._down_until = 0.0  # circuit breaker: the store is skipped until then
        self._last_error: str | None = None
        self._pending_drops: set[str] = set()
        self._writer: ThreadPoolExecutor | None = None
        self._pending_writes: dict[str, Future[None]] = {}

    # -- the seed's API ----------------------------------------------------------------------

    def full_key(self, key: str) -> str:
        """The stored key, ``dataflow_nb:{namespace}:{key}``."""
        if not isinstance(key, str) or not key:
            raise CacheError(f"Invalid cache key {key!r}: use a non-empty string.")
        return self._prefix + key

    def get(self, key: str) -> Any:
        """A new copy of the cached value, or None on a miss (also when the store is failing)."""
        data = self.load(key)
        if data is None:
            return None
        try:
            return decode(data)
        except UndecodablePayload:
            self._count("hits", -1)
            self._count("misses")
            return None

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` (a frame, Arrow table or JSON value) for ``ttl`` seconds.

        Raises:
            CacheError: if the value cannot be stored without pickle, or the cache is closed.
                A failing store is not an error: the value is simply not cached.
        """
        self.put(key, encode(value), ttl)

    def get_or_execute(self, key: str, query_func: Callable[[], T], ttl: float | None = None) -> T:
        """The cached value, or ``query_func()`` run once and cached; its result is returned
        even when the store cannot take it.
        """
        data = self.load(key)
        if data is not None:
            try:
                return decode(data)  # type: ignore[no-any-return]
            except UndecodablePayload:
                self._count("hits", -1)
                self._count("misses")
        result = query_func()
        self.set(key, result, ttl)
        return result

    def invalidate(self, key: str) -> bool:
        """Drop one entry; True if it existed.

        Raises:
            CacheError: if the store cannot be reached (the entry may still be there).
        """
        full_key = self.full_key(key)
        removed = self._call(self.store.delete, full_key, strict=True)
        self._count("invalidations", int(bool(removed)))
        return bool(removed)

    def invalidate_prefix(self, prefix: str) -> int:
        """Drop every entry whose key starts with ``prefix``; return how many went.

        Raises:
            CacheError: if the store cannot be reached.
        """
        if not isinstance(prefix, str):
            raise CacheError(f"Invalid cache key prefix {prefix!r}: use a string.")
        self.flush()
        removed = int(self._call(self.store.delete_prefix, self._prefix + prefix, strict=True) or 0)
        self._count("invalidations", removed)
        return removed

    def clear(self) -> int:
        """Drop every entry of this namespace (others stay); return the count."""
        return self.invalidate_prefix("")

    # -- bytes and version tokens, for ``results.ResultCache`` -------------------------------------

    def load(self, key: str) -> Payload | None:
        """The stored bytes, or None on a miss or a failing store; counts the hit or miss."""
        self._wait_for_write(key)
        data = self._call(self.store.load, self.full_key(key))
        self._count("misses" if data is None else "hits")
        if data is not None:
            self._count("bytes_read", len(data))
        return data  # type: ignore[no-any-return]

    def put(self, key: str, data: Payload, ttl: float | None = None) -> None:
        """Store bytes; a failing store only counts an error."""
        seconds = self.default_ttl if ttl is None else check_ttl(ttl, allow_none=False)
        if self._call(self.store.store, self.full_key(key), data, seconds, done=True):
            self._count("sets")
            self._count("bytes_written", len(data))

    def put_later(self, key: str, payload: Callable[[], Payload], ttl: float | None = None) -> None:
        """Store what ``payload()`` returns on the cache's writer thread, so a miss hands back its
        rows without waiting for the copy and the store (on a 100k-row DuckDB List that wait was
        60% of the query). Reading ``key``, ``stats()``, ``clear()`` and ``close()`` wait for it:
        in this process a read after a miss finds the entry as surely as with :meth:`put`.
        """
        if self._closed:
            raise CacheError(f"The {self.kind} cache at {self.url} is closed: create a new one.")
        with self._lock:
            waiting = list(self._pending_writes.values())
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="dataflow_nb-cache-writer")
            writer = self._writer
        if len(waiting) >= MAX_PENDING_WRITES:  # the writer fell behind: bound what waits in memory
            waiting[0].result()
        future = writer.submit(self._write, key, payload, ttl)
        with self._lock:
            self._pending_writes[key] = future
        future.add_done_callback(lambda done: self._write_done(key, done))

    def flush(self) -> None:
        """Wait until every :meth:`put_later` entry is stored (or has failed, which counts an error)."""
        with self._lock:
            waiting = list(self._pending_writes.values())
        for future in waiting:
            future.result()

    def fetch(self, names: Sequence[str], key: str) -> Fetched | None:
        """Version tokens (None where missing), the entry under ``key`` and its seconds left, in
        one round trip; None while the store is failing. The caller counts hits and misses.
        """
        self._wait_for_write(key)
        keys = [self.full_key(n) for n in names]
        return self._call(self.store.fetch, keys, self.full_key(key))  # type: ignore[no-any-return]

    def peek_tokens(self, names: Sequence[str]) -> list[str | None] | None:
        """Version tokens as they are (None where missing); None while the store is failing."""
        return self._call(self.store.peek_tokens, [self.full_key(n) for n in names])  # type: ignore[no-any-return]

    def count(self, name: str, amount: int = 1) -> None:
        """Count a hit, miss or bytes read decided by the caller of ``fetch``."""
        self._count(name, amount)

    def tokens(self, names: Sequence[str]) -> list[str] | None:
        """Version tokens for ``names``; None while the store is failing (then nothing is cached)."""
        return self._call(self.store.tokens, [self.full_key(n) for n in names])  # type: ignore[no-any-return]

    def drop_tokens(self, names: Sequence[str]) -> None:
        """Invalidate: drop tokens now, or as soon as the store answers again."""
        keys = [self.full_key(n) for n in names]
        with self._lock:
            self._pending_drops.update(keys)
        self._call(lambda: None)  # sends the pending drops when the store answers
        self._count("invalidations", len(keys))

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    # -- health ------------------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while the store is failing or an invalidation still waits to reach it."""
        with self._lock:
            return self._last_error is not None or bool(self._pending_drops)

    def stats(self) -> dict[str, Any]:
        """Hits, misses, sets, invalidations (tokens or entries dropped), errors, bytes read and
        written by this instance; for ``memory://`` also entries, bytes held and evictions.
        """
        self.flush()
        with self._lock:
            counts: dict[str, Any] = dict(self._stats)
        counts.update(self.store.usage())
        return counts

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded", "backend", "url", "error"}``; never raises."""
        with self._lock:
            error, pending = self._last_error, len(self._pending_drops)
        status = "degraded" if error is not None or pending else "ok"
        return {"status": status, "backend": self.kind, "url": self.url, "error": error, "pending": pending}

    def close(self) -> None:
        """Release the store's connections; further use raises CacheError. Safe twice."""
        if not self._closed:
            self.flush()
            self._closed = True
            if self._writer is not None:
                self._writer.shutdown()
            self.store.close()

    # -- the guard around every store call ---------------------------------------------------------

    def _call(self, operation: Callable[..., Any], *args: Any, strict: bool = False, done: bool = False) -> Any:
        """Run ``operation`` unless the breaker is open; a failure returns None (or raises if strict).

        ``done=True`` makes a successful call return True, so a caller can tell a write happened.
        """
        if self._closed:
            raise CacheError(f"The {self.kind} cache at {self.url} is closed: create a new one.")
        now = time.monotonic()
        with self._lock:
            skipped = now < self._down_until
            if not skipped and self._last_error is not None:
                self._down_until = now + self.retry_after  # one caller probes; the rest keep skipping
            pending = sorted(self._pending_drops)
        if skipped:
            if strict:
                raise CacheUnavailable(f"The {self.kind} cache at {self.url} is failing: {self._last_error}")
            return None
        try:
            if pending:
                self.store.drop_tokens(pending)
                with self._lock:
                    self._pending_drops.difference_update(pending)
            result = operation(*args)
        except CacheUnavailable as exc:
            self._failed(exc)
            if strict:
                raise
            return None
        self._recovered()
        return True if done else result

    def _failed(self, exc: CacheUnavailable) -> None:
        with self._lock:
            first = self._last_error is None
            self._last_error = str(exc)
            self._down_until = time.monotonic() + self.retry_after
            self._stats["errors"] += 1
        if first:
            log.warning("%s; reads go to the database until it answers (retrying every %ss)", exc, self.retry_after)

    def _recovered(self) -> None:
        with self._lock:
            was_down, self._last_error = self._last_error is not None, None
            self._down_until = 0.0
        if was_down:
            log.warning("The %s cache at %s answers again; caching resumed", self.kind, self.url)

    def _write(self, key: str, payload: Callable[[], Payload], ttl: float | None) -> None:
        try:
            self.put(key, payload(), ttl)
        except Exception as exc:  # a write-behind failure must never reach a later, unrelated read
            self._count("errors")
            log.warning("The %s cache at %s could not store an entry: %s", self.kind, self.url, exc)

    def _write_done(self, key: str, future: Future[None]) -> None:
        with self._lock:
            if self._pending_writes.get(key) is future:
                del self._pending_writes[key]

    def _wait_for_write(self, key: str) -> None:
        with self._lock:
            future = self._pending_writes.get(key)
        if future is not None:
            future.result()

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._stats[name] += amount

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={count}" for name, count in self.stats().items())
        return f"QueryCache(kind={self.kind!r}, url={self.url!r}, namespace={self.namespace!r}, {counts})"

    def _repr_html_(self) -> str:
        rows = {"kind": self.kind, "url": self.url, "namespace": self.namespace, **self.health()}
        rows.update(self.stats())
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(name))}</th>"
            f"<td style='text-align:left'>{html.escape(str(value))}</td></tr>"
            for name, value in rows.items()
        )
        return f"<table><caption>QueryCache</caption>{body}</table>"
