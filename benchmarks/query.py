#!/usr/bin/env python
"""Query benchmark: filter compile time, and a filtered, grouped List beside the raw driver.

    .venv/bin/python benchmarks/query.py                      # both backends, 1,000,000 rows
    .venv/bin/python benchmarks/query.py --rows 100000 --backends duckdb

Measures:

1. ``compile``: one 20-clause nested filter (``$and``/``$or``/``$not`` over seven fields, with
   ``$in``, ``$between``, ``$like``, ``$regex``...) turned into executable SQL and values, per
   dialect. ``warm`` is what every List run pays once the filter's shape has been seen:
   check every field and value, look the compiled statement up by shape, bind the values.
   ``cold`` is the first time a shape is seen: the same plus SQLAlchemy building and
   compiling the statement. ``plan`` is the check alone. Target: warm ≤ 1 ms.
2. ``grouped list``: FlightListNode with a filter, ``group_by`` carrier and four aggregates
   over ``--rows`` rows, into polars, against the same query written by hand in SQL on the
   raw driver (DuckDB's Python API, ADBC for PostgreSQL) into polars. Median of ``--repeats``
   after a warm-up, node and raw interleaved. Target: node throughput ≥ 0.9 x raw.

PostgreSQL runs in a fresh schema (``search_path`` through the URL), dropped at the end even on
error; DuckDB in a temporary file. Missed targets are reported, not fatal.
"""

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from dataflow_nb import (  # noqa: E402
    DataFlow,
    LocalRuntime,
    WorkflowBuilder,
    explain,
)

PG_URL = os.environ.get("DATAFLOW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
COMPILE_TARGET_MS = 1.0
THROUGHPUT_TARGET = 0.9

FILTER_20: dict[str, Any] = {
    "$and": [
        {"dep_delay": {"$gt": -10, "$lte": 600}},
        {"carrier": {"$in": ["AA", "UA", "DL", "WN", "B6"]}},
        {"$or": [{"distance": {"$between": [100.0, 3000.0]}}, {"distance": None}]},
        {"$not": {"origin": {"$like": "X%"}}},
        {"$or": [{"tail": {"$regex": "^N[0-9]"}}, {"tail": {"$exists": False}}]},
        {"cancelled": False},
        {"$or": [{"dep_delay": {"$ne": 0}}, {"origin": {"$nin": ["JFK", "LGA"]}}]},
        {"$not": {"$and": [{"distance": {"$lt": 50.0}}, {"carrier": "ZZ"}]}},
        {"origin": {"$ilike": "%a%"}},
        {"$or": [{"dep_delay": {"$gte": 15}}, {"carrier": {"$ne": "AA"}}, {"distance": {"$gt": 1000.0}}]},
        {"$or": [{"id": {"$gte": 0}}, {"tail": "N1"}]},
        {"origin": {"$exists": True}},
    ]
}
AGGREGATE = {
    "flights": {"$count": "*"},
    "avg_delay": {"$avg": "dep_delay"},
    "total_delay": {"$sum": "dep_delay"},
    "longest": {"$max": "distance"},
}
LIST_PARAMS = {
    "filter": {"dep_delay": {"$gt": 0}, "distance": {"$lt": 2500.0}},
    "group_by": ["carrier"],
    "aggregate": AGGREGATE,
}
RAW_SQL = (
    "SELECT carrier, count(*) AS flights, avg(dep_delay) AS avg_delay, sum(dep_delay) AS total_delay, "
    "max(distance) AS longest FROM flights WHERE dep_delay > {p1} AND distance < {p2} "
    "GROUP BY carrier ORDER BY carrier"
)


def count_clauses(spec: Any) -> int:
    """Leaf conditions: one per operator on a field (a bare value is one ``$eq``)."""
    if isinstance(spec, list):
        return sum(count_clauses(s) for s in spec)
    total = 0
    for key, value in spec.items():
        if key in ("$and", "$or", "$not"):
            total += count_clauses(value)
        else:
            total += len(value) if isinstance(value, dict) else 1
    return total


def define(db: DataFlow) -> None:
    @db.model
    class Flight:
        carrier: str | None = None
        origin: str
        tail: str | None = None
        dep_delay: int | None = None
        distance: float | None = None
        cancelled: bool = False


def load_sql(backend: str, rows: int) -> str:
    source = f"range({rows}) AS t(i)" if backend == "duckdb" else f"generate_series(0, {rows - 1}) AS t(i)"
    carrier = "(ARRAY['AA','UA','DL','WN','B6','AS','NK','F9'])[1 + (i * 7) % 8]"
    if backend == "duckdb":
        carrier = "(['AA','UA','DL','WN','B6','AS','NK','F9'])[1 + (i * 7) % 8]"
    return (
        "INSERT INTO flights (id, carrier, origin, tail, dep_delay, distance, cancelled, created_at, updated_at) "
        f"SELECT i, CASE WHEN i % 97 = 0 THEN NULL ELSE {carrier} END, "
        "CASE WHEN i % 3 = 0 THEN 'JFK' WHEN i % 3 = 1 THEN 'SFO' ELSE 'ATL' END, "
        "CASE WHEN i % 11 = 0 THEN NULL ELSE 'N' || CAST(i % 1000 AS VARCHAR) END, "
        "CASE WHEN i % 13 = 0 THEN NULL ELSE (i * 37) % 240 - 30 END, "
        "CASE WHEN i % 17 = 0 THEN NULL ELSE CAST((i * 13) % 4000 AS DOUBLE PRECISION) END, "
        f"i % 50 = 0, now(), now() FROM {source}"
    )


def bench_compile(db: DataFlow, repeats: int = 300) -> dict[str, float]:
    """Milliseconds per 20-clause filter: plan only, warm (cached shape) and cold."""
    from dataflow_nb.query.filters import model_target, plan_filter
    from dataflow_nb.workflow.context import RunContext

    node = db.nodes["FlightListNode"]()
    spec = db.models["Flight"]
    target = model_target(spec, spec.table)
    ctx = RunContext("bench")
    params = {"filter": FILTER_20, "fields": ["id"]}

    def per_call(func: Any, n: int) -> float:
        gc.collect()
        started = time.perf_counter()
        for _ in range(n):
            func()
        return (time.perf_counter() - started) / n * 1000

    plan = per_call(lambda: plan_filter(target, FILTER_20), repeats)
    node.sql_for(ctx, params)
    warm = per_call(lambda: node.sql_for(ctx, params), repeats)

    def cold() -> None:
        node._statements.clear()
        node.sql_for(ctx, params)

    cold_ms = per_call(cold, max(repeats // 10, 10))
    return {"plan": plan, "warm": warm, "cold": cold_ms}


class Raw:
    """The same database through its own driver, no dataflow_nb in between."""

    def __init__(self, backend: str, url: str):
        self.backend = backend
        if backend == "duckdb":
            import duckdb

            self.connection = duckdb.connect(url)
        else:
            import adbc_driver_postgresql.dbapi

            self.connection = adbc_driver_postgresql.dbapi.connect(url)

    def query(self, sql: str, params: list[Any]) -> pl.DataFrame:
        if self.backend == "duckdb":
            frame = pl.from_arrow(self.connection.sql(sql, params=params).to_arrow_table())
        else:
            with self.connection.cursor() as cursor:
                cursor.execute(sql, params)
                frame = pl.from_arrow(cursor.fetch_arrow_table())
            self.connection.rollback()
        assert isinstance(frame, pl.DataFrame)
        return frame

    def run(self, sql: str) -> None:
        if self.backend == "duckdb":
            self.connection.execute(sql)
        else:
            with self.connection.cursor() as cursor:
                cursor.execute(sql)
            self.connection.commit()

    def close(self) -> None:
        self.connection.close()


def bench_list(db: DataFlow, raw: Raw, rows: int, repeats: int) -> dict[str, Any]:
    placeholder = "$1", "$2"
    raw_sql = RAW_SQL.format(p1=placeholder[0], p2=placeholder[1])
    workflow = WorkflowBuilder()
    workflow.add_node(db.nodes["FlightListNode"], "by_carrier", LIST_PARAMS)
    built = workflow.build()
    node_times, raw_times = [], []
    node_frame = raw_frame = None
    for repeat in range(repeats + 1):  # repeat 0 warms up
        gc.collect()
        started = time.perf_counter()
        node_frame = LocalRuntime().execute(built)[0]["by_carrier"]
        node_seconds = time.perf_counter() - started
        gc.collect()
        started = time.perf_counter()
        raw_frame = raw.query(raw_sql, [0, 2500.0])
        raw_seconds = time.perf_counter() - started
        if repeat:
            node_times.append(node_seconds)
            raw_times.append(raw_seconds)
            print(f"    run {repeat}: node {node_seconds:.3f} s, raw {raw_seconds:.3f} s", flush=True)
    assert node_frame is not None and raw_frame is not None
    assert node_frame["carrier"].to_list() == raw_frame["carrier"].to_list()
    assert node_frame["flights"].to_list() == raw_frame["flights"].to_list()
    node_s, raw_s = statistics.median(node_times), statistics.median(raw_times)
    return {"node_s": node_s, "raw_s": raw_s, "node_rps": rows / node_s, "raw_rps": rows / raw_s}


def run_backend(backend: str, rows: int, repeats: int) -> dict[str, Any]:
    admin: Any = None
    schema = None
    tmp = None
    if backend == "duckdb":
        tmp = tempfile.mkdtemp(prefix="dataflow_bench_")
        path = str(Path(tmp) / "query.duckdb")
        url, raw_url = f"duckdb:///{path}", path
    else:
        import adbc_driver_postgresql.dbapi

        admin = adbc_driver_postgresql.dbapi.connect(PG_URL, autocommit=True)
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in PG_URL else "?"
        url = raw_url = f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    db = DataFlow(url)
    raw = None
    try:
        define(db)
        print(f"[{backend}] compile ...", flush=True)
        compile_ms = bench_compile(db)
        raw = Raw(backend, raw_url)
        print(f"[{backend}] loading {rows:,} rows ...", flush=True)
        started = time.perf_counter()
        raw.run(load_sql(backend, rows))
        if admin is not None:
            with admin.cursor() as cursor:
                cursor.execute(f"VACUUM ANALYZE {schema}.flights")
        print(f"[{backend}] loaded in {time.perf_counter() - started:.1f} s; grouped list ...", flush=True)
        listing = bench_list(db, raw, rows, repeats)
        plan = explain("FlightListNode", LIST_PARAMS).sql if backend == "duckdb" else None
        return {"compile": compile_ms, "list": listing, "sql": plan}
    finally:
        if raw is not None:
            raw.close()
        db.close()
        if admin is not None:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            admin.close()
        if tmp is not None:
            for file in Path(tmp).iterdir():
                file.unlink()
            Path(tmp).rmdir()


def report(results: dict[str, dict[str, Any]], rows: int) -> None:
    lines = [("measure", *results, "target", "status")]

    def row(label: str, values: list[str], target: str, ok: bool | None) -> None:
        lines.append((label, *values, target, "" if ok is None else ("ok" if ok else "MISS")))

    backends = list(results)
    for kind in ("warm", "cold", "plan"):
        values = [results[b]["compile"][kind] for b in backends]
        target = f"≤ {COMPILE_TARGET_MS} ms" if kind == "warm" else ""
        ok = all(v <= COMPILE_TARGET_MS for v in values) if kind == "warm" else None
        row(f"compile 20-clause filter, {kind} (ms)", [f"{v:.3f}" for v in values], target, ok)
    size = f"{rows / 1e6:g}M" if rows >= 1_000_000 else f"{rows:,}"
    row(f"grouped list {size}: node (s)", [f"{results[b]['list']['node_s']:.3f}" for b in backends], "", None)
    row(f"grouped list {size}: raw (s)", [f"{results[b]['list']['raw_s']:.3f}" for b in backends], "", None)
    row(f"grouped list {size}: node (rows/s)", [f"{results[b]['list']['node_rps']:,.0f}" for b in backends], "", None)
    row(f"grouped list {size}: raw (rows/s)", [f"{results[b]['list']['raw_rps']:,.0f}" for b in backends], "", None)
    ratios = [results[b]["list"]["node_rps"] / results[b]["list"]["raw_rps"] for b in backends]
    row(
        "grouped list: node / raw throughput",
        [f"{r:.2f}" for r in ratios],
        f"≥ {THROUGHPUT_TARGET}",
        all(r >= THROUGHPUT_TARGET for r in ratios),
    )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    print()
    for i, line in enumerate(lines):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * width for width in widths))
    sql = next((r["sql"] for r in results.values() if r["sql"]), None)
    if sql:
        print(f"\nThe node's SQL (DuckDB):\n{sql}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--backends", default="duckdb,postgres")
    args = parser.parse_args()
    print(f"20-clause filter: {count_clauses(FILTER_20)} conditions")
    results = {}
    for backend in args.backends.split(","):
        results[backend] = run_backend(backend, args.rows, args.repeats)
    report(results, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
