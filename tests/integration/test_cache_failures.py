"""A failing Redis is never an error and never makes a read stale: killed, paused, full, restarted.

Each test starts its own ``redis-server`` on a free port (the shared one is never touched) and
stops it whatever happens. The two-process test uses the shared Redis with its own namespace.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder
from dataflow_nb.cache import create_query_cache
from tests.redis_servers import PrivateRedis, private_redis, require_redis

# Private redis-servers, killed and paused: the kind of test the fast loop (-m "not slow") leaves out.
pytestmark = pytest.mark.slow


@pytest.fixture
def server() -> Iterator[PrivateRedis]:
    with private_redis() as started:
        yield started


def run_one(node: Any, params: dict[str, Any]) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node(node, "n", params)
    results, _ = LocalRuntime().execute(workflow.build())
    return results["n"]


@pytest.fixture
def cdb(server: PrivateRedis, backend_url: str | None) -> Iterator[DataFlow]:
    db = DataFlow(backend_url, cache_enabled=True, cache_url=server.url, monitoring=True)
    assert db.cache is not None
    db.cache.retry_after = 0.3  # the breaker's pause, short so the test sees the recovery

    @db.model
    class Item:
        sku: str
        qty: int

    yield db
    db.close()


def count(db: DataFlow) -> int:
    return int(run_one(db.nodes["ItemCountNode"], {}))


def create(db: DataFlow, sku: str) -> None:
    run_one(db.nodes["ItemCreateNode"], {"sku": sku, "qty": 1})


def test_get_or_execute_returns_the_result_when_redis_is_gone(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    cache = create_query_cache(server.url, namespace="gone")
    assert cache.get_or_execute("k", lambda: [1], ttl=60) == [1]
    server.kill()
    with caplog.at_level(logging.WARNING, logger="dataflow_nb.cache"):
        for _ in range(5):
            assert cache.get_or_execute("k", lambda: [2], ttl=60) == [2]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "reads go to the database" in warnings[0].getMessage()
    assert cache.health()["status"] == "degraded"
    assert cache.stats()["errors"] == 1  # the breaker skipped Redis for the next four calls
    cache.close()


def test_get_or_execute_returns_the_result_when_redis_is_full() -> None:
    with private_redis("--maxmemory", "2mb", "--maxmemory-policy", "noeviction") as full:
        cache = create_query_cache(full.url, namespace="full")
        big = ["x" * 1000] * 5000  # 5 MB of JSON: Redis refuses it (OOM)
        assert cache.get_or_execute("big", lambda: big, ttl=60) == big
        assert cache.stats()["errors"] == 1 and cache.stats()["sets"] == 0
        assert cache.health()["status"] == "degraded"
        cache.close()


class BreakerClock:
    """The cache breaker's clock, moved by the test: no assertion depends on how fast runs are."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now


@pytest.mark.parametrize("failure", ["kill", "pause"])
def test_reads_stay_right_while_redis_fails_and_recover_after(
    cdb: DataFlow, server: PrivateRedis, failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cdb.cache is not None
    clock = BreakerClock()
    monkeypatch.setattr("dataflow_nb.cache.base.time", clock)
    create(cdb, "a")
    assert count(cdb) == 1 and count(cdb) == 1
    assert cdb.cache.stats()["hits"] == 1

    server.kill() if failure == "kill" else server.pause()
    create(cdb, "b")  # committed; its invalidation cannot reach Redis and waits
    assert [count(cdb) for _ in range(20)] == [2] * 20
    assert cdb.cache.stats()["errors"] == 1  # one timeout, then the breaker skips Redis: not one per query
    health = cdb.get_monitor().get_health_status()
    assert health["status"] == "degraded" and health["cache"]["status"] == "degraded"
    assert cdb.get_monitor().get_metrics()["cache"]["errors"] >= 1

    server.start() if failure == "kill" else server.resume()
    clock.now += 0.4  # past the breaker's pause
    assert count(cdb) == 2  # pending invalidation sent first: the old entry (1) is never served
    assert count(cdb) == 2
    assert cdb.get_monitor().get_health_status()["status"] == "healthy"


def test_paused_redis_does_not_serve_an_entry_the_outage_made_stale(server: PrivateRedis, postgres_url: str) -> None:
    # Two DataFlows on one PostgreSQL database: as two kernels would be.
    cdb, other = (DataFlow(postgres_url, cache_enabled=True, cache_url=server.url) for _ in range(2))
    try:
        for db in (cdb, other):
            assert db.cache is not None
            db.cache.retry_after = 0.3
            db.model(type("Item", (), {"__annotations__": {"sku": str, "qty": int}}))
        create(cdb, "a")
        assert count(other) == 1 and count(other) == 1  # cached by the other DataFlow
        server.pause()
        create(cdb, "b")  # invalidation pending in cdb
        server.resume()
        time.sleep(0.4)
        count(cdb)  # cdb reaches Redis again: its pending invalidation goes first
        assert count(other) == 2
    finally:
        cdb.close()
        other.close()


CHILD = textwrap.dedent(
    """
    import sys
    from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder

    db = DataFlow(sys.argv[1], cache_enabled=True, cache_url=sys.argv[2])

    @db.model
    class Item:
        sku: str
        qty: int

    def run(node, params):
        workflow = WorkflowBuilder()
        workflow.add_node(node, "n", params)
        return LocalRuntime().execute(workflow.build())[0]["n"]

    for line in sys.stdin:
        command = line.strip()
        if command == "count":
            print(run("ItemCountNode", {}), db.cache.stats()["hits"], flush=True)
        elif command.startswith("create "):
            run("ItemCreateNode", {"sku": command.split()[1], "qty": 1})
            print("ok", flush=True)
    db.close()
    """
)


def test_two_processes_see_each_others_writes(postgres_url: str) -> None:
    redis_url = require_redis()
    db = DataFlow(postgres_url, cache_enabled=True, cache_url=redis_url)

    @db.model
    class Item:
        sku: str
        qty: int

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, postgres_url, redis_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None

    def ask(command: str) -> list[str]:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(command + "\n")
        child.stdin.flush()
        return child.stdout.readline().split()

    try:
        create(db, "a")
        assert ask("count") == ["1", "0"]
        assert ask("count") == ["1", "1"]  # the child's second read is a hit
        create(db, "b")  # this process writes: the child's next read sees it
        assert ask("count") == ["2", "1"]
        assert count(db) == 2 and count(db) == 2  # now cached here too
        assert ask("create c") == ["ok"]  # the child writes: this process sees it
        assert count(db) == 3
    finally:
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()
        assert db.cache is not None
        db.cache.clear()
        db.close()
