"""Shared pieces of the query cache: protocol, errors, keys and serialization."""

from __future__ import annotations

import html
import io
import math
import pickle
import re
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypeVar, runtime_checkable
from urllib.parse import unquote, urlsplit

from dataflow_nb.exceptions import DataflowError

T = TypeVar("T")

KEY_ROOT: Final = "dataflow_nb"
"""First segment of every cache key: ``dataflow_nb:{namespace}:{key}``."""

_MAGIC: Final = b"DFNBC1"
_TAG_POLARS: Final = b"P"
_TAG_PANDAS: Final = b"D"
_TAG_PICKLE: Final = b"K"
_HEADER_LEN: Final = len(_MAGIC) + 1
_MISS: Final = object()


class CacheError(DataflowError):
    """Raised when the query cache is misconfigured, unreachable or misused."""


@runtime_checkable
class QueryCache(Protocol):
    """What every query cache offers, whatever stores the entries."""

    @property
    def namespace(self) -> str:
        """Namespace that isolates this cache's keys."""
        ...

    def get(self, key: str) -> Any:
        """Return the cached value for ``key`` or None on a miss."""
        ...

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds."""
        ...

    def get_or_execute(self, key: str, query_func: Callable[[], T], ttl: float | None = None) -> T:
        """Return the cached value, or run ``query_func`` and cache its result."""
        ...

    def invalidate(self, key: str) -> bool:
        """Drop one entry; True if it existed."""
        ...

    def invalidate_prefix(self, prefix: str) -> int:
        """Drop every entry whose key starts with ``prefix``; return the count."""
        ...

    def clear(self) -> int:
        """Drop every entry of this namespace; return the count."""
        ...

    def stats(self) -> dict[str, int]:
        """Return hits, misses, sets and invalidations counted by this instance."""
        ...

    def close(self) -> None:
        """Release connections; the cache cannot be used afterwards."""
        ...


def mask_url(url: str) -> str:
    """Hide the password of a URL so it can be shown or logged.

    Args:
        url: Any URL, e.g. ``redis://user:secret@host:6379/0``.

    Returns:
        The URL with the password (and any ``password=`` query value) replaced by ``***``.
    """
    masked = re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)
    scheme, sep, rest = masked.partition("://")
    if not sep:
        return masked
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}"
    return f"{scheme}{sep}{netloc}{tail}"


def scrub_secrets(text: str, url: str) -> str:
    """Remove the URL's password from ``text`` (e.g. a driver's error message).

    Args:
        text: Text that may quote the password.
        url: The URL whose password must not appear.

    Returns:
        ``text`` with every form of the password replaced by ``***``.
    """
    secrets: set[str] = set()
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        secrets.update({password, unquote(password)})
    secrets.update(match for match in re.findall(r"(?i)[?&]password=([^&#]*)", url) if match)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text.replace(url, mask_url(url))


def check_ttl(ttl: float | None, *, allow_none: bool) -> float | None:
    """Validate a TTL in seconds.

    Args:
        ttl: Seconds to keep an entry.
        allow_none: Whether None (never expire) is accepted.

    Returns:
        The TTL as a float, or None.

    Raises:
        CacheError: If the TTL is not a positive, finite number.
    """
    if ttl is None and allow_none:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0:
        raise CacheError(f"Invalid cache ttl {ttl!r}: pass a positive number of seconds, e.g. ttl=300.")
    return float(ttl)


def check_namespace(namespace: str) -> str:
    """Validate a namespace.

    Raises:
        CacheError: If the namespace is empty, not a string or contains ``:``.
    """
    if not isinstance(namespace, str) or not namespace or ":" in namespace:
        raise CacheError(
            f"Invalid cache namespace {namespace!r}: use a non-empty name without ':', e.g. namespace='analytics'."
        )
    return namespace


def serialize(value: Any) -> bytes:
    """Encode a value as bytes: DataFrames as Arrow IPC, everything else as pickle.

    Args:
        value: A polars or pandas DataFrame, or any picklable object.

    Returns:
        A self-describing payload for :func:`deserialize`.

    Raises:
        CacheError: If the value cannot be serialized.
    """
    pl = sys.modules.get("polars")
    if pl is not None and isinstance(value, pl.LazyFrame):
        raise CacheError(
            "Cannot cache a polars LazyFrame (it is a query plan, not a result): "
            "return lf.collect() from query_func instead."
        )
    if pl is not None and type(value) is pl.DataFrame:
        buffer = io.BytesIO()
        try:
            value.write_ipc(buffer, compression="zstd")
        except Exception as exc:  # polars pickles through IPC too: no fallback
            raise CacheError(
                f"Cannot cache this polars DataFrame ({exc}): cast Object columns to a concrete dtype first."
            ) from exc
        return _MAGIC + _TAG_POLARS + buffer.getvalue()
    pd = sys.modules.get("pandas")
    if pd is not None and type(value) is pd.DataFrame:
        payload = _pandas_to_ipc(value)
        if payload is not None:
            return _MAGIC + _TAG_PANDAS + payload
    try:
        return _MAGIC + _TAG_PICKLE + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise CacheError(
            f"Cannot cache a value of type {type(value).__name__}: {exc}. "
            "Return a DataFrame or another picklable value from query_func."
        ) from exc


def deserialize(data: bytes) -> Any:
    """Decode a payload written by :func:`serialize` into a fresh object.

    Args:
        data: Bytes produced by :func:`serialize`.

    Returns:
        The value, or the private miss sentinel if the payload has an unknown format.
    """
    if data[: len(_MAGIC)] != _MAGIC:
        return _MISS
    tag, body = data[len(_MAGIC) : _HEADER_LEN], data[_HEADER_LEN:]
    if tag == _TAG_POLARS:
        import polars as pl

        return pl.read_ipc(io.BytesIO(body))
    if tag == _TAG_PANDAS:
        import pyarrow as pa

        return pa.ipc.open_stream(body).read_all().to_pandas()
    if tag == _TAG_PICKLE:
        # Entries are only ever written by this module; protect the Redis server
        # (auth, network) as you would protect the code that reads from it.
        return pickle.loads(body)  # noqa: S301
    return _MISS


def _pandas_to_ipc(frame: Any) -> bytes | None:
    """Arrow-encode a pandas frame, or return None if Arrow would change its dtypes."""
    import pyarrow as pa
    from pandas.api.types import is_object_dtype

    if any(is_object_dtype(dtype) for dtype in frame.dtypes) or _has_object_index(frame):
        return None  # Arrow infers a type for object columns: pickle keeps them exact.
    try:
        probe = pa.Table.from_pandas(frame.iloc[:0]).to_pandas()
        if not (
            probe.dtypes.equals(frame.dtypes)
            and probe.columns.equals(frame.columns)
            and probe.columns.dtype == frame.columns.dtype
            and type(probe.columns) is type(frame.columns)
        ):
            return None
        table = pa.Table.from_pandas(frame)
    except (pa.ArrowException, ValueError, TypeError, NotImplementedError):
        return None
    codec = "zstd" if pa.Codec.is_available("zstd") else None
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(compression=codec)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _has_object_index(frame: Any) -> bool:
    from pandas.api.types import is_object_dtype

    index = frame.index
    return any(is_object_dtype(index.get_level_values(i)) for i in range(index.nlevels))


class BaseQueryCache(ABC):
    """Key building, serialization, TTLs and statistics shared by all backends.

    Subclasses store opaque bytes under full keys; they implement ``_load``,
    ``_store``, ``_delete``, ``_delete_prefix`` and ``_close``.
    """

    kind: str = "base"

    def __init__(self, *, url: str, namespace: str, default_ttl: float | None) -> None:
        """Set up the shared state.

        Args:
            url: URL the cache was created from (kept masked only).
            namespace: Name that isolates this cache's keys from other caches.
            default_ttl: Seconds an entry lives when no ttl is given; None never expires.
        """
        self._url = mask_url(url)
        self._namespace = check_namespace(namespace)
        self._default_ttl = check_ttl(default_ttl, allow_none=True)
        self._prefix = f"{KEY_ROOT}:{self._namespace}:"
        self._stats = {"hits": 0, "misses": 0, "sets": 0, "invalidations": 0}
        self._stats_lock = threading.Lock()
        self._closed = False

    @property
    def namespace(self) -> str:
        """Namespace that isolates this cache's keys."""
        return self._namespace

    @property
    def url(self) -> str:
        """The cache URL with its password masked."""
        return self._url

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def full_key(self, key: str) -> str:
        """Return the stored key, ``dataflow_nb:{namespace}:{key}``.

        Raises:
            CacheError: If ``key`` is not a non-empty string.
        """
        if not isinstance(key, str) or not key:
            raise CacheError(f"Invalid cache key {key!r}: use a non-empty string.")
        return self._prefix + key

    def get(self, key: str) -> Any:
        """Return a fresh copy of the cached value, or None on a miss."""
        value = self._lookup(key)
        return None if value is _MISS else value

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Serialize and store ``value`` under ``key``.

        Args:
            key: Cache key inside this namespace.
            value: A DataFrame or any picklable value.
            ttl: Seconds to keep the entry; defaults to the cache's ``default_ttl``.
        """
        full_key = self.full_key(key)
        seconds = self._default_ttl if ttl is None else check_ttl(ttl, allow_none=False)
        data = serialize(value)
        self._check_open()
        self._store(full_key, data, seconds)
        self._count("sets")

    def get_or_execute(self, key: str, query_func: Callable[[], T], ttl: float | None = None) -> T:
        """Return the cached value, or run ``query_func`` once and cache its result.

        Args:
            key: Cache key inside this namespace.
            query_func: Zero-argument callable that runs the query; called only on a miss.
            ttl: Seconds to keep a new entry; defaults to the cache's ``default_ttl``.

        Returns:
            The cached value on a hit, else the result of ``query_func``.
        """
        value = self._lookup(key)
        if value is not _MISS:
            return value  # type: ignore[no-any-return]
        result = query_func()
        self.set(key, result, ttl)
        return result

    def invalidate(self, key: str) -> bool:
        """Drop the entry for ``key``; return True if it existed."""
        full_key = self.full_key(key)
        self._check_open()
        removed = self._delete(full_key)
        self._count("invalidations", int(removed))
        return removed

    def invalidate_prefix(self, prefix: str) -> int:
        """Drop every entry whose key starts with ``prefix``; return how many went."""
        if not isinstance(prefix, str):
            raise CacheError(f"Invalid cache key prefix {prefix!r}: use a string.")
        self._check_open()
        removed = self._delete_prefix(self._prefix + prefix)
        self._count("invalidations", removed)
        return removed

    def clear(self) -> int:
        """Drop every entry of this namespace (other namespaces stay); return the count."""
        return self.invalidate_prefix("")

    def stats(self) -> dict[str, int]:
        """Return counts for this instance: hits, misses, sets and invalidations.

        ``invalidations`` counts entries removed by invalidate, invalidate_prefix and clear.
        """
        with self._stats_lock:
            return dict(self._stats)

    def close(self) -> None:
        """Release resources; further use raises CacheError. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={count}" for name, count in self.stats().items())
        return f"{type(self).__name__}(kind={self.kind!r}, url={self._url!r}, namespace={self._namespace!r}, {counts})"

    def _repr_html_(self) -> str:
        rows = {"kind": self.kind, "url": self._url, "namespace": self._namespace}
        rows.update({name: str(count) for name, count in self.stats().items()})
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
            f"<td style='text-align:left'>{html.escape(value)}</td></tr>"
            for name, value in rows.items()
        )
        return f"<table><caption>{html.escape(type(self).__name__)}</caption>{body}</table>"

    def _lookup(self, key: str) -> Any:
        full_key = self.full_key(key)
        self._check_open()
        data = self._load(full_key)
        try:
            value = _MISS if data is None else deserialize(data)
        except Exception as exc:
            raise CacheError(
                f"Cache entry {key!r} in namespace {self._namespace!r} at {self._url} "
                f"cannot be read ({type(exc).__name__}: {exc}); drop it with "
                f"cache.invalidate({key!r})."
            ) from exc
        self._count("misses" if value is _MISS else "hits")
        return value

    def _count(self, name: str, amount: int = 1) -> None:
        with self._stats_lock:
            self._stats[name] += amount

    def _check_open(self) -> None:
        if self._closed:
            raise CacheError(
                f"{type(self).__name__} for {self._url} is closed: create a new one with create_query_cache()."
            )

    @abstractmethod
    def _load(self, full_key: str) -> bytes | None:
        """Return the stored bytes, or None if absent or expired."""

    @abstractmethod
    def _store(self, full_key: str, data: bytes, ttl: float | None) -> None:
        """Store bytes, expiring after ``ttl`` seconds (None: never)."""

    @abstractmethod
    def _delete(self, full_key: str) -> bool:
        """Delete one key; True if it existed."""

    @abstractmethod
    def _delete_prefix(self, full_prefix: str) -> int:
        """Delete all keys starting with ``full_prefix``; return the count."""

    @abstractmethod
    def _close(self) -> None:
        """Release backend resources."""
