"""In-process query cache (``memory://``), shared by every cache in the process."""

from __future__ import annotations

import threading
import time
from typing import Final

from dataflow_nb.cache.base import BaseQueryCache

_PURGE_EVERY: Final = 256


class MemoryStore:
    """Thread-safe bytes store with per-entry expiry on the monotonic clock."""

    def __init__(self) -> None:
        """Create an empty store."""
        self._entries: dict[str, tuple[bytes, float | None]] = {}
        self._lock = threading.Lock()
        self._writes = 0

    def load(self, key: str) -> bytes | None:
        """Return the bytes under ``key``, or None if absent or expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if _expired(entry[1], time.monotonic()):
                del self._entries[key]
                return None
            return entry[0]

    def store(self, key: str, data: bytes, ttl: float | None) -> None:
        """Store ``data`` under ``key`` for ``ttl`` seconds (None: forever)."""
        now = time.monotonic()
        with self._lock:
            self._entries[key] = (data, None if ttl is None else now + ttl)
            self._writes += 1
            if self._writes % _PURGE_EVERY == 0:
                self._purge(now)

    def delete(self, key: str) -> bool:
        """Delete ``key``; True if a live entry was removed."""
        with self._lock:
            entry = self._entries.pop(key, None)
            return entry is not None and not _expired(entry[1], time.monotonic())

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix``; return how many were live."""
        now = time.monotonic()
        with self._lock:
            doomed = [key for key in self._entries if key.startswith(prefix)]
            entries = [self._entries.pop(key) for key in doomed]
        return sum(not _expired(expires, now) for _, expires in entries)

    def _purge(self, now: float) -> None:
        expired = [key for key, (_, exp) in self._entries.items() if _expired(exp, now)]
        for key in expired:
            del self._entries[key]


def _expired(expires_at: float | None, now: float) -> bool:
    return expires_at is not None and now >= expires_at


SHARED_STORE: Final = MemoryStore()
"""The store behind ``memory://``: caches in one process share it, split by namespace."""


class MemoryQueryCache(BaseQueryCache):
    """Query cache held in this Python process; values are stored serialized."""

    kind = "memory"

    def __init__(
        self,
        *,
        namespace: str = "default",
        default_ttl: float | None = 300,
        store: MemoryStore | None = None,
    ) -> None:
        """Create an in-process cache.

        Args:
            namespace: Name that isolates this cache's keys.
            default_ttl: Seconds an entry lives when no ttl is given; None never expires.
            store: Store to use; defaults to the process-wide :data:`SHARED_STORE`.
        """
        super().__init__(url="memory://", namespace=namespace, default_ttl=default_ttl)
        self._store_impl = SHARED_STORE if store is None else store

    def _load(self, full_key: str) -> bytes | None:
        return self._store_impl.load(full_key)

    def _store(self, full_key: str, data: bytes, ttl: float | None) -> None:
        self._store_impl.store(full_key, data, ttl)

    def _delete(self, full_key: str) -> bool:
        return self._store_impl.delete(full_key)

    def _delete_prefix(self, full_prefix: str) -> int:
        return self._store_impl.delete_prefix(full_prefix)

    def _close(self) -> None:
        """Nothing to release: entries stay for other caches of the process."""
