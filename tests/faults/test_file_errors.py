"""DuckDB files that cannot be used: locked by another process, a read-only file system, a full disk."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest

from dataflow_nb import DatabaseError, DatabaseFileError, DataFlow, LocalRuntime, WorkflowBuilder, WorkflowError
from tests.conftest import unavailable
from tests.faults.helpers import define_counter, run_nodes

pytestmark = pytest.mark.slow  # other processes hold, fill and lock the files


@contextmanager
def small_file_system(where: Path, *options: str) -> Iterator[Path]:
    """A tmpfs of its own (read-only, or tiny) mounted for the test, always unmounted afterwards."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs for this test (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_file_locked_by_another_process_names_the_file_and_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('open', flush=True); "
         "time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(DatabaseFileError) as info:
            DataFlow(f"duckdb:///{path}")
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    assert info.value.path == str(path)
    assert info.value.reason == "it is locked by another process"
    assert str(path) in str(info.value) and "close the DataFlow" in str(info.value)
    assert isinstance(info.value, DatabaseError)


def test_a_read_only_file_system_names_the_file_and_the_cause(tmp_path: Path) -> None:
    with small_file_system(tmp_path / "ro", "size=1m", "ro") as root:
        for path in (root / "a.duckdb", root / "sub" / "b.duckdb"):  # the folder cannot be made either
            with pytest.raises(DatabaseFileError) as info:
                DataFlow(f"duckdb:///{path}")
            assert info.value.path == str(path)
            assert info.value.reason == "the file system is read-only"
            assert str(path) in str(info.value)


def test_a_full_disk_fails_the_run_naming_the_file_and_leaves_the_data_as_it_was(tmp_path: Path) -> None:
    with small_file_system(tmp_path / "full", "size=700k") as root:
        path = root / "full.duckdb"
        db = DataFlow(f"duckdb:///{path}")
        try:
            define_counter(db)
            run_nodes((db.nodes["CounterCreateNode"], "one", {"key": "kept", "n": 1}))
            rows = pl.DataFrame({"key": [f"{i:08d}-{'x' * 40}-{i * 7919 % 100003}" for i in range(300_000)]})
            rows = rows.with_columns(n=pl.int_range(pl.len()))
            workflow = WorkflowBuilder()
            workflow.add_node(db.nodes["CounterBulkCreateNode"], "load", {"data": rows})
            with pytest.raises(WorkflowError) as info:
                LocalRuntime().execute(workflow.build())
            cause = info.value.__cause__
            assert isinstance(cause, DatabaseFileError), repr(cause)
            assert cause.reason == "the disk is full" and cause.path == str(path)
            assert str(path) in str(info.value)
            keys = run_nodes((db.nodes["CounterListNode"], "all", {}))["all"]["key"].to_list()
            assert keys == ["kept"]
        finally:
            db.close()
