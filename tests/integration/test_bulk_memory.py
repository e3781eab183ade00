"""Bounded memory: four times the rows through BulkCreate needs about the same peak memory.

Each load runs in a fresh interpreter and reports its own high-water mark (VmHWM, which exec
resets). PostgreSQL keeps the rows, so the client's memory is what the loader itself holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow  # loads millions of rows in child processes

ROOT = Path(__file__).resolve().parents[2]
BATCH = 20_000

CHILD = textwrap.dedent("""
    import sys
    from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder
    db = DataFlow(sys.argv[1])
    db.model_from(sys.argv[2], name="Wide")
    workflow = WorkflowBuilder()
    workflow.add_node("WideBulkCreateNode", "load", {"source": sys.argv[2], "batch_size": int(sys.argv[3]),
                                                     "progress": False})
    report = LocalRuntime().execute(workflow.build())[0]["load"]
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(report.inserted, peak // 1024)
""")


def write_parquet(path: Path, rows: int) -> None:
    writer = None
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        batch = pa.table(
            {
                "n": pa.array(range(start, start + n), pa.int64()),
                "text": pa.array([f"{i:012d}-" + "x" * 60 for i in range(start, start + n)]),
                "value": pa.array([i * 0.5 for i in range(n)], pa.float64()),
            }
        )
        writer = writer or pq.ParquetWriter(path, batch.schema)
        writer.write_table(batch, row_group_size=BATCH)
    assert writer is not None
    writer.close()


def peak_mb(url: str, path: Path) -> tuple[int, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(path), str(BATCH)], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows, peak = done.stdout.split()
    return int(rows), int(peak)


def test_four_times_the_rows_keeps_the_peak_bounded(postgres_url: str, tmp_path: Path) -> None:
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    write_parquet(small, 4 * BATCH * 5)
    write_parquet(large, 16 * BATCH * 5)  # 1.6M rows, about 130 MB as Arrow in memory
    small_rows, small_peak = peak_mb(postgres_url, small)
    large_rows, large_peak = peak_mb(postgres_url, large)
    assert (small_rows, large_rows) == (400_000, 1_600_000)
    # Reading the large file whole would add about 100 MB; streaming adds next to nothing.
    assert large_peak - small_peak < 40, (small_peak, large_peak)
