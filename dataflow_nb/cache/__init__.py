"""Cache query results in memory or Redis: the seed's ``create_query_cache`` and the store
behind ``DataFlow(cache_enabled=True)`` (see ``results``). No pickle: frames travel as Arrow
IPC, plain values as JSON.

Example:
    >>> from dataflow_nb.cache import create_query_cache
    >>> cache = create_query_cache("memory://")
    >>> cache.get_or_execute(key="answer", query_func=lambda: 42, ttl=300)
    42
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from dataflow_nb.cache.base import QueryCache, check_namespace, check_ttl
from dataflow_nb.cache.memory import MemoryStore
from dataflow_nb.cache.redis import CacheUnavailable, mask_url
from dataflow_nb.exceptions import CacheError

__all__ = ["CacheError", "CacheUnavailable", "QueryCache", "create_query_cache", "mask_url"]

SHARED_STORE = MemoryStore()
"""The store behind plain ``memory://``: caches of one process share it, split by namespace."""


def create_query_cache(
    url: str = "memory://",
    *,
    namespace: str = "default",
    default_ttl: float | None = 300,
    check: bool = True,
) -> QueryCache:
    """Create a query cache from a URL.

    Args:
        url: ``memory://`` (in-process, 256 MiB LRU shared by the process),
            ``memory://?max_bytes=N`` (a store of its own with that bound), ``redis://host:6379/0``
            or ``rediss://...`` (TLS).
        namespace: name that isolates keys, e.g. one per database; stored keys are
            ``dataflow_nb:{namespace}:{key}``.
        default_ttl: seconds an entry lives when no ttl is given; None never expires.
        check: PING Redis now and raise if it does not answer. ``DataFlow`` passes False: a
            Redis that is down there means uncached reads, not a failed notebook.

    Returns:
        A ready cache.

    Raises:
        CacheError: if the URL is unsupported or invalid, or (with ``check``) Redis cannot be reached.
    """
    if not isinstance(url, str):
        raise CacheError(f"Cache URL must be a string such as 'memory://', got {url!r}.")
    check_namespace(namespace)
    check_ttl(default_ttl, allow_none=True)
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        return QueryCache(_memory_store(url), url=url, namespace=namespace, default_ttl=default_ttl)
    if scheme in {"redis", "rediss"}:
        from dataflow_nb.cache.redis import RedisStore

        store = RedisStore(url)
        if check:
            try:
                store.ping()
            except CacheUnavailable as exc:
                store.close()
                raise CacheError(f"Cannot reach Redis: {exc}") from exc
        return QueryCache(store, url=url, namespace=namespace, default_ttl=default_ttl)
    raise CacheError(
        f"Unsupported cache URL {mask_url(url)!r}: use 'memory://' for an in-process cache, "
        "or 'redis://host:6379/0' ('rediss://' for TLS) for Redis."
    )


def _memory_store(url: str) -> MemoryStore:
    parts = urlsplit(url)
    options = parse_qs(parts.query)
    if parts.netloc or parts.path or set(options) - {"max_bytes"}:
        raise CacheError(f"Unsupported memory cache URL {url!r}: use 'memory://' or 'memory://?max_bytes=268435456'.")
    if not options:
        return SHARED_STORE
    value = options["max_bytes"][-1]
    if not value.isdigit() or int(value) < 1:
        raise CacheError(f"memory cache URL {url!r}: max_bytes takes a positive whole number of bytes.")
    return MemoryStore(int(value))
