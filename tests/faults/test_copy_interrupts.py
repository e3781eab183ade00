"""Ctrl-C during ``dataflow-nb copy``: SIGINT once rows stream, both ways between the backends.

The copy runs in a child process with its progress bar on stderr, so the test presses Ctrl-C
only once rows are on their way; the target must then hold exactly what it held before.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder

pytestmark = pytest.mark.slow  # SIGINT to dataflow-nb copy processes

SCRIPT = str(Path(sys.executable).with_name("dataflow-nb"))
ROWS = 1_000_000
MOVING = re.compile(r"\s[1-9]\d*%\|")  # a bar past 0%
LIMIT = 5.0  # seconds from SIGINT to exit: generous for a shared CI machine (measured: 0.2-1.0 s)


def define_reading(db: DataFlow) -> None:
    @db.model
    class Reading:
        k: int
        name: str
        amount: float


@pytest.fixture(scope="module")
def big_prototype(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A DuckDB file whose model table holds ROWS rows, made by DuckDB in a moment."""
    url = f"duckdb:///{tmp_path_factory.mktemp('copy') / 'big.duckdb'}"
    with DataFlow(url) as db:
        define_reading(db)
        workflow = WorkflowBuilder()
        sql = "INSERT INTO readings (k, name, amount) SELECT range, 'r' || range, range / 7 FROM range(:n)"
        workflow.add_node("SQLQueryNode", "fill", {"sql": sql, "params": {"n": ROWS}, "db": db, "allow_writes": True})
        LocalRuntime().execute(workflow.build())
    return url


@pytest.fixture(params=["duckdb->postgres", "postgres->duckdb"])
def pair(request: pytest.FixtureRequest, big_prototype: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    postgres = request.getfixturevalue("postgres_url")
    if request.param == "duckdb->postgres":
        yield big_prototype, postgres
        return
    with DataFlow(big_prototype, read_only=True) as source, DataFlow(postgres) as staged:
        source.copy_to(staged, progress=False, history=False)
    yield postgres, f"duckdb:///{tmp_path / 'target.duckdb'}"


def test_ctrl_c_stops_a_copy_and_the_target_keeps_what_it_had(pair: tuple[str, str]) -> None:
    source, target = pair
    with DataFlow(target) as db:  # the target already holds one row, which the copy would replace
        define_reading(db)
        workflow = WorkflowBuilder()
        workflow.add_node("ReadingCreateNode", "kept", {"k": -1, "name": "kept", "amount": 0.5})
        LocalRuntime().execute(workflow.build())

    # A shell's background job starts its children with SIGINT ignored (so would a CI runner's): restore it.
    child = subprocess.Popen(
        [SCRIPT, "copy", source, target, "--replace"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert child.stderr is not None
        seen = ""
        while not MOVING.search(seen) and child.poll() is None:  # the bar shows rows moving
            seen += child.stderr.read(1)
        assert child.poll() is None, f"the copy ended before it could be interrupted: {seen}"
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, (out, seen + err)
    assert "interrupted; its unfinished transaction was rolled back" in err
    assert took < LIMIT, f"the copy took {took:.1f} s to stop"
    with DataFlow(target, read_only=True) as db:
        workflow = WorkflowBuilder()
        workflow.add_node("SQLQueryNode", "rows", {"sql": "SELECT k FROM readings", "db": db})
        rows, _ = LocalRuntime().execute(workflow.build())
    assert rows["rows"]["k"].to_list() == [-1]
