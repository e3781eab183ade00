#!/usr/bin/env python
"""Bulk benchmark: BulkCreateNode / BulkUpsertNode against the fastest raw ways to load a table.

    .venv/bin/python benchmarks/bulk.py                          # 200k then 2M rows, both backends (~5 min)
    .venv/bin/python benchmarks/bulk.py --rows 200000            # one size, quick
    .venv/bin/python benchmarks/bulk.py --methods node-parquet,adbc --repeats 3
    .venv/bin/python benchmarks/bulk.py --batch-sweep            # node-parquet at 50k/100k/250k rows a batch
    .venv/bin/python benchmarks/bulk.py --scale-check --repeats 1  # peak RSS of the loads at 2M and 8M (~6 min)
    .venv/bin/python benchmarks/bulk.py --profile                # + cProfile of the node children

A generated table (``--rows`` rows: int, two strings, int32, bool, UTC timestamp, float and a
nullable string) is written once as Parquet and CSV into ``benchmarks/data/`` (reused when
present). Every method then loads it in its own freshly exec'd interpreter, so its peak RSS
(``VmHWM`` from ``/proc/self/status``, which exec resets) is its own; the time is the load
alone (imports, connecting and defining the model happen before the clock starts), including
the commit. Between methods the table is emptied (PostgreSQL: ``TRUNCATE`` + ``CHECKPOINT``;
DuckDB: a fresh database file per method). After each load the parent counts the rows and
fingerprints the data columns, so every method is checked to have written the same table.

PostgreSQL runs in a fresh schema (``search_path`` through the URL), dropped at the end even on
error; DuckDB in a temporary directory, deleted at the end. Missed targets are reported, not
fatal: the script exits 0 when every measurement ran, 1 when one failed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import io
import json
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import peak_rss_mb  # noqa: E402 - after the path is set

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_PG_URL = os.environ.get("DATAFLOW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CHILD_URL_VARIABLE = "DATAFLOW_BENCH_CHILD_URL"
DEFAULT_BATCH_SIZE = 50_000
SWEEP_BATCH_SIZES = (50_000, 100_000, 250_000)
SCALE_ROWS = (2_000_000, 8_000_000)
DEFAULT_SIZES = (200_000, 2_000_000)
ROW_GROUP = 100_000  # rows per Parquet row group in the generated file (also the generator's chunk)
UPSERT_ROWS = 200_000  # half of them conflict with rows loaded before the upsert
PANDAS_ROWS = 20_000  # pandas to_sql(method="multi") runs on this slice; its rate is extrapolated
PANDAS_CHUNK = 1_000  # rows per multi-row INSERT (8 columns: 8,000 parameters, under PostgreSQL's 65,535)
CHILD_TIMEOUT = 3600
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)

TABLE = "flights"
UPSERT_TABLE = "upsert_flights"
# The data columns, in file order. The model declares delay_min as int (BIGINT: dataflow_nb maps
# every Python int to BIGINT), so the raw methods cast the file's int32 to int64 to match.
COLUMNS = ("flight_no", "code", "carrier", "delay_min", "cancelled", "departed_at", "distance_km", "note")
CARRIERS = ("AA", "DL", "UA", "WN", "B6", "AS", "NK", "F9", "LH", "AF", "BA", "KL")
NOTES = ("gate change", "crew swap", "weather hold", "de-icing", "late inbound aircraft")


@dataclass(frozen=True)
class Method:
    name: str
    backend: str
    what: str  # shown in the table
    baseline: str | None  # the raw method this one's ratio is against
    target: float | None = None  # throughput ratio to reach against the baseline
    kind: str = "create"  # create | upsert
    extrapolated: bool = False
    default: bool = True  # run without --methods naming it


METHODS: tuple[Method, ...] = (
    Method("adbc", "postgres", "raw adbc_ingest, streamed Parquet", None),
    # The same with pyarrow's default ParquetFile(pre_buffer=True): only when --methods names it.
    Method("adbc-prebuffer", "postgres", "raw adbc_ingest, pre_buffer=True", "adbc", default=False),
    Method("node-parquet", "postgres", "BulkCreateNode, Parquet", "adbc", 1.0),
    Method("node-csv", "postgres", "BulkCreateNode, CSV", "psql-copy", 1.4),
    Method("psql-copy", "postgres", "psql \\copy, CSV", "adbc"),
    Method("polars-adbc", "postgres", "polars write_database(adbc)", "adbc"),
    Method("pandas-multi", "postgres", "pandas to_sql(multi)", "adbc", extrapolated=True),
    Method("raw-upsert", "postgres", "raw COPY to temp + ON CONFLICT", None, kind="upsert"),
    Method("node-upsert", "postgres", "BulkUpsertNode", "raw-upsert", 0.9, kind="upsert"),
    Method("read-parquet", "duckdb", "raw INSERT .. read_parquet", None),
    Method("arrow-stream", "duckdb", "raw INSERT .. Arrow stream scan", "read-parquet"),
    Method("node-parquet", "duckdb", "BulkCreateNode, Parquet", "read-parquet", 0.9),
    Method("read-csv", "duckdb", "raw INSERT .. read_csv", None),
    Method("node-csv", "duckdb", "BulkCreateNode, CSV", "read-csv", 0.9),
)
RSS_TARGET_MB = 250  # node-parquet peak within this of the raw streamed adbc_ingest
SCALE_TARGET_MB = 50  # a node's peak at 8M at most this above its peak at 2M (flat: it must not grow)


def log(message: str) -> None:
    print(message, flush=True)


def human(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"


# --------------------------------------------------------------------------- the data


def data_paths(rows: int) -> tuple[Path, Path, Path]:
    return (
        DATA_DIR / f"flights_{rows}.parquet",
        DATA_DIR / f"flights_{rows}.csv",
        DATA_DIR / f"upsert_{rows}.parquet",
    )


def upsert_size(rows: int) -> int:
    return min(UPSERT_ROWS, rows - rows % 2)


def generate_chunks(rows: int) -> Iterator[Any]:
    """The table in ROW_GROUP-row pieces, deterministic (seeded per chunk)."""
    import numpy as np
    import pyarrow as pa

    schema = file_schema()
    for start in range(0, rows, ROW_GROUP):
        n = min(ROW_GROUP, rows - start)
        rng = np.random.default_rng(start)
        index = np.arange(start, start + n, dtype=np.int64)
        seconds = index * 15
        micros = rng.integers(0, 1_000_000, n)
        departed = (int(BASE_TIME.timestamp()) + seconds) * 1_000_000 + micros
        note_pick = rng.integers(0, len(NOTES), n)
        has_note = rng.random(n) < 0.3
        carriers = pa.array(CARRIERS).take(pa.array(rng.integers(0, len(CARRIERS), n)))
        notes = pa.array(NOTES).take(pa.array(note_pick, mask=~has_note))
        yield pa.table(
            [
                pa.array(index),
                pa.array([f"FL{i:09d}" for i in range(start, start + n)], pa.string()),
                carriers,
                pa.array(rng.integers(-30, 600, n).astype(np.int32)),
                pa.array(rng.random(n) < 0.02),
                pa.array(departed, pa.timestamp("us", "UTC")),
                pa.array(np.round(rng.uniform(150, 15_000, n), 3)),
                notes,
            ],
            schema=schema,
        )


def file_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("flight_no", pa.int64(), nullable=False),
            pa.field("code", pa.string(), nullable=False),
            pa.field("carrier", pa.string(), nullable=False),
            pa.field("delay_min", pa.int32(), nullable=False),
            pa.field("cancelled", pa.bool_(), nullable=False),
            pa.field("departed_at", pa.timestamp("us", "UTC"), nullable=False),
            pa.field("distance_km", pa.float64(), nullable=False),
            pa.field("note", pa.string()),
        ]
    )


def table_schema() -> Any:
    """The exact Arrow types of the table's data columns (what binary COPY must be sent)."""
    import pyarrow as pa

    schema = file_schema()
    return schema.set(schema.get_field_index("delay_min"), pa.field("delay_min", pa.int64(), nullable=False))


def ensure_data(rows: int, *, csv: bool = True) -> None:
    """Write the Parquet (and CSV) file for ``rows`` rows and the upsert input, unless present."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parquet, csv_path, upsert = data_paths(rows)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    todo = [p for p in (parquet, csv_path if csv else None, upsert) if p is not None and not p.exists()]
    if not todo:
        return
    started = time.perf_counter()
    partial = [p.with_suffix(p.suffix + ".partial") for p in todo]
    try:
        writers: dict[Path, Any] = {}
        if parquet in todo:
            writers[parquet] = pq.ParquetWriter(parquet.with_suffix(".parquet.partial"), file_schema())
        if csv_path in todo:
            writers[csv_path] = pacsv.CSVWriter(csv_path.with_suffix(".csv.partial"), file_schema())
        for chunk in generate_chunks(rows):
            for writer in writers.values():
                if isinstance(writer, pq.ParquetWriter):
                    writer.write_table(chunk, row_group_size=ROW_GROUP)
                else:
                    writer.write_table(chunk)
        for writer in writers.values():
            writer.close()
        if upsert in todo:
            # The first half of the rows (loaded into the table before the upsert) with changed
            # values, then as many new rows: half the input conflicts, half is inserted.
            size = upsert_size(rows)
            base = pq.ParquetFile(parquet.with_suffix(".parquet.partial") if parquet in todo else parquet)
            table = pa.Table.from_batches([next(base.iter_batches(batch_size=size))])
            half = size // 2
            conflict = table.slice(0, half)
            schema = file_schema()
            delay = pc.add(conflict["delay_min"], pa.scalar(5, pa.int32()))
            conflict = conflict.set_column(3, schema.field("delay_min"), delay)
            conflict = conflict.set_column(7, schema.field("note"), pa.repeat(pa.scalar("rebooked"), half))
            pq.write_table(pa.concat_tables([conflict, table.slice(half)]), upsert.with_suffix(".parquet.partial"))
        for done in partial:
            done.rename(done.with_suffix(""))
    finally:
        for leftover in partial:
            leftover.unlink(missing_ok=True)
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:,.0f} MB" for p in todo)
    log(f"  wrote {sizes} in {time.perf_counter() - started:.1f} s")


# --------------------------------------------------------------------------- models


def define_models(db: Any) -> tuple[Any, Any]:
    """Flight (the create benchmarks) and UpsertFlight (same columns, unique code)."""

    @db.model
    class Flight:
        flight_no: int
        code: str
        carrier: str
        delay_min: int  # int32 in the files; a Python int is a BIGINT column
        cancelled: bool
        departed_at: datetime
        distance_km: float
        note: str | None

    @db.model
    class UpsertFlight:
        flight_no: int
        code: str
        carrier: str
        delay_min: int
        cancelled: bool
        departed_at: datetime
        distance_km: float
        note: str | None
        __dataflow__ = {"unique": [["code"]]}

    return Flight, UpsertFlight


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def fingerprint_sql(backend: str, table: str, where: str = "") -> str:
    """Row count and an order-independent hash of the data columns (not id or timestamps)."""
    columns = ", ".join(COLUMNS)
    if backend == "postgres":
        value = f"coalesce(sum(hashtext(ROW({columns})::text)::bigint), 0)::text"
    else:
        value = f"coalesce(sum(hash({columns})), 0)::VARCHAR"
    return f"SELECT count(*), {value} FROM {table} {where}"


# --------------------------------------------------------------------------- children


def vm_status() -> dict[str, float]:
    """VmHWM (peak resident memory since exec) and VmRSS of this process, in MB."""
    out: dict[str, float] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key = line.split(":", 1)[0]
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(line.split()[1]) / 1024
    return out


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies, so a killed run leaves no loader behind."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_child(args: argparse.Namespace) -> int:
    """One load in this fresh interpreter; the last stdout line is a JSON result."""
    die_with_parent()
    url = os.environ[CHILD_URL_VARIABLE]
    load = CHILD_LOADS[(args.backend, args.child)]
    result = load(url, args)
    result.update(vm_status())
    print(json.dumps(result), flush=True)
    return 0


def clocked(before: Callable[[], Any], work: Callable[[Any], Any], profile: bool) -> dict[str, Any]:
    """``before()`` untimed, then ``work(prepared)`` timed (optionally under cProfile)."""
    prepared = before()
    gc.collect()
    rss_before = vm_status()["VmRSS"]
    profiler = cProfile.Profile() if profile else None
    cpu = os.times()
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    outcome = work(prepared)
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - started
    done = os.times()
    if profiler is not None:
        print_profile(profiler)
    cpu_seconds = done.user - cpu.user + done.system - cpu.system
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "rss_before_mb": rss_before, **(outcome or {})}


def print_profile(profiler: cProfile.Profile, top: int = 25) -> None:
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    print("cProfile, top by own time (tottime):")
    print("\n".join("    " + line for line in text.getvalue().splitlines() if line.strip()))
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(r"dataflow_nb[/\\]bulk|adbc_ingest|dataflow_nb[/\\]nodes[/\\]bulk", top)
    print("cProfile, dataflow_nb/bulk and adbc_ingest by cumulative time:")
    print("\n".join("    " + line for line in text.getvalue().splitlines() if line.strip()))


def once_a_process(db: Any) -> None:
    """What a node's first load in a process or database does once, done before the clock like the
    imports and the model's table: import what a load imports on first use (DuckDB splits a CSV
    file, 75 ms in a PostgreSQL-only process, and starts the in-memory DuckDB that reads CSV files,
    ~15 ms; ``pyarrow.parquet``, 6-10 ms) and create the run history's tables (a DataFlow's first
    run in a database, 7-14 ms)."""
    from dataflow_nb.backends.csv_text import CSVSplitter

    importlib.import_module("pyarrow.parquet")
    with CSVSplitter():
        pass
    db.runs(last=1)


def node_create(url: str, args: argparse.Namespace, source: str) -> dict[str, Any]:
    from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder

    def before() -> Any:
        db = DataFlow(url)
        define_models(db)
        once_a_process(db)
        wf = WorkflowBuilder()
        wf.add_node(
            "FlightBulkCreateNode", "load", {"source": source, "batch_size": args.batch_size, "progress": False}
        )
        return db, wf.build()

    def work(prepared: Any) -> dict[str, Any]:
        _, workflow = prepared
        results, _ = LocalRuntime().execute(workflow)
        report = results["load"]
        return {"rows": report.inserted, "batches": len(report.batch_log)}

    return clocked(before, work, args.profile)


def node_upsert(url: str, args: argparse.Namespace) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder

    def before() -> Any:
        db = DataFlow(url)
        define_models(db)
        once_a_process(db)
        data = pq.read_table(data_paths(args.rows)[2])
        wf = WorkflowBuilder()
        wf.add_node(
            "UpsertFlightBulkUpsertNode",
            "up",
            {"data": data, "conflict_on": ["code"], "batch_size": args.batch_size, "progress": False},
        )
        return db, wf.build()

    def work(prepared: Any) -> dict[str, Any]:
        _, workflow = prepared
        results, _ = LocalRuntime().execute(workflow)
        report = results["up"]
        return {"rows": report.rows_written, "inserted": report.inserted, "updated": report.updated}

    return clocked(before, work, args.profile)


def adbc_connect(url: str) -> Any:
    import adbc_driver_postgresql.dbapi

    return adbc_driver_postgresql.dbapi.connect(url)


def raw_adbc(url: str, args: argparse.Namespace, *, pre_buffer: bool = False) -> dict[str, Any]:
    """pq.ParquetFile.iter_batches -> cast to the table's types -> RecordBatchReader -> adbc_ingest.

    ``pre_buffer=False``: with pyarrow's default (True), iter_batches over the whole file buffers
    the column chunks of every row group it was given, i.e. the whole compressed file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    def before() -> Any:
        return adbc_connect(url)

    def work(connection: Any) -> dict[str, Any]:
        schema = table_schema()
        parquet = pq.ParquetFile(data_paths(args.rows)[0], pre_buffer=pre_buffer)
        batches = (b.cast(schema) for b in parquet.iter_batches(batch_size=args.batch_size))
        reader = pa.RecordBatchReader.from_batches(schema, batches)
        with connection.cursor() as cursor:
            rows = cursor.adbc_ingest(TABLE, reader, mode="append")
        connection.commit()
        return {"rows": rows}

    return clocked(before, work, args.profile)


def raw_upsert(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """adbc_ingest into a temporary table, then one INSERT .. SELECT .. ON CONFLICT DO UPDATE."""
    import pyarrow.parquet as pq

    def before() -> Any:
        return adbc_connect(url), pq.read_table(data_paths(args.rows)[2])

    def work(prepared: Any) -> dict[str, Any]:
        connection, data = prepared
        stage = f"stage_{uuid.uuid4().hex[:12]}"
        columns = ", ".join(COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "code")
        with connection.cursor() as cursor:
            cursor.adbc_ingest(stage, data.cast(table_schema()), mode="create", temporary=True)
            cursor.execute(
                f"INSERT INTO {UPSERT_TABLE} ({columns}) SELECT {columns} FROM {stage} "
                f"ON CONFLICT (code) DO UPDATE SET {updates}, updated_at = now()"
            )
            cursor.execute(f"DROP TABLE {stage}")
        connection.commit()
        return {"rows": data.num_rows}

    return clocked(before, work, args.profile)


def polars_adbc(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """polars: read the Parquet file whole, cast to the table's types, write_database(engine="adbc")."""
    import polars as pl

    def before() -> None:
        return None

    def work(_: Any) -> dict[str, Any]:
        frame = pl.read_parquet(data_paths(args.rows)[0]).with_columns(pl.col("delay_min").cast(pl.Int64))
        rows = frame.write_database(TABLE, connection=url, engine="adbc", if_table_exists="append")
        return {"rows": rows if rows >= 0 else frame.height}

    return clocked(before, work, args.profile)


def pandas_multi(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """pandas to_sql(method="multi") of the first PANDAS_ROWS rows through SQLAlchemy + psycopg."""
    import pyarrow.parquet as pq
    import sqlalchemy as sa

    rows = min(PANDAS_ROWS, args.rows)

    def before() -> Any:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        frame = next(pq.ParquetFile(data_paths(args.rows)[0]).iter_batches(batch_size=rows)).to_pandas()
        with engine.connect():  # connect before the clock, as the other methods do
            pass
        return engine, frame

    def work(prepared: Any) -> dict[str, Any]:
        engine, frame = prepared
        frame.to_sql(TABLE, engine, if_exists="append", index=False, method="multi", chunksize=PANDAS_CHUNK)
        return {"rows": len(frame)}

    return clocked(before, work, args.profile)


def duckdb_connect(url: str) -> Any:
    """A DuckDB connection to the benchmark's file database, in UTC like dataflow_nb's."""
    import duckdb

    con = duckdb.connect(url.split("://", 1)[1][1:])
    con.execute("SET TimeZone = 'UTC'")
    return con


def duckdb_read_file(url: str, args: argparse.Namespace, reader: str = "read_parquet") -> dict[str, Any]:
    """DuckDB reading the file itself (``read_parquet``, or ``read_csv`` with its sniffer) into the table."""

    def before() -> Any:
        return duckdb_connect(url)

    def work(con: Any) -> dict[str, Any]:
        columns = ", ".join(COLUMNS)
        path = str(data_paths(args.rows)[0 if reader == "read_parquet" else 1]).replace("'", "''")
        con.execute("BEGIN TRANSACTION")
        row = con.execute(f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {reader}('{path}')").fetchone()
        con.execute("COMMIT")
        return {"rows": int(row[0]) if row else 0}

    return clocked(before, work, args.profile)


def duckdb_arrow_stream(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """The node's route without dataflow_nb: iter_batches -> RecordBatchReader -> register -> INSERT .. SELECT."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def before() -> Any:
        return duckdb_connect(url)

    def work(con: Any) -> dict[str, Any]:
        columns = ", ".join(COLUMNS)
        parquet = pq.ParquetFile(data_paths(args.rows)[0], pre_buffer=False)  # streamed, as raw_adbc
        reader = pa.RecordBatchReader.from_batches(
            parquet.schema_arrow, parquet.iter_batches(batch_size=args.batch_size)
        )
        con.execute("BEGIN TRANSACTION")
        con.register("flights_stream", reader)
        row = con.execute(f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM flights_stream").fetchone()
        con.unregister("flights_stream")
        con.execute("COMMIT")
        return {"rows": int(row[0]) if row else 0}

    return clocked(before, work, args.profile)


CHILD_LOADS: dict[tuple[str, str], Callable[[str, argparse.Namespace], dict[str, Any]]] = {
    ("postgres", "adbc"): raw_adbc,
    ("postgres", "adbc-prebuffer"): lambda url, args: raw_adbc(url, args, pre_buffer=True),
    ("postgres", "node-parquet"): lambda url, args: node_create(url, args, str(data_paths(args.rows)[0])),
    ("postgres", "node-csv"): lambda url, args: node_create(url, args, str(data_paths(args.rows)[1])),
    ("postgres", "polars-adbc"): polars_adbc,
    ("postgres", "pandas-multi"): pandas_multi,
    ("postgres", "raw-upsert"): raw_upsert,
    ("postgres", "node-upsert"): node_upsert,
    ("duckdb", "read-parquet"): duckdb_read_file,
    ("duckdb", "read-csv"): lambda url, args: duckdb_read_file(url, args, "read_csv"),
    ("duckdb", "arrow-stream"): duckdb_arrow_stream,
    ("duckdb", "node-parquet"): lambda url, args: node_create(url, args, str(data_paths(args.rows)[0])),
    ("duckdb", "node-csv"): lambda url, args: node_create(url, args, str(data_paths(args.rows)[1])),
}


def spawn_child(method: Method, url: str, rows: int, batch_size: int, profile: bool) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        method.name,
        "--backend",
        method.backend,
        "--rows",
        str(rows),
        "--batch-size",
        str(batch_size),
    ]
    if profile:
        command.append("--profile")
    # The URL travels in the environment, so a password in it stays out of the process list.
    env = {**os.environ, CHILD_URL_VARIABLE: url}
    # Our own interpreter and script, arguments from this run: nothing untrusted is executed.
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"child {method.name} ({method.backend}) failed with exit {done.returncode}:\n{done.stderr.strip()}"
        )
    lines = done.stdout.strip().splitlines()
    for line in lines[:-1]:  # the profile, when asked for
        log(f"    | {line}")
    return dict(json.loads(lines[-1]))


def psql_copy(url: str, rows: int) -> dict[str, Any]:
    """``psql \\copy`` of the CSV; peak RSS is psql's own VmHWM, sampled until it exits."""
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password:  # keep a password out of the process list
        env["PGPASSWORD"] = unquote(parts.password)
        host = parts.hostname or ""
        netloc = f"{quote(unquote(parts.username or ''))}@{host}" + (f":{parts.port}" if parts.port else "")
        url = urlunsplit(parts._replace(netloc=netloc))
    path = str(data_paths(rows)[1]).replace("'", "''")
    command = f"\\copy {TABLE} ({', '.join(COLUMNS)}) FROM '{path}' WITH (FORMAT csv, HEADER true)"
    started = time.perf_counter()
    process = subprocess.Popen(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-q", "-d", url, "-c", command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak, usage, code = 0.0, None, None
    try:
        while usage is None:  # wait4: psql's own CPU time (its ru_maxrss would include ours)
            peak = max(peak, peak_rss_mb(process.pid) or 0.0)
            pid, wait_status, rusage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                usage, code = rusage, os.waitstatus_to_exitcode(wait_status)
                process.returncode = code
            else:
                time.sleep(0.02)
        seconds = time.perf_counter() - started
        out, err = process.communicate()
    finally:
        if usage is None:
            process.kill()
            process.wait()
    if code != 0:
        raise RuntimeError(f"psql \\copy failed with exit {code}: {err.strip()}")
    copied = int(out.split()[-1]) if out.strip().startswith("COPY") else rows
    return {
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "rows": copied,
        "VmHWM": peak,
        "rss_before_mb": None,
    }


# --------------------------------------------------------------------------- the parent side


@dataclass
class Outcome:
    method: Method
    rows: int  # rows the method wrote (a slice for pandas)
    runs: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: tuple[int, str] | None = None
    slice_fingerprint: tuple[int, str] | None = None  # raw adbc_ingest: its first PANDAS_ROWS rows
    error: str | None = None  # why the method failed (then it has no line in the table)

    @property
    def best(self) -> dict[str, Any]:
        """The fastest run: on a shared machine the others measure the neighbours' load."""
        return min(self.runs, key=lambda r: r["seconds"])

    @property
    def seconds(self) -> float:
        return float(self.best["seconds"])

    @property
    def cpu(self) -> float:
        return float(self.best["cpu_seconds"])

    @property
    def load(self) -> float:
        """The 1-minute load average when the fastest run started."""
        return float(self.best.get("load", 0.0))

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    @property
    def peak(self) -> float:
        return max(r["VmHWM"] for r in self.runs)


class Postgres:
    """A fresh schema with both tables; emptied before each load, dropped at the end."""

    def __init__(self, base_url: str):
        import adbc_driver_postgresql.dbapi

        self.admin = adbc_driver_postgresql.dbapi.connect(base_url, autocommit=True)
        self.schema = f"bench_{uuid.uuid4().hex[:12]}"
        self.run(f"CREATE SCHEMA {self.schema}")
        self.url = with_search_path(base_url, self.schema)
        log(f"  postgres schema {self.schema}")
        try:
            from dataflow_nb import DataFlow

            db = DataFlow(self.url)
            try:
                define_models(db)
            finally:
                db.close()
            for table in (TABLE, UPSERT_TABLE):  # no autovacuum racing the next load after a big insert
                self.run(f"ALTER TABLE {self.schema}.{table} SET (autovacuum_enabled = false)")
        except BaseException:
            self.close()
            raise

    def run(self, sql: str) -> Any:
        with self.admin.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else None

    def reset(self, method: Method, rows: int) -> None:
        table = UPSERT_TABLE if method.kind == "upsert" else TABLE
        self.run(f"TRUNCATE {self.schema}.{table} RESTART IDENTITY")
        if method.kind == "upsert":  # the rows half the upsert input conflicts with
            import pyarrow as pa
            import pyarrow.parquet as pq

            half = upsert_size(rows) // 2
            first = next(pq.ParquetFile(data_paths(rows)[0]).iter_batches(batch_size=half))
            with self.admin.cursor() as cursor:
                cursor.adbc_ingest(
                    f"{UPSERT_TABLE}",
                    pa.Table.from_batches([first]).cast(table_schema()),
                    mode="append",
                    db_schema_name=self.schema,
                )
            self.run(f"VACUUM ANALYZE {self.schema}.{UPSERT_TABLE}")
        self.run("CHECKPOINT")  # each load starts with no dirty buffers left by the previous one

    def fingerprint(self, method: Method, where: str = "") -> tuple[int, str]:
        table = UPSERT_TABLE if method.kind == "upsert" else TABLE
        row = self.run(fingerprint_sql("postgres", f"{self.schema}.{table}", where))[0]
        return int(row[0]), str(row[1])

    def close(self) -> None:
        try:
            self.run("SET lock_timeout = '10s'")
            self.run(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
            log(f"  dropped schema {self.schema}")
        finally:
            self.admin.close()


class DuckDBFiles:
    """A fresh database file (with the tables) per load, in one temporary directory."""

    def __init__(self) -> None:
        self.tmpdir = tempfile.mkdtemp(prefix="dataflow_nb_bulk_")
        self.path = ""

    def fresh(self) -> str:
        from dataflow_nb import DataFlow

        if self.path:
            self.drop()
        self.path = f"{self.tmpdir}/bench_{uuid.uuid4().hex[:8]}.duckdb"
        db = DataFlow(f"duckdb:///{self.path}")
        try:
            define_models(db)
        finally:
            db.close()
        return f"duckdb:///{self.path}"

    def fingerprint(self) -> tuple[int, str]:
        import duckdb

        con = duckdb.connect(self.path)
        try:
            row = con.execute(fingerprint_sql("duckdb", TABLE)).fetchone()
        finally:
            con.close()
        assert row is not None
        return int(row[0]), str(row[1])

    def drop(self) -> None:
        for suffix in ("", ".wal"):
            Path(self.path + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def written_rows(method: Method, rows: int) -> int:
    if method.kind == "upsert":
        return upsert_size(rows)
    if method.extrapolated:
        return min(PANDAS_ROWS, rows)
    return rows


def measure(
    method: Method, rows: int, batch_size: int, pg: Postgres | None, duck: DuckDBFiles | None, profile: bool
) -> tuple[dict[str, Any], tuple[int, str], tuple[int, str] | None]:
    """One load of ``method`` into an empty table: the child's result, the table's fingerprint, and
    for raw adbc_ingest the fingerprint of its first PANDAS_ROWS rows (what pandas writes)."""
    sliced = None
    load = os.getloadavg()[0]
    if method.backend == "postgres":
        assert pg is not None
        pg.reset(method, rows)
        if method.name == "psql-copy":
            result = psql_copy(pg.url, rows)
        else:
            result = spawn_child(method, pg.url, rows, batch_size, profile and method.name.startswith("node"))
        where = f"WHERE flight_no < {PANDAS_ROWS}"
        fingerprint = pg.fingerprint(method, where if method.extrapolated else "")
        if method.name == "adbc":
            sliced = pg.fingerprint(method, where)
    else:
        assert duck is not None
        url = duck.fresh()
        result = spawn_child(method, url, rows, batch_size, profile and method.name.startswith("node"))
        fingerprint = duck.fingerprint()
        duck.drop()
    result["load"] = load
    expected = written_rows(method, rows)
    if method.kind == "upsert":
        half = expected // 2
        if method.name == "node-upsert" and (result.get("inserted"), result.get("updated")) != (half, half):
            raise RuntimeError(
                f"node-upsert reported {result.get('inserted')} inserted / {result.get('updated')}"
                f" updated, expected {half} / {half}"
            )
    elif result.get("rows") != expected:
        raise RuntimeError(f"{method.name} ({method.backend}) reported {result.get('rows')} rows, expected {expected}")
    if fingerprint[0] != expected:
        raise RuntimeError(
            f"{method.name} ({method.backend}): the table has {fingerprint[0]} rows, expected {expected}"
        )
    return result, fingerprint, sliced


def describe(outcome: Outcome, result: dict[str, Any]) -> str:
    before = result.get("rss_before_mb")
    before_text = f", {before:.0f} MB before the load" if before is not None else ""
    return (
        f"  {outcome.method.backend:8} {outcome.method.name:13} {outcome.rows:>10,} rows in {result['seconds']:7.2f} s"
        f" = {outcome.rows / result['seconds']:>10,.0f} rows/s, client CPU {result['cpu_seconds']:6.2f} s, "
        f"peak RSS {result['VmHWM']:5.0f} MB{before_text}, load average {result['load']:.2f}"
    )


def selected_methods(args: argparse.Namespace) -> list[Method]:
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    names = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    return [m for m in METHODS if m.backend in backends and (m.name in names if names else m.default)]


def run_all(
    args: argparse.Namespace,
    methods: list[Method],
    pg: Postgres | None,
    duck: DuckDBFiles | None,
    rows: int,
    batch_size: int,
    *,
    strict: bool = False,
) -> list[Outcome]:
    """Every method ``args.repeats`` times, interleaved (repeat 1 of all, then repeat 2, ...).

    A method that fails is reported and dropped (``strict``: the error is raised); the others go on.
    """
    outcomes = [Outcome(m, written_rows(m, rows)) for m in methods]
    for repeat in range(args.repeats):
        if args.repeats > 1:
            log(f"  -- repeat {repeat + 1} of {args.repeats}")
        for outcome in outcomes:
            if outcome.error is not None:
                continue
            try:
                result, fingerprint, sliced = measure(
                    outcome.method, rows, batch_size, pg, duck, args.profile and repeat == 0
                )
                if outcome.fingerprint is not None and fingerprint != outcome.fingerprint:
                    raise RuntimeError(f"{outcome.method.name}: the table differs between repeats")
            except Exception as exc:
                if strict:
                    raise
                outcome.error = str(exc)
                log(f"  {outcome.method.backend:8} {outcome.method.name:13} FAILED: {exc}")
                continue
            outcome.runs.append(result)
            outcome.fingerprint = outcome.fingerprint or fingerprint
            outcome.slice_fingerprint = outcome.slice_fingerprint or sliced
            log(describe(outcome, result))
    return outcomes


# --------------------------------------------------------------------------- report


def check_same_tables(outcomes: list[Outcome]) -> dict[tuple[str, str], str]:
    """'same' or 'DIFF' per method: its table against its baseline's (the raw method's)."""
    found = {(o.method.backend, o.method.name): o for o in outcomes}
    marks: dict[tuple[str, str], str] = {}
    for o in outcomes:
        key = (o.method.backend, o.method.name)
        reference = None
        if o.method.kind == "upsert":
            reference = found.get((o.method.backend, "raw-upsert"))
        elif o.method.backend == "postgres":
            reference = found.get(("postgres", "adbc"))
        elif o.method.backend == "duckdb":
            reference = found.get(("duckdb", "read-parquet"))
        if reference is None or reference is o:
            marks[key] = "ref" if reference is o else "-"
        else:
            expected = reference.slice_fingerprint if o.method.extrapolated else reference.fingerprint
            marks[key] = "same" if expected == o.fingerprint else "DIFF"
    return marks


ALSO_AGAINST = {  # extra ratio lines: (backend, method) -> the other raw method it is shown against
    ("postgres", "node-csv"): "adbc",
    ("duckdb", "node-parquet"): "arrow-stream",
}
HEADER = (
    "backend",
    "method",
    "rows",
    "s",
    "rows/s",
    "vs",
    "ratio",
    "target",
    "",
    "CPU s",
    "peak MB",
    "Δ raw MB",
    "load",
)


def report(outcomes: list[Outcome], args: argparse.Namespace) -> None:
    found = {(o.method.backend, o.method.name): o for o in outcomes}
    marks = check_same_tables(outcomes)
    lines = []
    for o in outcomes:
        m = o.method
        base = found.get((m.backend, m.baseline)) if m.baseline else None
        ratio = o.rate / base.rate if base is not None else None
        target, verdict = "-", ""
        if ratio is not None and m.target is not None:
            target, verdict = f">= {m.target}", "ok" if ratio >= m.target else "MISS"
        mark = " (x)" if m.extrapolated else ""
        scale = args.rows / o.rows if m.extrapolated else 1
        raw = found.get((m.backend, "adbc" if m.backend == "postgres" else "read-parquet"))
        delta = ""
        if m.kind == "create" and raw is not None and o is not raw:
            delta = f"{o.peak - raw.peak:+.0f}"
            if (m.backend, m.name) == ("postgres", "node-parquet"):
                delta += " ok" if o.peak - raw.peak <= RSS_TARGET_MB else " MISS"
        cells = [m.backend, m.what, human(o.rows) + mark, f"{o.seconds * scale:.2f}{mark}", f"{o.rate:,.0f}"]
        cells += [m.baseline or "-", f"{ratio:.2f}" if ratio is not None else "-", target, verdict]
        cells += [f"{o.cpu * scale:.2f}{mark}", f"{o.peak:.0f}", delta, f"{o.load:.1f}", marks[(m.backend, m.name)]]
        lines.append(tuple(cells))
        other = found.get((m.backend, ALSO_AGAINST.get((m.backend, m.name), "")))
        if other is not None:
            ratio = o.rate / other.rate
            lines.append((m.backend, "  (also vs)", "", "", "", other.method.name, f"{ratio:.2f}", *[""] * 7))
    table((*HEADER, "table"), lines)
    print(
        f"\nrows={args.rows:,} batch_size={args.batch_size:,} repeats={args.repeats} "
        "(time and CPU of the fastest run, max peak); "
        "ratio = rows/s / the 'vs' method's rows/s; CPU s = user+system CPU of the loading process alone (not the "
        "database server's; DuckDB runs inside it); peak = VmHWM of the method's own fresh process (psql: psql's); "
        f"Δ raw = peak - the raw method's peak (adbc_ingest / read_parquet; target for BulkCreateNode from Parquet "
        f"on PostgreSQL: <= {RSS_TARGET_MB} MB); (x) = pandas ran {human(min(PANDAS_ROWS, args.rows))} rows, time "
        f"extrapolated to {human(args.rows)}; table = the data columns hash-identical to the raw method's table "
        "(ref = the raw method); load = the 1-minute load average when the fastest run started "
        f"(now: {' '.join(f'{x:.2f}' for x in os.getloadavg())})"
    )


def table(header: tuple[str, ...], lines: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    print()
    for row in [header, *lines]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# --------------------------------------------------------------------------- modes


def sweep(args: argparse.Namespace, pg: Postgres | None, duck: DuckDBFiles | None) -> None:
    """node-parquet (and its raw baseline) at each batch size in SWEEP_BATCH_SIZES."""
    names = ("adbc", "node-parquet", "read-parquet", "arrow-stream")
    methods = [m for m in selected_methods(args) if m.name in names]
    lines = []
    for size in SWEEP_BATCH_SIZES:
        log(f"== batch size {size:,}")
        outcomes = run_all(args, methods, pg, duck, args.rows, size, strict=True)
        found = {(o.method.backend, o.method.name): o for o in outcomes}
        for o in outcomes:
            base = found.get((o.method.backend, o.method.baseline)) if o.method.baseline else None
            lines.append(
                (
                    o.method.backend,
                    o.method.what,
                    f"{size:,}",
                    f"{o.seconds:.2f}",
                    f"{o.rate:,.0f}",
                    f"{o.rate / base.rate:.2f}" if base else "-",
                    f"{o.cpu:.2f}",
                    f"{o.peak:.0f}",
                )
            )
    table(("backend", "method", "batch", "s", "rows/s", "ratio", "CPU s", "peak MB"), lines)
    print(
        f"\nrows={args.rows:,} repeats={args.repeats} (fastest run, max peak RSS); ratio = rows/s / raw rows/s "
        "at the same batch size"
    )


# The loads whose peak must stay flat from 2M to 8M rows (BulkCreateNode from Parquet and CSV on
# both backends), with the raw streamed adbc_ingest, read_parquet and read_csv beside them.
SCALE_METHODS = (
    *(("postgres", "adbc"), ("postgres", "node-parquet"), ("postgres", "node-csv")),
    *(("duckdb", "read-parquet"), ("duckdb", "node-parquet"), ("duckdb", "read-csv"), ("duckdb", "node-csv")),
)
SCALED = {("postgres", "node-parquet"), ("postgres", "node-csv"), ("duckdb", "node-parquet"), ("duckdb", "node-csv")}
# DuckDB's own buffer pool grows with the file database, raw loads included: what dataflow_nb adds
# is the node's growth less that of DuckDB reading the same file itself.
SCALE_RAW = {("duckdb", "node-parquet"): "read-parquet", ("duckdb", "node-csv"): "read-csv"}


def scale_check(args: argparse.Namespace, pg: Postgres | None, duck: DuckDBFiles | None) -> None:
    """BulkCreateNode (Parquet and CSV) and the raw loads at 2M and 8M rows: peak RSS must not grow."""
    backends = {"postgres"} if duck is None else {"duckdb"} if pg is None else {"postgres", "duckdb"}
    methods = [m for m in METHODS if (m.backend, m.name) in SCALE_METHODS and m.backend in backends]
    peaks: dict[tuple[str, str, int], Outcome] = {}
    for rows in SCALE_ROWS:
        log(f"== {human(rows)} rows")
        ensure_data(rows)
        for o in run_all(args, methods, pg, duck, rows, args.batch_size, strict=True):
            peaks[(o.method.backend, o.method.name, rows)] = o
    small, large = SCALE_ROWS
    lines: list[tuple[str, ...]] = []

    def growth_of(backend: str, name: str) -> float:
        return peaks[(backend, name, large)].peak - peaks[(backend, name, small)].peak

    for m in methods:
        a, b = peaks[(m.backend, m.name, small)], peaks[(m.backend, m.name, large)]
        growth = b.peak - a.peak
        raw = SCALE_RAW.get((m.backend, m.name))
        added = growth - growth_of(m.backend, raw) if raw is not None else growth
        target, verdict = "-", ""
        if (m.backend, m.name) in SCALED:
            # Growing is the miss; a peak at 8M below the 2M one (DuckDB's buffer pool moves by
            # ±60 MB between runs of the same load) is not.
            target, verdict = f"<= +{SCALE_TARGET_MB}", "ok" if added <= SCALE_TARGET_MB else "MISS"
        cells = (m.backend, m.what, f"{a.rate:,.0f}", f"{b.rate:,.0f}", f"{a.peak:.0f}", f"{b.peak:.0f}")
        own = f"{added:+.0f}" if raw is not None else ""
        lines.append((*cells, f"{growth:+.0f}", own, target, verdict, f"{b.load:.1f}"))
    head = (f"rows/s {human(small)}", f"rows/s {human(large)}", f"peak {human(small)} MB", f"peak {human(large)} MB")
    table(("backend", "method", *head, "Δ MB", "Δ - raw Δ", "target", "", "load"), lines)
    print(
        f"\nbatch_size={args.batch_size:,} repeats={args.repeats}; peak = VmHWM of the method's own fresh process; "
        f"Δ = peak at {human(large)} - peak at {human(small)}; Δ - raw Δ = what dataflow_nb adds to DuckDB's own "
        f"growth reading the same file (read_parquet / read_csv), which the target applies to on DuckDB; load = "
        f"the 1-minute load average at the {human(large)} run (now: {' '.join(f'{x:.2f}' for x in os.getloadavg())})"
    )


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="rows in the generated table (default: 200k, then 2M)")
    parser.add_argument("--backends", default="postgres,duckdb", help="comma-separated: postgres,duckdb")
    parser.add_argument(
        "--methods",
        default="",
        help=f"comma-separated subset of: {', '.join(dict.fromkeys(m.name for m in METHODS))} "
        "(default: all but adbc-prebuffer)",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="rows per batch (node and raw)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per method, interleaved; the fastest is shown")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (a schema is created in it)")
    parser.add_argument("--batch-sweep", action="store_true", help=f"node-parquet at batch sizes {SWEEP_BATCH_SIZES}")
    parser.add_argument("--scale-check", action="store_true", help="peak RSS of the loads at 2M and 8M rows (slow)")
    parser.add_argument("--profile", action="store_true", help="cProfile the node children (first repeat)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_child(args)
    sizes = [args.rows] if args.rows is not None else list(DEFAULT_SIZES)
    args.rows = sizes[-1]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - {"duckdb", "postgres"}:
        parser.error(f"--backends takes postgres and/or duckdb, got {args.backends!r}")
    known = {m.name for m in METHODS}
    asked = {m.strip() for m in args.methods.split(",") if m.strip()}
    if asked - known:
        parser.error(f"unknown method(s) {sorted(asked - known)}; choose from {sorted(known)}")
    if min(sizes) < 2 or args.batch_size < 1 or args.repeats < 1:
        parser.error("--rows must be at least 2, --batch-size and --repeats positive")
    methods = selected_methods(args)
    if any(m.name == "pandas-multi" for m in methods) and importlib.util.find_spec("psycopg") is None:
        log(
            "  pandas-multi skipped: pandas.to_sql needs a SQLAlchemy PostgreSQL driver (pip install 'psycopg[binary]')"
        )
        methods = [m for m in methods if m.name != "pandas-multi"]
    if not methods:
        parser.error("no method left to run for these --backends and --methods")

    signal.signal(signal.SIGTERM, terminate)
    started = time.perf_counter()
    pg: Postgres | None = None
    duck: DuckDBFiles | None = None
    failed = False
    try:
        if "postgres" in backends:
            pg = Postgres(args.pg_url)
        if "duckdb" in backends:
            duck = DuckDBFiles()
        if args.scale_check:
            scale_check(args, pg, duck)
        elif args.batch_sweep:
            ensure_data(args.rows)
            sweep(args, pg, duck)
        else:
            for rows in sizes:  # small files first: a fixed cost per load shows there
                args.rows = rows
                ensure_data(rows)
                outcomes = run_all(args, methods, pg, duck, rows, args.batch_size)
                report([o for o in outcomes if o.error is None], args)
                failures = [o for o in outcomes if o.error is not None]
                for o in failures:
                    print(f"FAILED: {o.method.backend} {o.method.name}: {o.error}", file=sys.stderr)
                failed = failed or bool(failures)
    except Exception:
        import traceback

        traceback.print_exc()
        failed = True
    finally:
        for resource in (pg, duck):
            if resource is not None:
                try:
                    resource.close()
                except Exception as exc:  # cleanup goes on; the run's own error was printed above
                    log(f"  warning: cleanup failed: {exc}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


def terminate(signum: int, frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C, so the ``finally`` blocks still drop the schema."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
