#!/usr/bin/env python
"""Core benchmark: dataflow_nb nodes against the raw driver, on DuckDB and PostgreSQL.

    .venv/bin/python benchmarks/core.py                # both backends, default sizes
    .venv/bin/python benchmarks/core.py --backends duckdb --rows 100000 --creates 100
    .venv/bin/python benchmarks/core.py --profile      # + cProfile of a create and a List run

Measures, per backend:

1. ``create``: one workflow of ``--creates`` ReadingCreateNode nodes, one run (only
   ``LocalRuntime().execute`` is timed; building the workflow is reported separately), against
   a raw parametrised INSERT loop of the same rows on one connection in one transaction.
2. ``list``: ReadingListNode over ``--rows`` rows (default order by id) into polars, against
   the raw driver running the same SELECT into polars; time in this process, peak RSS in a
   fresh child process per method (``--child``).

PostgreSQL runs in a fresh schema (``search_path`` through the URL) that is dropped at the end,
even on error; DuckDB runs in a temporary file (the RSS children must open the same database).
Misses against the targets are reported, not fatal: the script exits 0 when every measurement ran.
"""

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import peak_rss_mb as vm_hwm_mb  # noqa: E402 - after the path is set

DEFAULT_PG_URL = os.environ.get("DATAFLOW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CHILD_URL_VARIABLE = "DATAFLOW_BENCH_CHILD_URL"
CREATE_REPEATS = 5
LIST_REPEATS = 3
NODE_KINDS = ("read", "update", "count", "delete")  # measured like create, Delete last (it uses the rows up)
TARGETS = {  # (measure, backend) -> (comparison, bound); issue 24: one node <= 1.3x raw ADBC, <= 2x raw DuckDB
    **{(kind, "duckdb"): ("<=", 2.0) for kind in ("create", *NODE_KINDS)},
    **{(kind, "postgres"): ("<=", 1.3) for kind in ("create", *NODE_KINDS)},
    ("list", "duckdb"): (">=", 0.85),
    ("list", "postgres"): (">=", 0.85),
}
COLUMNS = ("sensor", "value", "count", "ok", "taken_at")
ALL_COLUMNS = ("id", *COLUMNS, "created_at", "updated_at")
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- helpers


def define_models(db: Any) -> None:
    """Reading (the node side) and RawReading (same DDL, written by the raw loop)."""

    @db.model
    class Reading:
        sensor: str
        value: float
        count: int
        ok: bool
        taken_at: datetime

    @db.model
    class RawReading:
        sensor: str
        value: float
        count: int
        ok: bool
        taken_at: datetime


def record(i: int) -> dict[str, Any]:
    return {
        "sensor": f"sensor-{i % 100}",
        "value": i * 0.5,
        "count": i,
        "ok": i % 2 == 0,
        "taken_at": BASE_TIME + timedelta(seconds=i),
    }


def select_sql(table: str) -> str:
    """The raw List query: the same columns, in the same order, as ReadingListNode selects."""
    columns = ", ".join(f"{table}.{c}" for c in ALL_COLUMNS)
    return f"SELECT {columns} FROM {table} ORDER BY {table}.id"


def load_sql(backend: str, table: str, rows: int) -> str:
    source = f"range({rows}) AS t(i)" if backend == "duckdb" else f"generate_series(0, {rows - 1}) AS t(i)"
    return (
        f"INSERT INTO {table} (sensor, value, count, ok, taken_at) "
        f"SELECT 'sensor-' || (i % 100), i * 0.5, i, i % 2 = 0, "
        f"TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '1 second' FROM {source}"
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def human(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def timed(func: Any) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    result = func()
    return time.perf_counter() - started, result


def log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- raw drivers


class RawPostgres:
    """One adbc_driver_postgresql.dbapi connection (autocommit off: one transaction per loop)."""

    def __init__(self, url: str):
        import adbc_driver_postgresql.dbapi

        self.connection = adbc_driver_postgresql.dbapi.connect(url)
        self.cursor = self.connection.cursor()

    def insert_loop(self, sql: str, rows: list[list[Any]]) -> None:
        cursor = self.cursor
        for params in rows:
            cursor.execute(sql, params)
        self.connection.commit()

    def insert_returning_loop(self, sql: str, rows: list[list[Any]]) -> None:
        import polars as pl

        cursor = self.cursor
        for params in rows:
            cursor.execute(sql, params)
            pl.from_arrow(cursor.fetch_arrow_table())
        self.connection.commit()

    def query_loop(self, sql: str, rows: list[list[Any]]) -> None:
        """Each statement's rows fetched as Arrow (what a node gets from the driver), one transaction."""
        cursor = self.cursor
        for params in rows:
            cursor.execute(sql, params)
            cursor.fetch_arrow_table()
        self.connection.commit()

    def ids(self, table: str, count: int) -> list[int]:
        self.cursor.execute(f"SELECT id FROM {table} ORDER BY id LIMIT {count}")
        found = [int(row[0]) for row in self.cursor.fetchall()]
        self.connection.commit()
        return found

    def select(self, sql: str) -> Any:
        import polars as pl

        self.cursor.execute(sql)
        frame = pl.from_arrow(self.cursor.fetch_arrow_table())
        self.connection.commit()
        return frame

    def run(self, sql: str) -> None:
        self.cursor.execute(sql)
        self.connection.commit()

    def close(self) -> None:
        self.cursor.close()
        self.connection.close()


class RawDuckDB:
    """A duckdb connection to the same database file (DuckDB shares the instance in-process)."""

    def __init__(self, path: str):
        import duckdb

        self.connection = duckdb.connect(path)
        self.connection.execute("SET TimeZone = 'UTC'")

    def insert_loop(self, sql: str, rows: list[list[Any]]) -> None:
        con = self.connection
        con.execute("BEGIN TRANSACTION")
        for params in rows:
            con.execute(sql, params)
        con.execute("COMMIT")

    def insert_returning_loop(self, sql: str, rows: list[list[Any]]) -> None:
        import polars as pl

        con = self.connection
        con.execute("BEGIN TRANSACTION")
        for params in rows:
            pl.from_arrow(con.sql(sql, params=params).to_arrow_table())
        con.execute("COMMIT")

    def query_loop(self, sql: str, rows: list[list[Any]]) -> None:
        con = self.connection
        con.execute("BEGIN TRANSACTION")
        for params in rows:
            con.sql(sql, params=params).to_arrow_table()
        con.execute("COMMIT")

    def ids(self, table: str, count: int) -> list[int]:
        found = self.connection.execute(f"SELECT id FROM {table} ORDER BY id LIMIT {count}").fetchall()
        return [int(row[0]) for row in found]

    def select(self, sql: str) -> Any:
        import polars as pl

        return pl.from_arrow(self.connection.sql(sql).to_arrow_table())

    def run(self, sql: str) -> None:
        self.connection.execute(sql)

    def close(self) -> None:
        self.connection.close()


def open_raw(backend: str, url: str) -> Any:
    if backend == "postgres":
        return RawPostgres(url)
    return RawDuckDB(duckdb_path(url))


def duckdb_path(url: str) -> str:
    return url.split("://", 1)[1][1:]


# --------------------------------------------------------------------------- measurements


def build_create_workflow(n: int, offset: int) -> tuple[float, Any]:
    from dataflow_nb import WorkflowBuilder

    def build() -> Any:
        wf = WorkflowBuilder()
        for i in range(n):
            wf.add_node("ReadingCreateNode", f"c{i}", record(offset + i))
        return wf.build()

    return timed(build)


def bench_create(backend: str, raw: Any, n: int, repeats: int, profile: bool) -> dict[str, Any]:
    from dataflow_nb import LocalRuntime

    runtime = LocalRuntime()
    node_times, build_times, raw_times, raw_ret_times, raw_utc_times = [], [], [], [], []
    columns = ", ".join(COLUMNS)
    placeholders = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
    insert = f"INSERT INTO raw_readings ({columns}) VALUES ({placeholders})"
    returning = f"{insert} RETURNING *"
    # For reference, not the target: ADBC binds a zoned timestamp only after reading and setting the
    # session's time zone (and sets it back after), three more round trips; the backend binds it as
    # UTC wall-clock time instead. This is the raw loop doing the same.
    at = len(COLUMNS)
    utc_insert = insert.replace(f"${at})", f"(${at}::TIMESTAMP AT TIME ZONE 'UTC'))")
    for repeat in range(repeats + 1):  # repeat 0 warms up
        build_s, workflow = build_create_workflow(n, repeat * n)
        node_s, (results, _) = timed(lambda wf=workflow: runtime.execute(wf))
        assert results[f"c{n - 1}"].height == 1
        rows = [[record(repeat * n + i)[c] for c in COLUMNS] for i in range(n)]
        raw_s, _ = timed(lambda rows=rows: raw.insert_loop(insert, rows))
        raw_ret_s, _ = timed(lambda rows=rows: raw.insert_returning_loop(returning, rows))
        if backend == "postgres":
            naive = [[*row[:-1], row[-1].astimezone(UTC).replace(tzinfo=None)] for row in rows]
            raw_utc_s, _ = timed(lambda rows=naive: raw.insert_loop(utc_insert, rows))
            if repeat:
                raw_utc_times.append(raw_utc_s)
        if repeat:
            node_times.append(node_s)
            build_times.append(build_s)
            raw_times.append(raw_s)
            raw_ret_times.append(raw_ret_s)
    out = {
        "node_us": statistics.median(node_times) / n * 1e6,
        "build_us": statistics.median(build_times) / n * 1e6,
        "raw_us": statistics.median(raw_times) / n * 1e6,
        "raw_returning_us": statistics.median(raw_ret_times) / n * 1e6,
    }
    out["ratio"] = out["node_us"] / out["raw_us"]
    if raw_utc_times:
        out["raw_utc_us"] = statistics.median(raw_utc_times) / n * 1e6
    log(
        f"  create x{n}: node {out['node_us']:.1f} µs/row (runs: "
        f"{', '.join(f'{t / n * 1e6:.0f}' for t in node_times)}), "
        f"build {out['build_us']:.1f} µs/node, raw INSERT {out['raw_us']:.1f} µs/row, "
        f"raw INSERT..RETURNING * -> polars {out['raw_returning_us']:.1f} µs/row, "
        + (f"raw INSERT, timestamp as UTC wall-clock {out['raw_utc_us']:.1f} µs/row, " if raw_utc_times else "")
        + f"ratio {out['ratio']:.2f}"
    )
    if profile:
        _, workflow = build_create_workflow(n, 10_000_000)
        profile_run(f"one {n}-node create run ({backend})", lambda: runtime.execute(workflow))
    return out


NODE_SQL = {  # what the raw loop runs for each node kind, on raw_readings (rows from the create benchmark)
    "read": "SELECT {columns} FROM raw_readings WHERE id = $1",
    "update": "UPDATE raw_readings SET value = $1, updated_at = now() WHERE id = $2 RETURNING {columns}",
    "delete": "DELETE FROM raw_readings WHERE id = $1 RETURNING {columns}",
    "count": "SELECT count(*) AS count FROM raw_readings WHERE id = $1",
}


def node_params(kind: str, record: int) -> dict[str, Any]:
    if kind == "update":
        return {"id": record, "value": record * 0.25}
    if kind == "count":
        return {"filter": {"id": record}}
    return {"id": record}


def raw_params(kind: str, record: int) -> list[Any]:
    return [record * 0.25, record] if kind == "update" else [record]


def bench_nodes(backend: str, raw: Any, n: int, repeats: int) -> dict[str, dict[str, float]]:
    """Read, Update, Delete and Count as create is measured: one run of ``n`` such nodes, each on a
    row of its own, against the raw driver's loop of the same statement (rows fetched as Arrow) in
    one transaction, on the rows the create benchmark wrote (``(repeats + 1) * n`` on each side,
    enough for Delete to take fresh ones each repeat)."""
    from dataflow_nb import LocalRuntime, WorkflowBuilder

    runtime = LocalRuntime()
    columns = ", ".join(ALL_COLUMNS)
    out: dict[str, dict[str, float]] = {}
    for kind in NODE_KINDS:
        node_times, raw_times = [], []
        sql = NODE_SQL[kind].format(columns=columns)
        for repeat in range(repeats + 1):  # repeat 0 warms up
            node_ids, raw_ids = raw.ids("readings", n), raw.ids("raw_readings", n)  # a Delete's are gone after it
            if len(node_ids) < n or len(raw_ids) < n:
                raise RuntimeError(f"{kind}: not enough rows ({len(node_ids)}, {len(raw_ids)}) for {n} nodes")
            workflow = WorkflowBuilder()
            for i, record in enumerate(node_ids):
                workflow.add_node(f"Reading{kind.capitalize()}Node", f"n{i}", node_params(kind, record))
            built = workflow.build()
            node_s, (results, _) = timed(lambda wf=built: runtime.execute(wf))
            last = results[f"n{n - 1}"]
            assert last == 1 if kind == "count" else last.height == 1
            rows = [raw_params(kind, record) for record in raw_ids]
            raw_s, _ = timed(lambda rows=rows, sql=sql: raw.query_loop(sql, rows))
            if repeat:
                node_times.append(node_s)
                raw_times.append(raw_s)
        node_us = statistics.median(node_times) / n * 1e6
        raw_us = statistics.median(raw_times) / n * 1e6
        out[kind] = {"node_us": node_us, "raw_us": raw_us, "ratio": node_us / raw_us}
        log(
            f"  {kind} x{n}: node {node_us:.1f} µs/node (runs: {', '.join(f'{t / n * 1e6:.0f}' for t in node_times)}), "
            f"raw {raw_us:.1f} µs/statement, ratio {node_us / raw_us:.2f}"
        )
    return out


def profile_run(what: str, func: Any, top: int = 30) -> None:
    """cProfile ``func`` once and print the ``top`` entries by cumulative time."""
    gc.collect()
    profiler = cProfile.Profile()
    profiler.enable()
    func()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    log(f"  cProfile of {what}, top {top} by cumulative time:")
    log("\n".join("    " + line for line in text.getvalue().splitlines() if line.strip()))


def list_workflow() -> Any:
    from dataflow_nb import WorkflowBuilder

    wf = WorkflowBuilder()
    wf.add_node("ReadingListNode", "all", {"limit": None})
    return wf.build()


def bench_list(backend: str, raw: Any, rows: int, profile: bool) -> dict[str, Any]:
    from dataflow_nb import LocalRuntime

    runtime = LocalRuntime()
    workflow = list_workflow()
    sql = select_sql("readings")
    node_times, raw_times = [], []
    node_frame = raw_frame = None
    for repeat in range(LIST_REPEATS + 1):  # repeat 0 warms up
        node_frame = raw_frame = None
        node_s, (results, _) = timed(lambda: runtime.execute(workflow))
        node_frame = results.pop("all")
        del results
        raw_s, raw_frame = timed(lambda: raw.select(sql))
        if repeat:
            node_times.append(node_s)
            raw_times.append(raw_s)
    assert node_frame is not None and raw_frame is not None
    if node_frame.height != rows or raw_frame.height != rows:
        raise RuntimeError(f"list returned {node_frame.height} (node) / {raw_frame.height} (raw) rows, expected {rows}")
    if node_frame.columns != raw_frame.columns or not node_frame["id"].equals(raw_frame["id"]):
        raise RuntimeError(f"node and raw frames differ: {node_frame.columns} vs {raw_frame.columns}")
    differ = {
        c: (str(node_frame[c].dtype), str(raw_frame[c].dtype))
        for c in node_frame.columns
        if node_frame[c].dtype != raw_frame[c].dtype
    }
    out = {"node_s": statistics.median(node_times), "raw_s": statistics.median(raw_times)}
    out["node_rps"] = rows / out["node_s"]
    out["raw_rps"] = rows / out["raw_s"]
    out["ratio"] = out["node_rps"] / out["raw_rps"]
    log(
        f"  list {human(rows)}: node {out['node_s']:.3f} s "
        f"(runs: {', '.join(f'{t:.3f}' for t in node_times)}), "
        f"raw {out['raw_s']:.3f} s (runs: {', '.join(f'{t:.3f}' for t in raw_times)}), "
        f"throughput ratio {out['ratio']:.2f}"
    )
    if differ:
        log(f"  note: dtypes differ between node and raw frames (node, raw): {differ}")
    if profile:
        del node_frame, raw_frame
        profile_run(f"one List of {human(rows)} rows ({backend})", lambda: runtime.execute(workflow), top=20)
    return out


def load_rows(backend: str, raw: Any, rows: int, admin: Any, schema: str | None) -> float:
    """Replace the create benchmark's rows with ``rows`` generated ones."""
    started = time.perf_counter()
    if backend == "postgres":
        with admin.cursor() as cursor:  # autocommit: TRUNCATE, load, then VACUUM ANALYZE
            cursor.execute(f"TRUNCATE {schema}.readings")
            cursor.execute(load_sql(backend, f"{schema}.readings", rows))
            cursor.execute(f"VACUUM ANALYZE {schema}.readings")
    else:
        raw.run("DELETE FROM readings")
        raw.run(load_sql(backend, "readings", rows))
        raw.run("CHECKPOINT")
    return time.perf_counter() - started


def child_rss(method: str, backend: str, url: str, rows: int) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        method,
        "--backend",
        backend,
        "--rows",
        str(rows),
    ]
    # The URL travels in the environment, so a password in it stays out of the process list.
    env = {**os.environ, CHILD_URL_VARIABLE: url}
    # Our own interpreter and script, arguments from this run: nothing untrusted is executed.
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"child {method} ({backend}) failed with exit {done.returncode}:\n{done.stderr.strip()}")
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return measured


def run_child(method: str, backend: str, url: str, rows: int) -> int:
    """Run the measurement in a forked grandchild, whose ``ru_maxrss`` is its own.

    Linux carries the parent's peak RSS into ``ru_maxrss`` across (v)fork + exec, so the child
    of this (large) benchmark process would report the parent's peak; a process forked here,
    before anything is imported, starts from this small interpreter's RSS instead.
    """
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            die_with_parent()
            measure_child(method, backend, url, rows)
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies, so a killed run leaves no reader behind."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def measure_child(method: str, backend: str, url: str, rows: int) -> None:
    """One List in a fresh process; print its peak RSS (and the RSS before the query) as JSON."""
    if method == "list-node":
        from dataflow_nb import DataFlow, LocalRuntime

        db = DataFlow(url)
        define_models(db)
        workflow = list_workflow()
        runtime = LocalRuntime()
        gc.collect()
        before = peak_rss_mb()
        started = time.perf_counter()
        results, _ = runtime.execute(workflow)
        seconds = time.perf_counter() - started
        height = results["all"].height
    elif method == "list-raw":
        import polars as pl  # noqa: F401  (imported before the baseline, as the node child does)

        raw = open_raw(backend, url)
        gc.collect()
        before = peak_rss_mb()
        started = time.perf_counter()
        frame = raw.select(select_sql("readings"))
        seconds = time.perf_counter() - started
        height = frame.height
    else:
        raise SystemExit(f"unknown child method {method!r}")
    peak = peak_rss_mb()
    if height != rows:
        raise RuntimeError(f"child {method}: {height} rows, expected {rows}")
    print(
        json.dumps(
            {
                "before_mb": before,
                "peak_mb": peak,
                "vm_hwm_mb": vm_hwm_mb(),
                "seconds": seconds,
                "rows": height,
            }
        )
    )


# --------------------------------------------------------------------------- per backend


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    from dataflow_nb import DataFlow

    log(f"== {backend}")
    admin = schema = tmpdir = db = raw = None
    try:
        if backend == "postgres":
            import adbc_driver_postgresql.dbapi

            admin = adbc_driver_postgresql.dbapi.connect(args.pg_url, autocommit=True)
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            with admin.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA {schema}")
            separator = "&" if "?" in args.pg_url else "?"
            url = f"{args.pg_url}{separator}options=-csearch_path%3D{schema}"
            log(f"  schema {schema}")
        else:
            tmpdir = tempfile.mkdtemp(prefix="dataflow_nb_bench_")
            url = f"duckdb:///{tmpdir}/bench.duckdb"
        db = DataFlow(url)
        define_models(db)
        raw = open_raw(backend, url)
        result: dict[str, Any] = {"create": bench_create(backend, raw, args.creates, args.repeats, args.profile)}
        result["nodes"] = bench_nodes(backend, raw, args.creates, args.repeats)  # on the rows the creates wrote
        load_s = load_rows(backend, raw, args.rows, admin, schema)
        log(f"  loaded {args.rows:,} rows in {load_s:.1f} s")
        result["list"] = bench_list(backend, raw, args.rows, args.profile)
        # The children open the same database: DuckDB allows one process per file.
        raw.close()
        raw = None
        db.close()
        db = None
        rss = {m: child_rss(m, backend, url, args.rows) for m in ("list-node", "list-raw")}
        result["rss"] = rss
        for method, r in rss.items():
            log(
                f"  {method} child: peak RSS {r['peak_mb']:.0f} MB "
                f"(ru_maxrss; VmHWM {r['vm_hwm_mb'] or 0:.0f} MB), "
                f"{r['before_mb']:.0f} MB before the query, query {r['seconds']:.3f} s"
            )
        return result
    finally:
        for closable in (raw, db):
            if closable is not None:
                try:
                    closable.close()
                except Exception as exc:  # cleanup goes on; the first error is the one raised
                    log(f"  warning: close failed: {exc}")
        if admin is not None:
            try:
                if schema is not None:
                    with admin.cursor() as cursor:
                        cursor.execute("SET lock_timeout = '10s'")
                        cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                    log(f"  dropped schema {schema}")
            finally:
                admin.close()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


# --------------------------------------------------------------------------- report


def status(measure: str, backend: str, ratio: float) -> tuple[str, str]:
    target = TARGETS.get((measure, backend))
    if target is None:
        return "-", ""
    op, bound = target
    ok = ratio <= bound if op == "<=" else ratio >= bound
    return f"{op} {bound}", "ok" if ok else "MISS"


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    size = human(args.rows)
    lines: list[tuple[str, str, str, str, str, str, str]] = []
    for backend, r in results.items():
        c, li, rss = r["create"], r["list"], r["rss"]
        lines.append(
            (
                backend,
                "create (µs/row)",
                f"{c['node_us']:.1f}",
                f"{c['raw_us']:.1f}",
                f"{c['ratio']:.3f}",
                *status("create", backend, c["ratio"]),
            )
        )
        lines.append((backend, "create build (µs/node)", f"{c['build_us']:.1f}", "-", "-", "-", ""))
        for kind, k in r["nodes"].items():
            lines.append(
                (
                    backend,
                    f"{kind} (µs/node)",
                    f"{k['node_us']:.1f}",
                    f"{k['raw_us']:.1f}",
                    f"{k['ratio']:.3f}",
                    *status(kind, backend, k["ratio"]),
                )
            )
        lines.append(
            (
                backend,
                f"list {size} (rows/s)",
                f"{li['node_rps']:,.0f}",
                f"{li['raw_rps']:,.0f}",
                f"{li['ratio']:.3f}",
                *status("list", backend, li["ratio"]),
            )
        )
        lines.append(
            (
                backend,
                f"list {size} (s)",
                f"{li['node_s']:.3f}",
                f"{li['raw_s']:.3f}",
                f"{li['node_s'] / li['raw_s']:.2f}",
                "-",
                "",
            )
        )
        node, raw = rss["list-node"], rss["list-raw"]
        lines.append(
            (
                backend,
                f"list {size} peak RSS (MB)",
                f"{node['peak_mb']:.0f}",
                f"{raw['peak_mb']:.0f}",
                f"{node['peak_mb'] / raw['peak_mb']:.2f}",
                "-",
                "",
            )
        )
        node_delta, raw_delta = (
            node["peak_mb"] - node["before_mb"],
            raw["peak_mb"] - raw["before_mb"],
        )
        lines.append(
            (
                backend,
                f"list {size} RSS growth (MB)",
                f"{node_delta:.0f}",
                f"{raw_delta:.0f}",
                f"{node_delta / raw_delta:.2f}" if raw_delta > 0 else "-",
                "-",
                "",
            )
        )
    header = ("backend", "measure", "dataflow_nb", "raw", "ratio", "target", "")
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    print()
    print(
        f"creates={args.creates} rows={args.rows:,} repeats: create median of {args.repeats}, "
        f"list median of {LIST_REPEATS} (after one warm-up); ratio = dataflow_nb / raw "
        "(for rows/s: node throughput / raw throughput)"
    )
    for row in [header, *lines]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the List benchmark")
    parser.add_argument("--creates", type=int, default=200, help="CreateNode nodes in the create workflow")
    parser.add_argument("--backends", default="duckdb,postgres", help="comma-separated: duckdb,postgres")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (a schema is created in it)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=CREATE_REPEATS,
        help="timed create runs (median reported), after one warm-up",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile one create run and one List run per backend (after the timings)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_child(args.child, args.backend, os.environ[CHILD_URL_VARIABLE], args.rows)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"duckdb", "postgres"}
    if unknown or not backends:
        parser.error(f"--backends takes duckdb and/or postgres, got {args.backends!r}")
    if args.rows < 1 or args.creates < 1 or args.repeats < 1:
        parser.error("--rows, --creates and --repeats must be positive")

    signal.signal(signal.SIGTERM, terminate)
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for backend in backends:
        try:
            results[backend] = run_backend(backend, args)
        except Exception:
            import traceback

            traceback.print_exc()
            failed.append(backend)
    if results:
        report(results, args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if failed:
        print(f"FAILED: {', '.join(failed)} (see the traceback above)", file=sys.stderr)
        return 1
    return 0


def terminate(signum: int, frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C, so the ``finally`` blocks still drop the schema."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
