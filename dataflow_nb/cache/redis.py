"""The Redis store (``redis://`` and ``rediss://``) through redis-py, imported only here.

Every call fails fast: short socket timeouts and no retries, because a cache that waits is worse
than no cache; the circuit breaker in ``base`` then stops calling a dead server at all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from dataflow_nb.exceptions import CacheError

if TYPE_CHECKING:
    from dataflow_nb.cache.codec import Fetched, Payload

DEFAULT_TIMEOUT: Final = 0.5
_DELETE_BATCH: Final = 500
_SCAN_COUNT: Final = 1000
FIX_HINT: Final = (
    "Check that the server is running and that host, port, password and db in the URL are "
    "right (redis://[:password@]host[:port][/db], rediss:// for TLS), "
    "or use 'memory://' for an in-process cache."
)


class CacheUnavailable(CacheError):
    """Redis did not answer in time or refused a command (down, paused, full)."""


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
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    return f"{scheme}{sep}{netloc}{tail}"


def scrub_secrets(text: str, url: str) -> str:
    """Remove the URL's password, in every spelling, from ``text`` (e.g. a driver's message)."""
    from urllib.parse import unquote, urlsplit

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


def _encode(value: Any) -> bytes | bytearray | memoryview:
    """A command argument as bytes, as redis-py's own encoder does for what this module sends."""
    if isinstance(value, bytes | bytearray | memoryview):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value).encode()
    raise CacheError(f"cannot send a {type(value).__name__} to Redis")


class RedisStore:
    """Bytes and version tokens in Redis, shared by every process using the same server."""

    kind = "redis"

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Make a client for ``url`` without contacting the server yet.

        Args:
            url: ``redis://`` or ``rediss://``; query options such as ``?socket_timeout=2`` win.
            timeout: seconds to wait for a connection or an answer before giving up.

        Raises:
            CacheError: if redis-py is missing or the URL is invalid.
        """
        self.url = mask_url(url)
        self._raw_url = url
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.connection import PythonRespSerializer
            from redis.retry import Retry
        except ImportError as exc:  # a core dependency, but an environment can still lack it
            raise CacheError(f"Cache URL {self.url} needs the redis package: pip install redis") from exc
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        try:
            # hiredis reads replies fast but packs a 6 MB value in ~100 ms; redis-py's own serializer
            # sends a large value as a chunk of its own, without copying it into the command.
            packer = PythonRespSerializer(6000, _encode)
            self._client: Any = redis.Redis.from_url(
                url,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                command_packer=packer,
            )
        except ValueError as exc:
            raise CacheError(f"Invalid Redis URL {self.url}: {scrub_secrets(str(exc), url)}. {FIX_HINT}") from None

    @contextmanager
    def _answering(self, action: str) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            reason = scrub_secrets(f"{type(exc).__name__}: {exc}", self._raw_url)
            raise CacheUnavailable(f"Redis at {self.url} failed to {action} ({reason}). {FIX_HINT}") from exc

    def ping(self) -> None:
        """Raise CacheUnavailable unless the server answers now."""
        with self._answering("answer PING"):
            self._client.ping()

    def load(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None."""
        with self._answering("read"):
            data = self._client.get(key)
        return None if data is None else bytes(data)

    def store(self, key: str, data: Payload, ttl: float | None) -> None:
        """Keep ``data`` for ``ttl`` seconds (None: until Redis evicts it)."""
        with self._answering("write"):
            self._client.set(key, data, px=None if ttl is None else max(1, round(ttl * 1000)))

    def delete(self, key: str) -> bool:
        """Delete ``key``; True if it was there."""
        with self._answering("delete"):
            return bool(self._client.delete(key))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` (SCAN and batched DEL, never KEYS)."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
        removed = 0
        with self._answering("delete keys"):
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=_SCAN_COUNT):
                batch.append(key)
                if len(batch) >= _DELETE_BATCH:
                    removed += int(self._client.delete(*batch))
                    batch.clear()
            if batch:
                removed += int(self._client.delete(*batch))
        return removed

    def fetch(self, names: Sequence[str], key: str) -> Fetched:
        """Version tokens (None where missing), an entry and its seconds left, in one round trip."""
        with self._answering("read"):
            pipe = self._client.pipeline(transaction=False)
            pipe.mget(names)
            pipe.get(key)
            pipe.pttl(key)
            found, data, left = pipe.execute()
        seconds = None if data is None or left < 0 else left / 1000
        return [None if t is None else bytes(t).decode() for t in found], data, seconds

    def peek_tokens(self, names: Sequence[str]) -> list[str | None]:
        """Version tokens as they are (None where missing)."""
        with self._answering("read version tokens"):
            found = self._client.mget(names)
        return [None if t is None else bytes(t).decode() for t in found]

    def tokens(self, names: Sequence[str]) -> list[str]:
        """The current version token of each name; a missing one is created (first writer wins).

        Tokens are random, never counters: a token lost to eviction or a restart comes back as a
        new one, so entries keyed by the old one can never be served again.
        """
        with self._answering("read version tokens"):
            found = self._client.mget(names)
            missing = [name for name, token in zip(names, found, strict=True) if token is None]
            if missing:
                pipe = self._client.pipeline(transaction=False)
                for name in missing:
                    pipe.set(name, uuid.uuid4().hex, nx=True)
                pipe.execute()
                found = self._client.mget(names)
        if any(token is None for token in found):
            raise CacheUnavailable(f"Redis at {self.url} did not keep a version token (is it full?).")
        return [bytes(token).decode() for token in found]

    def drop_tokens(self, names: Sequence[str]) -> None:
        """Delete tokens (DEL works even on a full Redis): their entries become unreachable."""
        with self._answering("invalidate"):
            self._client.delete(*names)

    def usage(self) -> dict[str, int]:
        """Nothing local to report: Redis holds the bytes."""
        return {}

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()
