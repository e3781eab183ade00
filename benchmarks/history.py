#!/usr/bin/env python
"""Run-history overhead: a 200-node workflow with and without run history, in the same run.

    .venv/bin/python benchmarks/history.py                     # both backends
    .venv/bin/python benchmarks/history.py --repeats 30 --backends duckdb

Two DataFlows on two databases of the same kind (two DuckDB files, two PostgreSQL schemas), one
with ``run_history=True`` (the default), one with ``run_history=False``, run the same workflow:
100 CreateNodes, 50 ListNodes (limit 10) and 50 CountNodes. Runs alternate between the two after
a warm-up; the figure is the median run time with history over the median without, minus one,
and beside it the median of each round's own ratio (the two runs of a round are back to back, so
a busy moment of the machine weighs on both). Target (issue 24): overhead <= 2%. Missed targets
are reported, not fatal.

On PostgreSQL it also times what every run pays to hand its connection back clean
(``DISCARD ALL`` after the rollback, ``backends/postgres_pool.py``'s ``discard_session``) against a
plain rollback on a raw ADBC connection, and sets it beside a one-node run.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder  # noqa: E402

PG_URL = os.environ.get("DATAFLOW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TARGET = 0.02


def open_pair(backend: str, folder: Path) -> tuple[DataFlow, DataFlow, list[str]]:
    """Two DataFlows on separate databases of one kind: with history, without; and schemas to drop."""
    if backend == "duckdb":
        urls = [f"duckdb:///{folder / 'on.duckdb'}", f"duckdb:///{folder / 'off.duckdb'}"]
        schemas: list[str] = []
    else:
        import adbc_driver_postgresql.dbapi

        schemas = [f"bench_{uuid.uuid4().hex[:10]}" for _ in range(2)]
        with adbc_driver_postgresql.dbapi.connect(PG_URL, autocommit=True) as admin, admin.cursor() as cursor:
            for schema in schemas:
                cursor.execute(f"CREATE SCHEMA {schema}")
        urls = [f"{PG_URL}?options=-csearch_path%3D{schema}" for schema in schemas]
    on, off = DataFlow(urls[0]), DataFlow(urls[1], run_history=False)
    for db in (on, off):
        db.model(type("Event", (), {"__annotations__": {"name": str, "size": int}}))
    return on, off, schemas


def drop(schemas: list[str]) -> None:
    if not schemas:
        return
    import adbc_driver_postgresql.dbapi

    with adbc_driver_postgresql.dbapi.connect(PG_URL, autocommit=True) as admin, admin.cursor() as cursor:
        for schema in schemas:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")


def measure(backend: str, nodes: int, repeats: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        on, off, schemas = open_pair(backend, Path(folder))
        try:
            runtime = LocalRuntime()
            # Node classes are resolved per DataFlow: the newest definition wins, so build each one's own.
            timings: dict[str, list[float]] = {"on": [], "off": []}
            for round_ in range(repeats + 2):
                for name, db in (("on", on), ("off", off)) if round_ % 2 else (("off", off), ("on", on)):
                    built = workflow_for(db, nodes)
                    started = time.perf_counter()
                    runtime.execute(built)
                    if round_ >= 2:  # the first two rounds warm up caches and the pool
                        timings[name].append(time.perf_counter() - started)
            with_history, without = statistics.median(timings["on"]), statistics.median(timings["off"])
            paired = statistics.median(a / b for a, b in zip(timings["on"], timings["off"], strict=True)) - 1
            assert on.runs(last=1)["nodes"][0] == nodes and off.runs().height == 0
        finally:
            on.close()
            off.close()
            drop(schemas)
    overhead = with_history / without - 1
    verdict = "ok" if overhead <= TARGET else f"MISSED (target <= {TARGET:.0%})"
    print(
        f"{backend:>8}: {nodes} nodes, median of {repeats}: with history {with_history * 1000:.1f} ms, "
        f"without {without * 1000:.1f} ms, overhead {overhead:+.1%} ({with_history / without:.3f}x) {verdict}; "
        f"median of the rounds' ratios {paired:+.1%}; load average {os.getloadavg()[0]:.1f}"
    )
    return overhead


def measure_discard(repeats: int) -> None:
    """The pool's clean return (rollback + DISCARD ALL) against a plain rollback, and a one-node run."""
    import adbc_driver_postgresql.dbapi

    from dataflow_nb.backends.postgres_pool import discard_session

    def median_of(call: object, times: int) -> float:
        samples = []
        for _ in range(times):
            started = time.perf_counter()
            call()  # type: ignore[operator]
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    times = repeats * 20
    with adbc_driver_postgresql.dbapi.connect(PG_URL) as raw:

        def rollback_after_a_query() -> None:
            with raw.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchall()
            raw.rollback()

        def discard_after_a_query() -> None:
            with raw.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchall()
            discard_session(raw)

        rollback = median_of(rollback_after_a_query, times)
        discard = median_of(discard_after_a_query, times)
    with tempfile.TemporaryDirectory() as folder:
        on, off, schemas = open_pair("postgres", Path(folder))
        try:
            built = WorkflowBuilder()
            built.add_node(off.nodes["EventCountNode"], "count", {})
            workflow, runtime = built.build(), LocalRuntime()
            one_node = median_of(lambda: runtime.execute(workflow), times)
        finally:
            on.close()
            off.close()
            drop(schemas)
    extra = discard - rollback
    print(
        f"postgres: clean return, median of {times}: query + rollback + DISCARD ALL {discard * 1e6:.0f} us, "
        f"query + rollback {rollback * 1e6:.0f} us, DISCARD ALL adds {extra * 1e6:.0f} us; a one-node run "
        f"(history off) takes {one_node * 1e6:.0f} us ({extra / one_node:+.1%} of it)"
    )


def workflow_for(db: DataFlow, nodes: int) -> object:
    """The workflow with this DataFlow's node classes (both DataFlows define a model named Event)."""
    built = WorkflowBuilder()
    for i in range(nodes // 2):
        built.add_node(db.nodes["EventCreateNode"], f"create_{i}", {"name": f"e{i}", "size": i})
    for i in range(nodes // 4):
        built.add_node(db.nodes["EventListNode"], f"list_{i}", {"filter": {"size": {"$gte": i}}, "limit": 10})
    for i in range(nodes - nodes // 2 - nodes // 4):
        built.add_node(db.nodes["EventCountNode"], f"count_{i}", {"filter": {"size": {"$lt": i}}})
    return built.build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--backends", default="duckdb,postgres")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        measure(backend, args.nodes, args.repeats)
    if "postgres" in args.backends.split(","):
        measure_discard(args.repeats)


if __name__ == "__main__":
    main()
