#!/usr/bin/env python
"""Result cache benchmark: cached against uncached reads, on DuckDB and PostgreSQL, memory and Redis.

    .venv/bin/python benchmarks/cache.py                       # both backends, both stores
    .venv/bin/python benchmarks/cache.py --backends duckdb --rows 20000

Measures, per backend and store (``DataFlow(cache_enabled=True, cache_url=...)``):

1. ``list 100k``: a ReadingListNode returning ``--rows`` rows with ``cache=False`` (the
   database) against the same node served from the cache (a hit). Target: hit >= 10x faster.
2. ``hit 1k``: milliseconds for one run of a workflow whose List node (1,000 rows) is a hit.
   Target on Redis: <= 2 ms.
3. ``miss overhead``: the same List with a different filter value each time, so every run is a
   miss (key, tokens, lookup, query), against ``cache=False`` with the same values. Reported for
   ``--rows`` rows and for 1,000 rows; target <= 5% on the big List. A miss's entry is encoded
   and stored behind the run, on the cache's writer thread; the script waits for that write
   outside the timed region (as a notebook does between cells) and prints its median
   seconds as ``store``.

Each figure is the median of ``--repeats`` runs after a warm-up; only ``LocalRuntime().execute``
is timed. PostgreSQL runs in a fresh schema dropped at the end; Redis entries go under the
schema's own namespace and are cleared at the end. Misses against targets are reported, not
fatal: the script exits 0 when every measurement ran.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from core import define_models  # noqa: E402 - after the path is set

DEFAULT_PG_URL = os.environ.get("DATAFLOW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DEFAULT_REDIS_URL = os.environ.get("DATAFLOW_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SMALL = 1000


def timed(workflow: Any, repeats: int) -> float:
    """Median seconds of ``execute`` over ``repeats`` runs, after one warm-up."""
    from dataflow_nb import LocalRuntime

    runtime = LocalRuntime()
    runtime.execute(workflow)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        runtime.execute(workflow)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def list_workflow(params: dict[str, Any]) -> Any:
    from dataflow_nb import WorkflowBuilder

    workflow = WorkflowBuilder()
    workflow.add_node("ReadingListNode", "list", params)
    return workflow.build()


def miss_pair(db: Any, limit: int | None, repeats: int) -> tuple[float, float, float]:
    """Median seconds per run: uncached, cached misses (a new filter value, a new key, each run),
    and the write-behind store of a miss's entry (waited for untimed, before the next run)."""
    from dataflow_nb import LocalRuntime

    runtime = LocalRuntime()
    uncached, missed, stored = [], [], []
    for i in range(repeats + 1):
        for cache, samples in ((False, uncached), (True, missed)):
            params: dict[str, Any] = {"filter": {"id": {"$gt": -1 - i - (10_000 if cache else 0)}}, "cache": cache}
            if limit is not None:
                params["limit"] = limit
            workflow = list_workflow(params)
            started = time.perf_counter()
            runtime.execute(workflow)
            finished = time.perf_counter()
            db.cache.flush()
            if i:  # the first round warms up
                samples.append(finished - started)
                if cache:
                    stored.append(time.perf_counter() - finished)
    return statistics.median(uncached), statistics.median(missed), statistics.median(stored)


def measure(url: str | None, cache_url: str, rows: int, repeats: int) -> dict[str, float]:
    import polars as pl

    from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder

    db = DataFlow(url, cache_enabled=True, cache_url=cache_url)
    try:
        define_models(db)  # the Reading model core.py measures
        base = datetime(2024, 1, 1, tzinfo=UTC)
        data = pl.DataFrame(
            {
                "sensor": [f"s{i % 97}" for i in range(rows)],
                "value": [i * 0.5 for i in range(rows)],
                "count": list(range(rows)),
                "ok": [i % 2 == 0 for i in range(rows)],
                "taken_at": [base + timedelta(seconds=i) for i in range(rows)],
            }
        )
        load = WorkflowBuilder()
        load.add_node("ReadingBulkCreateNode", "load", {"data": data})
        LocalRuntime().execute(load.build())

        uncached = timed(list_workflow({"cache": False}), repeats)
        hit = timed(list_workflow({}), repeats)
        hit_small = timed(list_workflow({"limit": SMALL}), repeats * 4)
        big_plain, big_miss, big_store = miss_pair(db, None, repeats)
        small_plain, small_miss, _ = miss_pair(db, SMALL, repeats * 4)
        assert db.cache is not None
        return {
            "uncached_s": uncached,
            "hit_s": hit,
            "hit_small_ms": hit_small * 1000,
            "miss_overhead_big": big_miss / big_plain - 1,
            "miss_overhead_small": small_miss / small_plain - 1,
            "store_ms": big_store * 1000,
            "errors": db.cache.stats()["errors"],
        }
    finally:
        if db.cache is not None:
            db.cache.clear()
        db.close()


def postgres_schema(pg_url: str) -> tuple[str, Any]:
    import adbc_driver_postgresql.dbapi

    admin = adbc_driver_postgresql.dbapi.connect(pg_url, autocommit=True)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
    return f"{pg_url}?options=-csearch_path%3D{schema}", (admin, schema)


def drop_schema(handle: Any) -> None:
    admin, schema = handle
    with admin.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA {schema} CASCADE")
    admin.close()


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args()

    results: dict[tuple[str, str], dict[str, float]] = {}
    for backend in args.backends.split(","):
        for store, cache_url in (("memory", "memory://"), ("redis", args.redis_url)):
            handle = None
            url = None
            if backend == "postgres":
                url, handle = postgres_schema(args.pg_url)
            try:
                results[backend, store] = measure(url, cache_url, args.rows, args.repeats)
            finally:
                if handle is not None:
                    drop_schema(handle)

    print(f"\nResult cache, {args.rows:,} rows, median of {args.repeats} runs (load average {os.getloadavg()[0]:.1f})")
    header = f"{'backend':9} {'store':7} {'uncached':>10} {'hit':>9} {'speed-up':>9} {'':5} {'1k hit':>8} {'':5}"
    print(header + f" {'miss +% big':>11} {'':5} {'miss +% 1k':>10} {'store':>8} {'errors':>6}")
    for (backend, store), r in results.items():
        speedup = r["uncached_s"] / r["hit_s"]
        small_ok = r["hit_small_ms"] <= 2.0 if store == "redis" else True
        print(
            f"{backend:9} {store:7} {r['uncached_s'] * 1000:8.1f}ms {r['hit_s'] * 1000:7.1f}ms {speedup:8.1f}x "
            f"{verdict(speedup >= 10):5} {r['hit_small_ms']:6.2f}ms {verdict(small_ok):5} "
            f"{r['miss_overhead_big'] * 100:10.1f}% {verdict(r['miss_overhead_big'] <= 0.05):5} "
            f"{r['miss_overhead_small'] * 100:9.1f}% {r['store_ms']:6.1f}ms {int(r['errors']):6}"
        )
    print("targets: speed-up >= 10x; 1k hit <= 2 ms on Redis; miss overhead <= 5% on the big List")
    print("store: the big miss's entry encoded and stored behind the run (waited for between runs, untimed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
