"""DataFlow(cache_enabled=True): reads are cached and never stale, on both databases and both stores.

Every write path is checked the same way: read (cached), read again (served from the cache),
write, read: the cached reads must equal what the database says now (``cache=False``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from dataflow_nb import DataFlow, LocalRuntime, SchemaError, ValidationError, WorkflowBuilder, WorkflowError
from dataflow_nb.cache.codec import ARROW_BODY_AT, HEADER_LEN, MAGIC, MAX_GROWTH, TAG_ARROW
from tests.backends.tenants import login_role
from tests.helpers import rows_of
from tests.redis_servers import require_redis

Step = tuple[str, str, dict[str, Any]]


@pytest.fixture(params=["memory", "redis"])
def cache_url(request: pytest.FixtureRequest) -> str:
    return require_redis() if request.param == "redis" else "memory://"


@pytest.fixture
def make_db(backend_url: str | None, cache_url: str) -> Iterator[Callable[..., DataFlow]]:
    """DataFlows with the cache on; each database's entries are cleared from the store afterwards."""
    made: list[DataFlow] = []

    def make(*, url: str | None = backend_url, **options: Any) -> DataFlow:
        db = DataFlow(url, cache_enabled=True, cache_url=cache_url, **options)
        made.append(db)
        return db

    yield make
    for db in made:
        assert db.cache is not None
        db.cache.clear()
        db.close()


@pytest.fixture
def cdb(make_db: Callable[..., DataFlow]) -> DataFlow:
    db = make_db()

    @db.model
    class Item:
        sku: str
        qty: int
        __dataflow__ = {"unique": [["sku"]], "soft_delete": True}

    return db


def run_steps(*steps: Step, **execute: Any) -> Any:
    workflow = WorkflowBuilder()
    for node_type, node_id, params in steps:
        workflow.add_node(node_type, node_id, params)
    results, _ = LocalRuntime().execute(workflow.build(), **execute)
    return results


def observe(db: DataFlow, *, cache: bool = True) -> dict[str, Any]:
    """Every cacheable read of items, as plain values."""
    results = run_steps(
        ("ItemListNode", "list", {"filter": {"qty": {"$gte": 0}}, "order_by": ["sku"], "cache": cache}),
        ("ItemCountNode", "count", {"cache": cache}),
        ("ItemListNode", "agg", {"aggregate": {"total": {"$sum": "qty"}}, "cache": cache}),
        (
            "SQLQueryNode",
            "sql",
            {"sql": "SELECT sku, qty FROM items WHERE deleted_at IS NULL ORDER BY sku", "db": db, "cache": cache},
        ),
    )
    return {
        "list": [(r["sku"], r["qty"]) for r in results["list"].to_dicts()],
        "count": results["count"],
        "agg": results["agg"]["total"].to_list(),
        "sql": [(r["sku"], r["qty"]) for r in results["sql"].to_dicts()],
    }


def hits(db: DataFlow) -> int:
    assert db.cache is not None
    return int(db.cache.stats()["hits"])


def seed(db: DataFlow) -> None:
    run_steps(
        ("ItemBulkCreateNode", "load", {"data": [{"sku": s, "qty": q} for s, q in [("a", 1), ("b", 2), ("c", 3)]]})
    )
    run_steps(("ItemDeleteNode", "d", {"id": ids_of(db)["c"]}))  # soft-deleted: something to restore


def ids_of(db: DataFlow) -> dict[str, int]:
    listed = run_steps(("ItemListNode", "l", {"cache": False, "include_deleted": True}))["l"]
    return {r["sku"]: r["id"] for r in listed.to_dicts()}


# Every write path, in an order where each one changes what the reads return.
WRITES: dict[str, Callable[[DataFlow, dict[str, int]], Step]] = {
    "create": lambda db, ids: ("ItemCreateNode", "w", {"sku": "z", "qty": 9}),
    "update": lambda db, ids: ("ItemUpdateNode", "w", {"id": ids["a"], "qty": 50}),
    "upsert": lambda db, ids: ("ItemUpsertNode", "w", {"sku": "a", "qty": 77}),
    "restore": lambda db, ids: ("ItemRestoreNode", "w", {"id": ids["c"]}),
    "soft_delete": lambda db, ids: ("ItemDeleteNode", "w", {"id": ids["c"]}),
    "bulk_create": lambda db, ids: ("ItemBulkCreateNode", "w", {"data": [{"sku": "y", "qty": 5}]}),
    "bulk_update": lambda db, ids: ("ItemBulkUpdateNode", "w", {"filter": {"sku": "a"}, "fields": {"qty": 42}}),
    "bulk_update_ids": lambda db, ids: (
        "ItemBulkUpdateNode",
        "w",
        {"data": pl.DataFrame({"id": [ids["b"]], "qty": [8]})},
    ),
    "bulk_upsert": lambda db, ids: (
        "ItemBulkUpsertNode",
        "w",
        {"data": [{"sku": "a", "qty": 31}], "conflict_on": ["sku"]},
    ),
    "sql_write": lambda db, ids: (
        "SQLQueryNode",
        "w",
        {"sql": "UPDATE items SET qty = qty + 100 WHERE sku = 'b'", "db": db},
    ),
    "hard_delete": lambda db, ids: ("ItemDeleteNode", "w", {"id": ids["b"], "hard": True}),
    "bulk_delete": lambda db, ids: ("ItemBulkDeleteNode", "w", {"filter": {"sku": "a"}}),
}


def test_every_write_path_invalidates_cached_reads(cdb: DataFlow) -> None:
    seed(cdb)
    for write, step in WRITES.items():
        first = observe(cdb)
        before = hits(cdb)
        assert observe(cdb) == first
        assert hits(cdb) - before == 4, write  # list, count, aggregate and SQL all came from the cache

        run_steps(step(cdb, ids_of(cdb)))

        after = observe(cdb)
        assert after == observe(cdb, cache=False), f"stale after {write}"
        assert after != first, f"{write} changed nothing the reads show"


def test_migrations_invalidate(cdb: DataFlow) -> None:
    seed(cdb)
    observe(cdb)

    @cdb.model
    class Item:
        sku: str
        qty: int
        colour: str = "red"  # a safe change: applied at once
        __dataflow__ = {"unique": [["sku"]], "soft_delete": True}

    listed = run_steps(("ItemListNode", "l", {"order_by": ["sku"]}))["l"]
    assert listed["colour"].to_list() == ["red", "red"]
    colours = ("SQLQueryNode", "s", {"sql": "SELECT colour FROM items", "db": cdb})
    assert run_steps(colours)["s"]["colour"].to_list() == run_steps(colours)["s"]["colour"].to_list()

    with pytest.raises(SchemaError):

        @cdb.model
        class Item:  # type: ignore[no-redef]
            sku: str
            qty: int
            __dataflow__ = {"unique": [["sku"]], "soft_delete": True}

    cdb.migrate("Item", allow_destructive=True)
    assert "colour" not in run_steps(("ItemListNode", "l", {"order_by": ["sku"]}))["l"].columns
    with pytest.raises(WorkflowError, match="colour"):  # the cached SQL result must not outlive the column
        run_steps(colours)


def test_read_by_id_is_cached_and_invalidated(cdb: DataFlow) -> None:
    seed(cdb)
    ids = ids_of(cdb)
    read = ("ItemReadNode", "r", {"id": ids["a"]})
    assert run_steps(read)["r"]["qty"].to_list() == [1]
    before = hits(cdb)
    assert run_steps(read)["r"]["qty"].to_list() == [1]
    assert hits(cdb) == before + 1
    run_steps(("ItemUpdateNode", "u", {"id": ids["a"], "qty": 2}))
    assert run_steps(read)["r"]["qty"].to_list() == [2]


def test_a_rolled_back_run_leaves_the_cache_as_it_was(cdb: DataFlow) -> None:
    seed(cdb)
    first = observe(cdb)
    invalidations = cdb.cache.stats()["invalidations"] if cdb.cache else 0

    def fail(**_: Any) -> None:
        raise RuntimeError("boom")

    workflow = WorkflowBuilder()
    workflow.add_node("ItemCreateNode", "create", {"sku": "ghost", "qty": 1000})
    workflow.add_node("ItemListNode", "inside", {"order_by": ["sku"]})  # sees the uncommitted row
    workflow.add_node("ItemCountNode", "count_inside", {})
    workflow.add_node(fail, "fail")
    workflow.add_connection("inside", "data", "fail", "data")
    with pytest.raises(WorkflowError, match="boom"):
        LocalRuntime().execute(workflow.build())

    assert cdb.cache is not None
    assert cdb.cache.stats()["invalidations"] == invalidations  # nothing committed, nothing dropped
    assert observe(cdb) == first == observe(cdb, cache=False)
    assert "ghost" not in [sku for sku, _ in observe(cdb)["list"]]


def test_reads_after_a_write_in_the_same_run_see_the_run_and_are_not_cached(cdb: DataFlow) -> None:
    seed(cdb)
    observe(cdb)  # cached: a, b
    results = run_steps(
        ("ItemCreateNode", "create", {"sku": "n", "qty": 4}),
        ("ItemCountNode", "count", {}),
        ("ItemListNode", "list", {"order_by": ["sku"]}),
    )
    assert results["count"] == 3
    assert results["list"]["sku"].to_list() == ["a", "b", "n"]
    assert observe(cdb)["count"] == 3


def test_cache_false_and_cache_ttl_per_node(cdb: DataFlow) -> None:
    seed(cdb)
    assert cdb.cache is not None
    run_steps(("ItemCountNode", "c", {"cache": False}))
    run_steps(("ItemCountNode", "c", {"cache": False}))
    assert cdb.cache.stats()["hits"] == 0 and cdb.cache.stats()["sets"] == 0
    run_steps(("ItemCountNode", "c", {"cache_ttl": 0.5}))
    assert run_steps(("ItemCountNode", "c", {"cache_ttl": 0.5}))["c"] == 2
    assert cdb.cache.stats()["hits"] == 1
    import time

    time.sleep(0.7)
    run_steps(("ItemCountNode", "c", {"cache_ttl": 0.5}))
    assert cdb.cache.stats()["hits"] == 1  # expired: read again from the database
    for bad in ({"cache": "yes"}, {"cache_ttl": -1}):
        with pytest.raises(WorkflowError) as info:
            run_steps(("ItemCountNode", "c", bad))
        assert isinstance(info.value.__cause__, ValidationError)
        assert "ItemCountNode: cache" in str(info.value.__cause__)


def test_hits_return_new_frames(cdb: DataFlow) -> None:
    seed(cdb)
    first = run_steps(("ItemListNode", "l", {"order_by": ["sku"]}))["l"]
    hit = run_steps(("ItemListNode", "l", {"order_by": ["sku"]}))["l"]
    hit = hit.with_columns(pl.lit(0).alias("qty"))  # a changed copy must not reach the cache
    again = run_steps(("ItemListNode", "l", {"order_by": ["sku"]}))["l"]
    assert again["qty"].to_list() == first["qty"].to_list() == [1, 2]
    assert hit["qty"].to_list() == [0, 0]


def test_pandas_hits_are_new_mutable_frames(make_db: Callable[..., DataFlow]) -> None:
    db = make_db(frame="pandas")

    @db.model
    class Item:
        sku: str
        qty: int

    run_steps(("ItemCreateNode", "c", {"sku": "a", "qty": 1}))
    first = run_steps(("ItemListNode", "l", {}))["l"]
    first.loc[0, "qty"] = 99
    hit = run_steps(("ItemListNode", "l", {}))["l"]
    assert hit["qty"].tolist() == [1]
    hit.loc[0, "qty"] = 98
    assert run_steps(("ItemListNode", "l", {}))["l"]["qty"].tolist() == [1]
    assert db.cache is not None and db.cache.stats()["hits"] == 2


@pytest.fixture
def second_url(backend_url: str | None) -> Iterator[str | None]:
    """Another database like the first: an in-memory DuckDB, or another PostgreSQL schema."""
    if backend_url is None:
        yield None
        return
    from tests.conftest import _admin_connection, _run

    connection = _admin_connection()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _run(connection, f"CREATE SCHEMA {schema}")
    try:
        yield backend_url.rsplit("%3D", 1)[0] + f"%3D{schema}"
    finally:
        _run(connection, f"DROP SCHEMA {schema} CASCADE")
        connection.close()


def test_two_databases_never_share_entries(
    make_db: Callable[..., DataFlow], backend_url: str | None, second_url: str | None, cache_url: str
) -> None:
    first = make_db(name="first")
    second = DataFlow(second_url, cache_enabled=True, cache_url=cache_url, name="second")
    try:
        for db, qty in ((first, 1), (second, 2)):

            @db.model
            class Item:
                sku: str
                qty: int

            run_steps((db.nodes["ItemCreateNode"], "c", {"sku": "a", "qty": qty}))
        for _ in range(2):  # the second round is served from the cache
            for db, qty in ((first, 1), (second, 2)):
                assert run_steps((db.nodes["ItemListNode"], "l", {}))["l"]["qty"].to_list() == [qty]
                sql = {"sql": "SELECT qty FROM items", "db": db}
                assert run_steps(("SQLQueryNode", "s", sql))["s"]["qty"].to_list() == [qty]
        assert first.cache is not None and second.cache is not None
        assert first.cache.stats()["hits"] == 2 and second.cache.stats()["hits"] == 2
        assert first.cache.namespace != second.cache.namespace
    finally:
        assert second.cache is not None
        second.cache.clear()
        second.close()


def test_two_tenants_never_see_each_others_cached_rows(make_db: Callable[..., DataFlow]) -> None:
    db = make_db(multi_tenant=True)

    @db.model
    class Note:
        text: str

    for tenant in ("acme", "globex"):
        run_steps(("NoteCreateNode", "c", {"text": f"{tenant} secret"}), tenant_id=tenant)
    for _ in range(2):
        for tenant in ("acme", "globex"):
            listed = run_steps(("NoteListNode", "l", {}), tenant_id=tenant)["l"]
            assert listed["text"].to_list() == [f"{tenant} secret"]
            assert run_steps(("NoteCountNode", "n", {}), tenant_id=tenant)["n"] == 1
    assert db.cache is not None and db.cache.stats()["hits"] == 4


@pytest.mark.parametrize("frame", ["polars", "pandas"])
def test_a_hit_is_the_same_frame_as_a_miss(make_db: Callable[..., DataFlow], frame: str) -> None:
    import datetime as dt
    import decimal
    from typing import Optional

    import pandas as pd

    db = make_db(frame=frame)

    @db.model
    class Thing:
        name: str
        n: int
        ratio: float
        ok: bool
        at: dt.datetime
        price: decimal.Decimal
        ref: uuid.UUID
        extra: dict  # type: ignore[type-arg]
        note: Optional[str] = None  # noqa: UP045 - the spelling users write

    run_steps(
        (
            "ThingBulkCreateNode",
            "load",
            {
                "data": [
                    {
                        "name": f"t{i}",
                        "n": i,
                        "ratio": i / 3,
                        "ok": i % 2 == 0,
                        "at": dt.datetime(2024, 1, 1, i, tzinfo=dt.UTC),
                        "price": decimal.Decimal(f"{i}.25"),
                        "ref": uuid.UUID(int=i),
                        "extra": {"i": i},
                        "note": None if i % 2 else "x",
                    }
                    for i in range(5)
                ]
            },
        )
    )
    miss = run_steps(("ThingListNode", "l", {}))["l"]
    hit = run_steps(("ThingListNode", "l", {}))["l"]
    assert db.cache is not None and db.cache.stats()["hits"] == 1
    assert rows_of(hit) == rows_of(miss)
    if frame == "polars":
        assert hit.schema == miss.schema
    else:
        assert hit.dtypes.to_dict() == miss.dtypes.to_dict()
        assert isinstance(hit, pd.DataFrame)


def test_counts_reach_the_monitor_health_and_prometheus(make_db: Callable[..., DataFlow]) -> None:
    db = make_db(monitoring=True, metrics_export="prometheus")

    @db.model
    class Item:
        sku: str
        qty: int

    run_steps(("ItemCreateNode", "c", {"sku": "a", "qty": 1}))
    for _ in range(3):
        run_steps(("ItemCountNode", "n", {}))
    monitor = db.get_monitor()
    counts = monitor.get_metrics()["cache"]
    assert (counts["hits"], counts["misses"], counts["errors"]) == (2, 1, 0)
    assert counts["bytes_read"] > 0 and counts["bytes_written"] > 0
    health = monitor.get_health_status()
    assert health["status"] == "healthy" and health["cache"]["status"] == "ok" and health["cache"]["hits"] == 2
    text = monitor.prometheus_text()
    assert "dataflow_cache_hits_total" in text and "dataflow_cache_degraded" in text
    hits = [line for line in text.splitlines() if line.startswith("dataflow_cache_hits_total")]
    assert hits and hits[0].endswith(" 2.0")


def sql(db: DataFlow, text: str) -> Any:
    return run_steps(("SQLQueryNode", "q", {"sql": text, "db": db}))["q"]


@pytest.mark.only(["postgres"])  # DuckDB has no roles
def test_the_owners_cached_result_is_not_served_to_the_login_role(
    make_db: Callable[..., DataFlow], backend_url: str
) -> None:
    """The login role may not read the audit log; the owner's cached read of it must not answer it."""
    owner = make_db(security_enabled=True)
    owner_read = sql(owner, "SELECT count(*) AS n FROM dataflow_nb_audit")
    assert owner_read["n"].to_list() == [0]
    with login_role(backend_url) as url:
        login = make_db(url=url, security_enabled=True)
        with pytest.raises(WorkflowError, match="permission denied for table dataflow_nb_audit"):
            sql(login, "SELECT count(*) AS n FROM dataflow_nb_audit")
    assert owner.cache is not None and owner.cache.stats()["hits"] == 0


def test_sql_calling_a_volatile_function_is_never_cached(make_db: Callable[..., DataFlow]) -> None:
    db = make_db()
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
    table = pa.table({"n": pa.array(np.zeros(rows, np.int64))})  # a Python list of them took ~1 s
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
