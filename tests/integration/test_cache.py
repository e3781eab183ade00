"""Behaviour of the query cache, run against memory:// and a real Redis."""

from __future__ import annotations

import datetime as dt
import functools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import polars as pl
import polars.testing
import pytest

from dataflow_nb.cache import CacheError, QueryCache, create_query_cache, mask_url
from tests.conftest import unavailable

REDIS_URL = os.environ.get("DATAFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BIG_INT = 2**53 + 1  # not representable as float64: catches a silent cast

MakeCache = Callable[..., QueryCache]


@functools.cache
def _redis_problem() -> str | None:
    """Return why the test Redis cannot be used, or None if it answers PING."""
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install 'dataflow_nb[dev]')"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"Redis at {mask_url(REDIS_URL)} is unreachable: {exc}"
    finally:
        client.close()
    return None


def _require_redis() -> None:
    """Skip without Redis locally; fail on CI, where Redis must be provided."""
    problem = _redis_problem()
    if problem is not None:
        unavailable(f"{problem} (set DATAFLOW_TEST_REDIS_URL to a reachable server)")


def _unique_namespace() -> str:
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture(params=["memory", "redis"])
def cache_url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        _require_redis()
        return REDIS_URL
    return "memory://"


@pytest.fixture
def make_cache(cache_url: str) -> Iterator[MakeCache]:
    made: list[QueryCache] = []

    def make(namespace: str | None = None, **kwargs: Any) -> QueryCache:
        cache = create_query_cache(cache_url, namespace=namespace or _unique_namespace(), **kwargs)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        if not cache.closed:
            cache.clear()
            cache.close()


@pytest.fixture
def cache(make_cache: MakeCache) -> QueryCache:
    return make_cache()


@pytest.fixture
def redis_client() -> Iterator[Any]:
    _require_redis()
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    yield client
    client.close()


class CountingQuery:
    """A query_func stand-in that records how often it ran."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        return self.result


# --- behaviour on both backends -------------------------------------------------------


def test_miss_then_hit_runs_query_once(cache: QueryCache) -> None:
    query = CountingQuery([{"id": 1, "name": "ada"}])

    first = cache.get_or_execute(key="active_users", query_func=query, ttl=300)
    second = cache.get_or_execute(key="active_users", query_func=query, ttl=300)

    assert query.calls == 1
    assert first == second == [{"id": 1, "name": "ada"}]


def test_get_is_none_on_miss_and_value_after_set(cache: QueryCache) -> None:
    assert cache.get("missing") is None
    cache.set("answer", 42)
    assert cache.get("answer") == 42


def test_none_result_is_cached(cache: QueryCache) -> None:
    query = CountingQuery(None)
    assert cache.get_or_execute("nothing", query) is None
    assert cache.get_or_execute("nothing", query) is None
    assert query.calls == 1


def test_failing_query_is_not_cached(cache: QueryCache) -> None:
    def broken() -> int:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        cache.get_or_execute("flaky", broken)
    assert cache.get_or_execute("flaky", lambda: 7) == 7


def test_ttl_expires_entries(cache: QueryCache) -> None:
    query = CountingQuery("fresh")
    cache.get_or_execute("short_lived", query, ttl=0.3)  # fractions of a second: Redis keeps them (PX)
    cache.set("long_lived", "kept", ttl=60)

    time.sleep(0.5)

    assert cache.get("short_lived") is None
    assert cache.get("long_lived") == "kept"
    cache.get_or_execute("short_lived", query, ttl=0.3)
    assert query.calls == 2


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), "300", True])
def test_invalid_ttl_is_rejected(cache: QueryCache, ttl: Any) -> None:
    with pytest.raises(CacheError, match="ttl"):
        cache.set("key", 1, ttl=ttl)


def test_invalidate_drops_one_key(cache: QueryCache) -> None:
    cache.set("a", 1)
    cache.set("b", 2)

    assert cache.invalidate("a") is True
    assert cache.invalidate("a") is False
    assert cache.get("a") is None
    assert cache.get("b") == 2


def test_invalidate_prefix_drops_matching_keys_only(cache: QueryCache) -> None:
    for key in ("users:1", "users:2", "users_archive", "orders:1", "u*x", "uzx"):
        cache.set(key, key)

    assert cache.invalidate_prefix("users:") == 2
    assert cache.invalidate_prefix("u*") == 1  # glob characters match literally

    assert cache.get("users:1") is None
    assert cache.get("users:2") is None
    assert cache.get("u*x") is None
    assert cache.get("users_archive") == "users_archive"
    assert cache.get("orders:1") == "orders:1"
    assert cache.get("uzx") == "uzx"


def test_invalidate_prefix_handles_many_keys(cache: QueryCache) -> None:
    for i in range(1200):  # more than one SCAN page and one DEL batch
        cache.set(f"bulk:{i}", i)
    assert cache.invalidate_prefix("bulk:") == 1200
    assert cache.get("bulk:0") is None


def test_clear_leaves_other_namespace_intact(make_cache: MakeCache) -> None:
    warehouse = make_cache()
    replica = make_cache()
    warehouse.set("shared_name", "warehouse")
    warehouse.set("only_here", 1)
    replica.set("shared_name", "replica")

    assert warehouse.clear() == 2

    assert warehouse.get("shared_name") is None
    assert warehouse.get("only_here") is None
    assert replica.get("shared_name") == "replica"


def test_namespaces_do_not_share_entries(make_cache: MakeCache) -> None:
    namespace = _unique_namespace()
    first = make_cache(namespace)
    same = make_cache(namespace)
    other = make_cache()

    first.set("k", "v")

    assert same.get("k") == "v"
    assert other.get("k") is None


def test_mutating_a_returned_value_does_not_change_the_cache(cache: QueryCache) -> None:
    original: dict[str, Any] = {"rows": [1, 2, 3], "meta": {"source": "db"}}
    unused: dict[str, Any] = {"unused": True}

    on_miss = cache.get_or_execute("report", lambda: original)
    on_miss["rows"].append(99)
    original["meta"]["source"] = "changed"
    on_hit = cache.get_or_execute("report", lambda: unused)
    assert on_hit == {"rows": [1, 2, 3], "meta": {"source": "db"}}
    on_hit["rows"].clear()
    again = cache.get("report")

    assert again == {"rows": [1, 2, 3], "meta": {"source": "db"}}
    assert again is not on_hit


def test_polars_frame_round_trips_with_dtypes(cache: QueryCache) -> None:
    frame = pl.DataFrame(
        {
            "at": pl.Series(
                [dt.datetime(2024, 3, 31, 1, 30), dt.datetime(2024, 10, 27, 2, 30)],
                dtype=pl.Datetime("us", "Europe/Berlin"),
            ),
            "big": pl.Series([BIG_INT, None], dtype=pl.Int64),
            "amount": pl.Series([Decimal("12345678901234567.89"), Decimal("-0.01")], dtype=pl.Decimal(20, 2)),
            "label": ["a", None],
            "kind": pl.Series(["x", "y"], dtype=pl.Enum(["x", "y", "z"])),
        }
    )

    cache.set("polars", frame)
    back = cache.get("polars")

    assert isinstance(back, pl.DataFrame)
    assert back.schema == frame.schema
    polars.testing.assert_frame_equal(back, frame)
    assert back["big"][0] == BIG_INT


def test_pandas_frame_round_trips_with_dtypes(cache: QueryCache) -> None:
    frame = pd.DataFrame(
        {
            "at": pd.date_range("2024-03-31", periods=3, freq="h", tz="Europe/Berlin"),
            "big": pd.array([BIG_INT, None, -5], dtype="Int64"),
            "flag": pd.array([True, None, False], dtype="boolean"),
            "label": pd.Series(["a", None, "c"], dtype="string"),
            "kind": pd.Categorical(["x", "y", "x"]),
            "ratio": [0.5, float("nan"), 2.0],
        },
        index=pd.Index([10, 20, 30], name="row"),
    )

    cache.set("pandas", frame)
    back = cache.get("pandas")

    assert isinstance(back, pd.DataFrame)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert back.dtypes.equals(frame.dtypes)
    assert str(back["at"].dt.tz) == "Europe/Berlin"
    assert back["big"].iloc[0] == BIG_INT


def test_pandas_object_columns_keep_their_dtype(cache: QueryCache) -> None:
    frame = pd.DataFrame({"amount": pd.Series([Decimal("1.10"), None], dtype=object), "n": [1, 2]})

    cache.set("objects", frame)
    back = cache.get("objects")

    pd.testing.assert_frame_equal(back, frame, check_exact=True)


def test_pandas_frame_arrow_cannot_hold_is_refused_not_pickled(cache: QueryCache) -> None:
    frame = pd.DataFrame({"mixed": pd.Series([1, "one"], dtype=object)})

    with pytest.raises(CacheError, match="pandas DataFrame"):
        cache.set("mixed", frame)
    assert cache.get("mixed") is None


def test_mutating_a_returned_frame_does_not_change_the_cache(cache: QueryCache) -> None:
    cache.set("frame", pd.DataFrame({"n": [1, 2, 3]}))

    returned = cache.get("frame")
    returned.loc[0, "n"] = 100

    assert cache.get("frame")["n"].tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("make_value", "hint"),
    [
        (lambda: pl.LazyFrame({"n": [1]}), "collect"),
        (lambda: threading.Lock(), "lock"),
        (lambda: (1, 2), "tuples become lists"),
        (lambda: {1: "a"}, "keys become str"),
        (lambda: dt.date(2024, 1, 1), "JSON values"),
        (lambda: float("nan"), "JSON values"),
    ],
    ids=["lazyframe", "lock", "tuple", "int-keys", "date", "nan"],
)
def test_uncacheable_result_raises_cache_error(cache: QueryCache, make_value: Callable[[], Any], hint: str) -> None:
    with pytest.raises(CacheError, match=hint):
        cache.get_or_execute("bad", make_value)
    assert cache.get("bad") is None


def test_stats_count_exactly(cache: QueryCache) -> None:
    cache.get("a")  # miss
    cache.set("a", 1)  # set
    cache.get("a")  # hit
    cache.get_or_execute("b", lambda: 2)  # miss + set
    cache.get_or_execute("b", lambda: 3)  # hit
    cache.invalidate("a")  # 1 invalidation
    cache.invalidate("a")  # nothing left to remove
    cache.set("c1", 1)
    cache.set("c2", 2)
    cache.invalidate_prefix("c")  # 2 invalidations
    cache.clear()  # removes "b": 1 invalidation

    stats = cache.stats()
    assert {k: stats[k] for k in ("hits", "misses", "sets", "invalidations", "errors")} == {
        "hits": 2,
        "misses": 2,
        "sets": 4,
        "invalidations": 4,
        "errors": 0,
    }
    one_digit = len(b"DFNB2J1")  # header and a one-digit JSON number
    assert (stats["bytes_read"], stats["bytes_written"]) == (2 * one_digit, 4 * one_digit)


def test_repr_shows_kind_namespace_and_stats(cache: QueryCache) -> None:
    cache.get_or_execute("k", lambda: 1)

    text = repr(cache)
    page = cache._repr_html_()

    for shown in (cache.kind, cache.namespace, "hits=0", "misses=1", "sets=1"):
        assert shown in text
    for shown in (cache.kind, cache.namespace, cache.url, "misses", "invalidations"):
        assert shown in page


def test_closed_cache_refuses_work(make_cache: MakeCache) -> None:
    cache = make_cache()
    cache.close()
    cache.close()  # idempotent

    with pytest.raises(CacheError, match="closed"):
        cache.get("k")


@pytest.mark.parametrize("namespace", ["", "a:b"])
def test_bad_namespace_is_rejected(cache_url: str, namespace: str) -> None:
    with pytest.raises(CacheError, match="namespace"):
        create_query_cache(cache_url, namespace=namespace)


# --- URLs, errors and Redis specifics --------------------------------------------------


def test_unreachable_redis_fails_fast_with_url() -> None:
    url = "redis://127.0.0.1:1/0"
    started = time.monotonic()

    with pytest.raises(CacheError) as raised:
        create_query_cache(url)

    assert time.monotonic() - started < 3
    assert url in str(raised.value)
    assert "memory://" in str(raised.value)  # says how to fix it


def test_password_never_appears_in_errors() -> None:
    with pytest.raises(CacheError) as raised:
        create_query_cache("redis://:s3cret-pw@127.0.0.1:1/0")

    assert "s3cret-pw" not in str(raised.value)
    assert "redis://:***@127.0.0.1:1/0" in str(raised.value)


def test_password_never_appears_in_repr(redis_client: Any) -> None:
    parts = urlsplit(REDIS_URL)
    host = parts.netloc.rpartition("@")[2]
    secret_url = urlunsplit(parts._replace(netloc=f"user:s3cret-pw@{host}"))
    cache = create_query_cache(secret_url, namespace=_unique_namespace(), check=False)

    for shown in (repr(cache), cache._repr_html_(), cache.url):
        assert "s3cret-pw" not in shown
        assert f"user:***@{host}" in shown


def test_mask_url_hides_every_password_form() -> None:
    assert mask_url("redis://:secret@host:6379/0") == "redis://:***@host:6379/0"
    assert mask_url("rediss://me:p%40ss@host/1") == "rediss://me:***@host/1"
    assert mask_url("redis://host/0?password=secret&db=1") == "redis://host/0?password=***&db=1"
    assert mask_url("redis://user@host") == "redis://user@host"
    assert mask_url("memory://") == "memory://"


@pytest.mark.parametrize("url", ["postgres://u:secret@db/x", "file:///tmp/cache", "memory"])
def test_unsupported_url_names_it_and_the_fix(url: str) -> None:
    with pytest.raises(CacheError) as raised:
        create_query_cache(url)

    message = str(raised.value)
    assert mask_url(url) in message
    assert "secret" not in message
    assert "memory://" in message


def test_keys_are_namespaced_in_redis(redis_client: Any) -> None:
    namespace = _unique_namespace()
    with create_query_cache(REDIS_URL, namespace=namespace, default_ttl=300) as cache:
        cache.set("active_users", [1, 2])
        try:
            full_key = f"dataflow_nb:{namespace}:active_users"
            assert redis_client.exists(full_key) == 1
            assert 0 < redis_client.pttl(full_key) <= 300_000
        finally:
            cache.clear()


def test_importing_the_cache_does_not_import_redis() -> None:
    code = "import sys, dataflow_nb.cache; sys.exit('redis' in sys.modules)"
    finished = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert finished.returncode == 0


def test_write_behind_is_read_back_and_its_failures_never_surface(cache: QueryCache) -> None:
    """``put_later`` stores on the writer thread; a read of the key waits for it, a failing
    payload only counts an error, and ``close()`` waits for what is still being written."""
    from dataflow_nb.cache.codec import encode

    release = threading.Event()

    def slow_payload() -> Any:
        release.wait(5)
        return encode({"rows": 3})

    def broken_payload() -> Any:
        raise CacheError("cannot encode this")

    cache.put_later("slow", slow_payload, 60)
    cache.put_later("broken", broken_payload, 60)
    threading.Timer(0.2, release.set).start()
    assert cache.get("slow") == {"rows": 3}  # waited for the writer, then hit
    assert cache.get("broken") is None
    stats = cache.stats()
    assert (stats["sets"], stats["errors"], stats["hits"]) == (1, 1, 1)
    release.clear()
    cache.put_later("at-close", slow_payload, 60)
    threading.Timer(0.2, release.set).start()
    cache.close()
    assert release.is_set()  # close() returned only after the pending write ran
