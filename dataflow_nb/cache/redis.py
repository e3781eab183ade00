"""Redis-backed query cache (``redis://`` and ``rediss://``) via redis-py, imported lazily."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, Self

from dataflow_nb.cache.base import (
    BaseQueryCache,
    CacheError,
    check_namespace,
    check_ttl,
    mask_url,
    scrub_secrets,
)

DEFAULT_CONNECT_TIMEOUT: Final = 2.0
_DELETE_BATCH: Final = 500
_SCAN_COUNT: Final = 1000
_FIX_HINT: Final = (
    "Check that the server is running and that host, port, password and db in the URL are "
    "right (redis://[:password@]host[:port][/db], rediss:// for TLS), "
    "or use create_query_cache('memory://') for an in-process cache."
)


class RedisQueryCache(BaseQueryCache):
    """Query cache stored in Redis, shared by every process that uses the same server."""

    kind = "redis"

    def __init__(
        self,
        client: Any,
        *,
        url: str,
        namespace: str = "default",
        default_ttl: float | None = 300,
    ) -> None:
        """Wrap a connected redis-py client; prefer :meth:`from_url`.

        Args:
            client: A ``redis.Redis`` client that returns bytes (no ``decode_responses``).
            url: URL the client was made from; shown only with its password masked.
            namespace: Name that isolates this cache's keys.
            default_ttl: Seconds an entry lives when no ttl is given; None never expires.
        """
        super().__init__(url=url, namespace=namespace, default_ttl=default_ttl)
        self._client = client

        def secret_free(text: str) -> str:
            return scrub_secrets(text, url)

        self._secret_free: Callable[[str], str] = secret_free

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "default",
        default_ttl: float | None = 300,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> Self:
        """Connect to Redis and check it answers, failing fast if it does not.

        Args:
            url: ``redis://`` or ``rediss://`` URL; query options such as
                ``?socket_timeout=10`` override the defaults.
            namespace: Name that isolates this cache's keys.
            default_ttl: Seconds an entry lives when no ttl is given; None never expires.
            connect_timeout: Seconds to wait for the connection and the first PING.

        Returns:
            A connected cache.

        Raises:
            CacheError: If redis-py is missing, the URL is invalid or the server does not answer.
        """
        check_namespace(namespace)
        check_ttl(default_ttl, allow_none=True)
        masked = mask_url(url)
        try:
            import redis
            from redis.backoff import ExponentialBackoff, NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise CacheError(
                f"Cache URL {masked} needs the redis package: pip install 'dataflow_nb[redis]', "
                "or use create_query_cache('memory://') for an in-process cache."
            ) from exc
        try:
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=connect_timeout,
                socket_timeout=connect_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as exc:
            reason = scrub_secrets(str(exc), url)
            raise CacheError(f"Invalid Redis URL {masked}: {reason}. {_FIX_HINT}") from None
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            client.close()
            reason = scrub_secrets(f"{type(exc).__name__}: {exc}", url)
            raise CacheError(f"Cannot reach Redis at {masked} ({reason}). {_FIX_HINT}") from exc
        client.set_retry(Retry(ExponentialBackoff(cap=0.5, base=0.05), 1))
        return cls(client, url=url, namespace=namespace, default_ttl=default_ttl)

    @contextmanager
    def _redis_errors(self, action: str) -> Iterator[None]:
        import redis

        try:
            yield
        except (redis.RedisError, OSError) as exc:
            reason = self._secret_free(f"{type(exc).__name__}: {exc}")
            raise CacheError(
                f"Redis at {self.url} failed to {action} in namespace {self.namespace!r} ({reason}). {_FIX_HINT}"
            ) from exc

    def _load(self, full_key: str) -> bytes | None:
        with self._redis_errors(f"read {full_key!r}"):
            data = self._client.get(full_key)
        return None if data is None else bytes(data)

    def _store(self, full_key: str, data: bytes, ttl: float | None) -> None:
        expiry_ms = None if ttl is None else max(1, math.ceil(ttl * 1000))
        with self._redis_errors(f"write {full_key!r}"):
            self._client.set(full_key, data, px=expiry_ms)

    def _delete(self, full_key: str) -> bool:
        with self._redis_errors(f"delete {full_key!r}"):
            return bool(self._client.delete(full_key))

    def _delete_prefix(self, full_prefix: str) -> int:
        pattern = _escape_glob(full_prefix) + "*"
        removed = 0
        with self._redis_errors(f"delete keys matching {pattern!r}"):
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=_SCAN_COUNT):
                batch.append(key)
                if len(batch) >= _DELETE_BATCH:
                    removed += int(self._client.delete(*batch))
                    batch.clear()
            if batch:
                removed += int(self._client.delete(*batch))
        return removed

    def _close(self) -> None:
        self._client.close()


def _escape_glob(text: str) -> str:
    """Escape Redis MATCH glob characters so ``text`` matches literally."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
