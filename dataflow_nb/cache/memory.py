"""The in-process store behind ``memory://``: a least-recently-used map bounded by bytes."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from dataflow_nb.cache.codec import Fetched, Payload

DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024


class MemoryStore:
    """Thread-safe bytes store: per-entry expiry, and the least recently used entries go first
    once the payloads together pass ``max_bytes``. Version tokens are tiny and never evicted.
    """

    kind = "memory"

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        """Create an empty store holding at most ``max_bytes`` of payloads."""
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[Payload, float | None]] = OrderedDict()
        self._tokens: dict[str, str] = {}
        self._bytes = 0
        self._evictions = 0
        self._lock = threading.Lock()

    def load(self, key: str) -> Payload | None:
        """The bytes under ``key``, or None if absent or expired; a hit becomes most recent."""
        return self._live(key)[0]

    def _live(self, key: str) -> tuple[Payload | None, float | None]:
        """The entry and its seconds left (None: no expiry)."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None, None
            if entry[1] is not None and now >= entry[1]:
                self._pop(key)
                return None, None
            self._entries.move_to_end(key)
            return entry[0], None if entry[1] is None else entry[1] - now

    def store(self, key: str, data: Payload, ttl: float | None) -> None:
        """Keep ``data`` for ``ttl`` seconds (None: until evicted); a payload over the bound is not kept."""
        with self._lock:
            self._pop(key)
            if len(data) > self.max_bytes:
                return
            self._entries[key] = (data, None if ttl is None else time.monotonic() + ttl)
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                self._pop(next(iter(self._entries)))
                self._evictions += 1

    def delete(self, key: str) -> bool:
        """Delete ``key``; True if it was there."""
        with self._lock:
            return self._pop(key)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix``; return how many went."""
        with self._lock:
            doomed = [key for key in self._entries if key.startswith(prefix)]
            for key in doomed:
                self._pop(key)
            doomed_tokens = [key for key in self._tokens if key.startswith(prefix)]
            for key in doomed_tokens:
                del self._tokens[key]
        return len(doomed)

    def fetch(self, names: Sequence[str], key: str) -> Fetched:
        """Version tokens (None where missing), an entry and its seconds left."""
        return (self.peek_tokens(names), *self._live(key))

    def peek_tokens(self, names: Sequence[str]) -> list[str | None]:
        """Version tokens as they are (None where missing)."""
        with self._lock:
            return [self._tokens.get(name) for name in names]

    def tokens(self, names: Sequence[str]) -> list[str]:
        """The current version token of each name, created when missing."""
        with self._lock:
            return [self._tokens.setdefault(name, uuid.uuid4().hex) for name in names]

    def drop_tokens(self, names: Sequence[str]) -> None:
        """Forget tokens: every entry keyed by them becomes unreachable."""
        with self._lock:
            for name in names:
                self._tokens.pop(name, None)

    def usage(self) -> dict[str, int]:
        """Entries and bytes held now, and how many entries the bound evicted."""
        with self._lock:
            return {"entries": len(self._entries), "bytes_held": self._bytes, "evictions": self._evictions}

    def close(self) -> None:
        """Nothing to release; the entries go with the store."""

    def _pop(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self._bytes -= len(entry[0])
        return True
