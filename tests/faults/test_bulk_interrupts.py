"""Ctrl-C during a bulk load: SIGINT to a process loading a large CSV, at several points.

Each load runs in a child process with a progress bar on stderr, so the test knows where the
load is when it presses Ctrl-C: once rows stream (DuckDB's typed read of the file, PostgreSQL's
COPY, an upsert's staging), or once the staging is done and the upsert statement runs. The child
then reports what it saw (the exception, its threads, the table's rows, the run's status) and
waits, so that the test can look at the server before the child's connections go away.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.cluster import Cluster

pytestmark = pytest.mark.slow  # SIGINT to loading processes and kernels, a private PostgreSQL

ROWS = 2_000_000  # ~60 MB: seconds of loading on either database, generated in a moment by DuckDB
LIMIT = 5.0  # seconds from SIGINT to KeyboardInterrupt: generous for a shared CI machine (measured: < 1 s)

# A database with a model and 10 committed rows, which an interrupted load must leave as they are.
SETUP = """
import json, sys, threading, time
from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder
db = DataFlow(URL)

@db.model
class Reading:
    k: int
    name: str
    amount: float
    __dataflow__ = {"unique": [["k"]]}

def run(node_type, params):
    workflow = WorkflowBuilder()
    workflow.add_node(node_type, "node", params)
    return LocalRuntime().execute(workflow.build())[0]["node"]

run("ReadingBulkDeleteNode", {"filter": {"all": True}})  # a process loading again starts from the same rows
run("ReadingBulkCreateNode", {"data": [{"k": -i, "name": "kept", "amount": 0.5} for i in range(1, 11)]})
before = {t.name for t in threading.enumerate()}

def left_behind():  # threads started since, still alive 5 s later (the history's timer ends when it wakes)
    # "Dummy-N": DuckDB's own pool threads, which Python names once they call into it (a bar's update
    # in a kernel); they belong to DuckDB for good, whatever the load did.
    started = [t for t in threading.enumerate() if t.name not in before and not t.name.startswith("Dummy-")]
    for thread in started:
        thread.join(5)
    return sorted(t.name for t in started if t.is_alive())
"""

# A shell's background job starts its children with SIGINT ignored (so would a CI runner's): restore it.
CHILD = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    + SETUP.replace("URL", "sys.argv[1]")
    + """
path, node = sys.argv[2:4]
print("ready", flush=True)
seen = {}
try:
    run(f"Reading{node}Node", {"source": path, "progress": True})
    seen["raised"] = None
    seen["returned_at"] = time.time()  # the load ended before Ctrl-C reached it: the test was late
except KeyboardInterrupt as exc:
    seen["caught_at"] = time.time()
    seen["raised"] = type(exc).__name__
except BaseException as exc:
    seen["raised"] = f"{type(exc).__name__}: {exc}"
seen["threads"] = left_behind()
seen["rows"] = int(run("ReadingCountNode", {}))
seen["status"] = db.runs(3)["status"].to_list()
print(json.dumps(seen), flush=True)
sys.stdin.readline()  # the test looks at the server while this process still holds its pool
"""
)


@pytest.fixture(scope="module")
def large_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import duckdb

    path = tmp_path_factory.mktemp("interrupts") / "readings.csv"
    duckdb.sql(
        f"COPY (SELECT range AS k, 'name ' || (range % 977) AS name, range * 0.25 AS amount FROM range({ROWS})) "
        f"TO '{path}' (HEADER)"
    )
    return path


class Child:
    """The loading process, its stderr read on a thread (the progress bar)."""

    def __init__(self, url: str, path: Path, node: str, tmp_path: Path):
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        self.process = subprocess.Popen(
            [sys.executable, str(script), url, str(path), node],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read_err, daemon=True)
        self._reader.start()

    def _read_err(self) -> None:  # what is there, as soon as it is there: the test presses Ctrl-C on it
        assert self.process.stderr is not None
        while chunk := os.read(self.process.stderr.fileno(), 65536):
            self.err.append(chunk.decode(errors="replace"))

    def stderr(self) -> str:
        return "".join(self.err)

    def wait_for(self, pattern: str, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while not re.search(pattern, self.stderr()):
            assert self.process.poll() is None, f"the child ended first: {self.stderr()[-2000:]}"
            assert time.monotonic() < deadline, f"no {pattern!r} in {seconds} s: {self.stderr()[-2000:]}"
            time.sleep(0.01)

    def outcome(self) -> dict[str, object]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the child printed nothing: {self.stderr()[-3000:]}"
        seen: dict[str, object] = json.loads(line)
        return seen

    def finish(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("\n")
            self.process.stdin.flush()
            self.process.wait(30)
        self._reader.join(10)


@pytest.fixture
def start_child(fault_url: str, large_csv: Path, tmp_path: Path) -> Iterator[Callable[[str], Child]]:
    """Starts loading processes (``node``: BulkCreate or BulkUpsert); each is stopped at the end."""
    started: list[Child] = []

    def start(node: str) -> Child:
        started.append(Child(fault_url, large_csv, node, tmp_path))
        return started[-1]

    yield start
    for loading in started:
        if loading.process.poll() is None:
            loading.process.kill()
        loading.process.wait(30)
        loading._reader.join(10)
        for stream in (loading.process.stdin, loading.process.stdout, loading.process.stderr):
            if stream is not None:
                stream.close()


# (node, what the bar shows when Ctrl-C is pressed): rows streaming in, or a staging finished
# (the upsert statement runs next).
POINTS = [
    ("BulkCreate", r"[1-9][\d.,]*[kM]? rows"),
    ("BulkUpsert", r"[1-9][\d.,]*[kM]? rows"),
    ("BulkUpsert", r"100%"),
]


@pytest.mark.parametrize(("node", "point"), POINTS, ids=["create", "upsert-staging", "upsert"])
def test_ctrl_c_stops_a_bulk_load_and_rolls_it_back(
    node: str, point: str, start_child: Callable[[str], Child], fault_url: str, shared_private_cluster: Cluster
) -> None:
    # A busy machine may hand the test the bar's text after the last statement (a second or two on
    # DuckDB) has ended: that press says nothing of the load, so a new process loads again (3 tries).
    for _ in range(3):
        child = start_child(node)
        assert child.process.stdout is not None
        assert child.process.stdout.readline().strip() == "ready", child.stderr()[-2000:]
        child.wait_for(point)
        pressed = time.time()
        child.process.send_signal(signal.SIGINT)
        seen = child.outcome()
        late = seen["raised"] is None and float(seen["returned_at"]) <= pressed  # type: ignore[arg-type]
        if not late:
            break
        child.process.kill()
    assert seen["raised"] == "KeyboardInterrupt", seen
    assert isinstance(seen["caught_at"], float) and seen["caught_at"] - pressed < LIMIT
    assert seen["threads"] == []  # no read-ahead, ingest or deadline thread left behind
    assert seen["rows"] == 10  # the seed rows, and nothing of the load
    assert seen["status"] == ["ok", "interrupted", "ok"]  # newest first: the count, the load, the seed
    assert "rolled back, 0 rows written" in child.stderr()
    if fault_url.startswith("postgresql"):
        database = fault_url.rsplit("/", 1)[1]
        busy = shared_private_cluster.query(
            f"SELECT state, query FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid() "
            "AND (state = 'active' OR state LIKE 'idle in transaction%')"
        )
        locks = shared_private_cluster.query(  # relation locks of that database, held by anyone
            f"SELECT l.locktype, l.relation, l.mode FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            f"WHERE d.datname = '{database}' AND l.pid <> pg_backend_pid()"
        )
        assert (list(busy), list(locks)) == ([], [])
    child.finish()
    assert child.process.returncode == 0


KERNEL_LOAD = "run('ReadingBulkCreateNode', {'source': PATH, 'progress': True})"

KERNEL_AFTER = """
print("threads", left_behind())  # the kernel's own threads were there before
print("rows", run("ReadingCountNode", {}))
print("status", db.runs(3)["status"].to_list())
"""


# After a cell that raised, nbclient leaves its event loop and a socket of its own to the collector.
@pytest.mark.filterwarnings("ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function BaseEventLoop:pytest.PytestUnraisableExceptionWarning"
)
def test_interrupting_a_kernel_stops_its_bulk_load(fault_url: str, large_csv: Path, tmp_path: Path) -> None:
    import gc

    import nbformat

    from tests.integration.kernel import execute, open_kernel, printed

    notebook = nbformat.v4.new_notebook()
    pressed: list[float] = []
    with open_kernel(notebook, tmp_path) as client:
        execute(client, SETUP.replace("URL", repr(fault_url)))
        cell = nbformat.v4.new_code_cell(KERNEL_LOAD.replace("PATH", repr(str(large_csv))))
        notebook.cells.append(cell)

        def press_ctrl_c() -> None:  # once the bar is shown and the rows have had a moment to stream
            deadline = time.monotonic() + 120
            while not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.outputs):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.5)
            pressed.append(time.monotonic())
            client.km.interrupt_kernel()

        interrupter = threading.Thread(target=press_ctrl_c, daemon=True)
        interrupter.start()
        with pytest.raises(Exception, match="KeyboardInterrupt"):
            client.execute_cell(cell, len(notebook.cells) - 1)
        returned = time.monotonic()
        interrupter.join()
        after = execute(client, KERNEL_AFTER)
    gc.collect()  # nbclient's leftovers are collected here, under the filters above, not in a later test
    assert returned - pressed[0] < LIMIT
    assert "threads []" in after and "rows 10" in after
    assert "status ['ok', 'interrupted', 'ok']" in after
    bar = next(o for o in cell.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {}))
    assert "rolled back, 0 rows written" in bar["data"]["text/plain"]  # what the saved notebook shows
    assert "KeyboardInterrupt" in printed(cell, "stderr") or any(
        o.get("ename") == "KeyboardInterrupt" for o in cell.outputs
    )
