"""Cache query results in memory or Redis so re-running a notebook cell is instant.

Example:
    >>> from dataflow_nb.cache import create_query_cache
    >>> cache = create_query_cache("memory://")
    >>> cache.get_or_execute(key="answer", query_func=lambda: 42, ttl=300)
    42
"""

from __future__ import annotations

from urllib.parse import urlsplit

from dataflow_nb.cache.base import BaseQueryCache, CacheError, QueryCache, mask_url
from dataflow_nb.cache.memory import MemoryQueryCache
from dataflow_nb.cache.redis import RedisQueryCache

__all__ = [
    "BaseQueryCache",
    "CacheError",
    "MemoryQueryCache",
    "QueryCache",
    "RedisQueryCache",
    "create_query_cache",
]


def create_query_cache(
    url: str = "memory://",
    *,
    namespace: str = "default",
    default_ttl: float | None = 300,
) -> BaseQueryCache:
    """Create a query cache from a URL.

    Args:
        url: ``memory://`` for an in-process cache, ``redis://host:6379/0`` or
            ``rediss://...`` (TLS) for Redis.
        namespace: Name that isolates keys, e.g. one per database; stored keys are
            ``dataflow_nb:{namespace}:{key}``.
        default_ttl: Seconds an entry lives when no ttl is given; None never expires.

    Returns:
        A ready cache; a Redis cache has already answered a PING.

    Raises:
        CacheError: If the URL is unsupported or invalid, or Redis cannot be reached.
    """
    if not isinstance(url, str):
        raise CacheError(f"Cache URL must be a string such as 'memory://', got {url!r}.")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        rest = urlsplit(url)
        if rest.netloc or rest.path or rest.query:
            raise CacheError(f"Unsupported memory cache URL {url!r}: use exactly 'memory://'.")
        return MemoryQueryCache(namespace=namespace, default_ttl=default_ttl)
    if scheme in {"redis", "rediss"}:
        return RedisQueryCache.from_url(url, namespace=namespace, default_ttl=default_ttl)
    raise CacheError(
        f"Unsupported cache URL {mask_url(url)!r}: use 'memory://' for an in-process cache, "
        "or 'redis://host:6379/0' ('rediss://' for TLS) for Redis."
    )
