#!/usr/bin/env python
"""Load benchmark: many threads running small workflows on one DataFlow with a small pool.

    .venv/bin/python benchmarks/load.py                          # 16 threads x 200 runs, pool 2/2, both backends
    .venv/bin/python benchmarks/load.py --threads 4 --runs 50 --backends duckdb
    .venv/bin/python benchmarks/load.py --profile                # + cProfile of the dataflow_nb side
    .venv/bin/python benchmarks/load.py --threads 8 --runs 100 --history on   # history on only

Each run is one workflow of two nodes: ``CounterUpdateNode`` on a random one of its thread's own
rows (8 per thread: DuckDB's optimistic concurrency would fail two threads writing one row,
which is a conflict to retry, not load), then ``CounterReadNode`` of it; one transaction,
committed. The raw baseline does the same work in the same process right after: the same
UPDATE ... RETURNING and SELECT by id, then COMMIT, through the driver (ADBC on PostgreSQL, with
a queue of pool_size + overflow connections; one DuckDB cursor per run), from as many threads.
The DataFlow side runs twice per round, ``DataFlow(run_history=True)`` and ``run_history=False``
(``--history both``, the default), each in a DataFlow of its own on the same tables, in
alternating order over ``--rounds`` rounds. It prints runs/s for each, what the history costs
(1 - on / off) and the ratios to raw. The history side's time includes writing the rows still
queued when the last run ended (``db.history.flush()``): its rows are part of what it costs.

Afterwards it checks what the issue asks for: no error, no hang (every thread joins), and no
leaked connection: on PostgreSQL, ``pg_stat_activity`` (by this run's application_name) shows no
session idle in a transaction while the DataFlow is open, and none at all after ``close()``.
PostgreSQL runs in a fresh schema of the server at ``--pg-url``, dropped at the end.
"""

import argparse
import cProfile
import io
import os
import pstats
import queue
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

DEFAULT_PG_URL = os.environ.get("DATAFLOW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROWS_PER_THREAD = 8


def in_threads(threads: int, runs: int, work: Callable[[random.Random, int], None]) -> tuple[float, list[str]]:
    """Run ``work(rng, row)`` ``runs`` times on each of ``threads`` threads, each on rows of its own;
    the seconds it took and the errors seen."""
    errors: list[str] = []
    barrier = threading.Barrier(threads + 1)

    def loop(thread: int) -> None:
        rng = random.Random(thread)
        barrier.wait()
        for _ in range(runs):
            try:
                work(rng, thread * ROWS_PER_THREAD + rng.randint(1, ROWS_PER_THREAD))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in pool:
        t.join(600)
        if t.is_alive():
            errors.append("a thread did not finish within 600 s (hang)")
    return time.perf_counter() - started, errors


def dataflow_side(db: Any, threads: int, runs: int, *, profile: bool = False) -> tuple[float, list[str]]:
    from dataflow_nb import LocalRuntime, WorkflowBuilder

    runtime = LocalRuntime()
    update, read = db.nodes["CounterUpdateNode"], db.nodes["CounterReadNode"]

    def work(rng: random.Random, row: int) -> None:
        workflow = WorkflowBuilder()
        workflow.add_node(update, "bump", {"id": row, "n": rng.randint(0, 1000)})
        workflow.add_node(read, "read", {"id": row})
        runtime.execute(workflow.build())

    if profile:  # cProfile sees one thread: profile the same runs one after another, in this one
        profiled(lambda: [work(random.Random(0), 1) for _ in range(runs)])
    return in_threads(threads, runs, work)


def raw_postgres(url: str, table: str, threads: int, runs: int, connections: int) -> tuple[float, list[str]]:
    import adbc_driver_postgresql.dbapi

    free: queue.Queue[Any] = queue.Queue()
    for _ in range(connections):
        free.put(adbc_driver_postgresql.dbapi.connect(url))
    update = f"UPDATE {table} SET n = $1, updated_at = now() WHERE id = $2 RETURNING *"
    select = f"SELECT * FROM {table} WHERE id = $1"

    def work(rng: random.Random, row: int) -> None:
        import pyarrow as pa

        connection = free.get()
        try:
            with connection.cursor() as cursor:
                cursor.execute(update, pa.record_batch([pa.array([rng.randint(0, 1000)]), pa.array([row])], ["a", "b"]))
                cursor.fetch_arrow_table()
                cursor.execute(select, pa.record_batch([pa.array([row])], ["a"]))
                cursor.fetch_arrow_table()
            connection.commit()
        except Exception:
            connection.rollback()
            raise
        finally:
            free.put(connection)

    try:
        return in_threads(threads, runs, work)
    finally:
        while not free.empty():
            free.get().close()


def raw_duckdb(database: Any, table: str, threads: int, runs: int) -> tuple[float, list[str]]:
    lock = threading.Lock()
    update = f"UPDATE {table} SET n = $1, updated_at = now() WHERE id = $2 RETURNING *"
    select = f"SELECT * FROM {table} WHERE id = $1"

    def work(rng: random.Random, row: int) -> None:
        with lock:
            cursor = database.cursor()
        try:
            cursor.execute("BEGIN TRANSACTION")
            cursor.sql(update, params=[rng.randint(0, 1000), row]).to_arrow_table()
            cursor.sql(select, params=[row]).to_arrow_table()
            cursor.execute("COMMIT")
        except Exception:
            cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()

    return in_threads(threads, runs, work)


def sessions(admin_url: str, application: str) -> list[tuple[Any, ...]]:
    import adbc_driver_postgresql.dbapi

    with adbc_driver_postgresql.dbapi.connect(admin_url, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT pid, state FROM pg_stat_activity WHERE application_name = '{application}'")
        return [tuple(r) for r in cursor.fetchall()]


def define(db: Any) -> str:
    @db.model
    class Counter:
        key: str
        n: int

    return str(db.models["Counter"].table_name)


def setup(db: Any, rows: int) -> str:
    import polars as pl

    from dataflow_nb import LocalRuntime, WorkflowBuilder

    table = define(db)
    workflow = WorkflowBuilder()
    frame = pl.DataFrame({"key": [f"k{i}" for i in range(rows)], "n": [0] * rows})
    workflow.add_node("CounterBulkCreateNode", "load", {"data": frame})
    LocalRuntime().execute(workflow.build())
    return table


def history_modes(args: argparse.Namespace) -> list[bool]:
    """The order of the DataFlow sides: history on and off alternate over the rounds (neither
    always goes first, when the machine is warmer or busier)."""
    modes = {"both": [True, False], "on": [True], "off": [False]}[args.history]
    order: list[bool] = []
    for round_ in range(args.rounds):
        order += modes if round_ % 2 == 0 else modes[::-1]
    return order


def dataflow_rounds(url: str, backend: str, args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Each DataFlow side in its own ``DataFlow`` (opened, timed, checked, closed), history on and off
    alternating; seconds and errors summed per side."""
    from dataflow_nb import DataFlow

    pool = {"pool_size": args.pool_size, "pool_max_overflow": args.pool_overflow}
    application = report.get("application")
    for history in history_modes(args):
        side = "on" if history else "off"
        db = DataFlow(url, run_history=history, **pool)
        try:
            define(db)
            seconds, errors = dataflow_side(db, args.threads, args.runs, profile=args.profile and history)
            flush = getattr(db.history, "flush", None)
            if flush is not None:  # the rows still queued are part of what the history costs: timed
                began = time.perf_counter()
                flush()
                seconds += time.perf_counter() - began
            seconds_so_far, errors_so_far = report.get(side, (0.0, []))
            report[side] = (seconds_so_far + seconds, errors_so_far + errors)
            report.setdefault("runs_of", {})[side] = report.get("runs_of", {}).get(side, 0) + args.threads * args.runs
            if application is not None:
                open_sessions = sessions(args.pg_url, application)
                report["sessions_open"] = max(report.get("sessions_open", 0), len(open_sessions))
                idle = sum(1 for _, state in open_sessions if "transaction" in str(state))
                report["idle_in_transaction"] = report.get("idle_in_transaction", 0) + idle
                report["checked_out"] = report.get("checked_out", 0) + db.backend._pool.checkedout()  # type: ignore[attr-defined]
        finally:
            db.close()
        if application is not None:
            report["sessions_after_close"] = report.get("sessions_after_close", 0) + len(
                sessions(args.pg_url, application)
            )


def bench(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    from dataflow_nb import DataFlow

    threads, runs = args.threads, args.runs
    report: dict[str, Any] = {"backend": backend}
    if backend == "duckdb":
        import tempfile

        folder = tempfile.mkdtemp(prefix="dataflow-load-")
        url = f"duckdb:///{folder}/load.duckdb"
        with DataFlow(url) as db:
            table = setup(db, threads * ROWS_PER_THREAD)
        dataflow_rounds(url, backend, args, report)
        import duckdb

        with duckdb.connect(f"{folder}/load.duckdb") as database:
            report["raw"] = raw_duckdb(database, table, threads, runs)
        return report
    import adbc_driver_postgresql.dbapi

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    application = f"dataflow_load_{uuid.uuid4().hex[:8]}"
    admin = adbc_driver_postgresql.dbapi.connect(args.pg_url, autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
    url = f"{args.pg_url}?options=-csearch_path%3D{schema}&application_name={application}"
    try:
        with DataFlow(url) as db:
            table = setup(db, threads * ROWS_PER_THREAD)
        report["application"] = application
        dataflow_rounds(url, backend, args, report)
        raw_url = f"{args.pg_url}?options=-csearch_path%3D{schema}"
        report["raw"] = raw_postgres(raw_url, table, threads, runs, args.pool_size + args.pool_overflow)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
    return report


def profiled(call: Callable[[], Any]) -> Any:
    profile = cProfile.Profile()
    result = profile.runcall(call)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(os.environ.get("LOAD_SORT", "tottime")).print_stats(35)
    print(out.getvalue())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--runs", type=int, default=200, help="runs per thread")
    parser.add_argument("--pool-size", type=int, default=2)
    parser.add_argument("--pool-overflow", type=int, default=2)
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument(
        "--history", choices=("both", "on", "off"), default="both", help="DataFlow sides: run_history on, off or both"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each DataFlow side (orders alternate)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    total = args.threads * args.runs
    print(
        f"{args.threads} threads x {args.runs} runs = {total} runs, pool {args.pool_size}/{args.pool_overflow}, "
        f"{args.rounds} round(s) of each DataFlow side; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'backend':10} {'history on':>11} {'history off':>12} {'history cost':>13} {'raw runs/s':>11} "
        f"{'on/raw':>7} {'off/raw':>8} {'errors':>7}  checks"
    )
    failed = False
    for backend in args.backends.split(","):
        report = bench(backend.strip(), args)
        raw_seconds, raw_errors = report["raw"]
        raw_rate = total / raw_seconds
        rates = {side: report["runs_of"][side] / report[side][0] for side in ("on", "off") if side in report}
        errors = [e for side in ("on", "off") if side in report for e in report[side][1]]
        checks = []
        if "sessions_open" in report:
            checks.append(
                f"sessions while open <= {report['sessions_open']} (idle in transaction "
                f"{report['idle_in_transaction']}), checked out {report['checked_out']}, "
                f"after close {report['sessions_after_close']}"
            )
            failed |= bool(report["idle_in_transaction"] or report["checked_out"] or report["sessions_after_close"])
            failed |= report["sessions_open"] > args.pool_size + args.pool_overflow

        shown = {side: f"{rate:.1f}" for side, rate in rates.items()}
        ratio = {side: f"{rate / raw_rate:.2f}" for side, rate in rates.items()}
        cost = f"{1 - rates['on'] / rates['off']:+.1%}" if len(rates) == 2 else "-"
        print(
            f"{backend:10} {shown.get('on', '-'):>11} {shown.get('off', '-'):>12} {cost:>13} {raw_rate:11.1f} "
            f"{ratio.get('on', '-'):>7} {ratio.get('off', '-'):>8} {len(errors):7d}  " + "; ".join(checks)
        )
        for error in sorted(set(errors + raw_errors))[:5]:
            print(f"    error: {error}")
        failed |= bool(errors)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
