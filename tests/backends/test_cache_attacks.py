"""The result cache tried as an attacker would: another role, volatile SQL, a crafted Redis entry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder, WorkflowError
from dataflow_nb.cache.codec import ARROW_BODY_AT, HEADER_LEN, MAGIC, MAX_GROWTH, TAG_ARROW
from tests.backends.tenants import login_role
from tests.redis_servers import require_redis


@pytest.fixture(params=["memory", "redis"])
def cache_url(request: pytest.FixtureRequest) -> str:
    return require_redis() if request.param == "redis" else "memory://"


@pytest.fixture
def make_db(cache_url: str) -> Iterator[Callable[..., DataFlow]]:
    """DataFlows with the cache on; their entries are cleared from the store afterwards."""
    made: list[DataFlow] = []

    def make(url: str | None, **options: Any) -> DataFlow:
        db = DataFlow(url, cache_enabled=True, cache_url=cache_url, **options)
        made.append(db)
        return db

    yield make
    for db in made:
        assert db.cache is not None
        db.cache.clear()
        db.close()


def sql(db: DataFlow, text: str) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node("SQLQueryNode", "q", {"sql": text, "db": db})
    return LocalRuntime().execute(workflow.build())[0]["q"]


def test_the_owners_cached_result_is_not_served_to_the_login_role(
    make_db: Callable[..., DataFlow], postgres_url: str
) -> None:
    """PostgreSQL only: DuckDB has no roles. The login role may not read the audit log."""
    owner = make_db(postgres_url, security_enabled=True)
    owner_read = sql(owner, "SELECT count(*) AS n FROM dataflow_nb_audit")
    assert owner_read["n"].to_list() == [0]
    with login_role(postgres_url) as url:
        login = make_db(url, security_enabled=True)
        with pytest.raises(WorkflowError, match="permission denied for table dataflow_nb_audit"):
            sql(login, "SELECT count(*) AS n FROM dataflow_nb_audit")
    assert owner.cache is not None and owner.cache.stats()["hits"] == 0


def test_sql_calling_a_volatile_function_is_never_cached(
    make_db: Callable[..., DataFlow], backend_url: str | None
) -> None:
    db = make_db(backend_url)
    varying = [
        "SELECT random() AS v",
        "SELECT now() AS v",
        "SELECT current_timestamp AS v",
        "SELECT CAST(gen_random_uuid() AS TEXT) AS v",
        "SELECT x.v FROM (SELECT random() AS v) AS x",
    ]
    if db.backend.capabilities.name == "duckdb":
        varying.append("SELECT CAST(uuid() AS TEXT) AS v")
    else:
        varying += ["SELECT clock_timestamp() AS v", "SELECT pg_catalog.random() AS v"]
    assert db.cache is not None
    for text in varying:
        first, second = sql(db, text)["v"][0], sql(db, text)["v"][0]
        assert db.cache.stats()["hits"] == 0, text
        if "random" in text or "uuid" in text:
            assert first != second, text
    assert sql(db, "SELECT lower('A') AS v")["v"].to_list() == sql(db, "SELECT lower('A') AS v")["v"].to_list()
    assert db.cache.stats()["hits"] == 1  # a deterministic query is cached: the counts above can move


def compressed_bomb(rows: int) -> bytes:
    """An Arrow IPC stream of ``rows`` zeros, zstd-compressed: a few KB that decode to 8 bytes a row."""
    table = pa.table({"n": pa.array([0] * rows, pa.int64())})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def test_an_entry_that_decodes_too_large_is_a_miss(backend_url: str | None) -> None:
    """A crafted entry in a real Redis (same key, same version tokens) decoding to ~100 MB: the
    read goes to the database instead, without an error and without decompressing it."""
    import redis

    url = require_redis()
    with DataFlow(backend_url, cache_enabled=True, cache_url=url) as db:
        assert db.cache is not None
        try:

            @db.model
            class Tally:
                n: int

            workflow = WorkflowBuilder()
            workflow.add_node(db.nodes["TallyCreateNode"], "c", {"n": 7})
            LocalRuntime().execute(workflow.build())
            assert sql(db, "SELECT n FROM tallies")["n"].to_list() == [7]  # a miss, now stored
            db.cache.stats()  # waits for the writer
            client = redis.Redis.from_url(url)
            keys = list(client.scan_iter(f"dataflow_nb:{db.cache.namespace}:r:*"))
            assert len(keys) == 1
            stored = client.get(keys[0])
            assert stored is not None
            rows = (MAX_GROWTH // 8) * 3 // 2  # half as much again as an entry may grow
            bomb = MAGIC + TAG_ARROW + bytes(ARROW_BODY_AT - HEADER_LEN) + compressed_bomb(rows)
            client.set(keys[0], stored[: stored.index(MAGIC)] + bomb, keepttl=True)  # the same tokens
            client.close()
            before = db.cache.stats()
            assert sql(db, "SELECT n FROM tallies")["n"].to_list() == [7]
            after = db.cache.stats()
            assert (after["hits"], after["misses"], after["errors"]) == (
                before["hits"],
                before["misses"] + 1,
                before["errors"],
            )
        finally:
            db.cache.clear()
