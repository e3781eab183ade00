"""Any interruption rolls back and releases: a KeyboardInterrupt in a node, and Ctrl-C in a kernel."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder
from tests.faults.cluster import Cluster, wait_until
from tests.faults.helpers import (
    counter_value,
    create_counter,
    define_counter,
    finishes_within,
    idle_in_transaction,
    run_nodes,
)
from tests.integration.kernel import execute, open_kernel

pytestmark = pytest.mark.slow  # Jupyter kernels and a private PostgreSQL server

# A run that must not wait for a lock the interrupted run kept: the limit.
NEXT_RUN_LIMIT = 1.0


def interrupt(**_: Any) -> None:
    raise KeyboardInterrupt


def test_keyboard_interrupt_in_a_node_rolls_back_and_releases(fault_url: str, shared_private_cluster: Cluster) -> None:
    with DataFlow(fault_url, pool_size=1, pool_max_overflow=0) as db:
        define_counter(db)
        counter = create_counter(db)
        update = (db.nodes["CounterUpdateNode"], "bump", {"id": counter, "n": 1})
        with pytest.raises(KeyboardInterrupt):
            run_nodes(update, (interrupt, "ctrl_c", {}))
        if db.backend.capabilities.name == "postgresql":
            assert idle_in_transaction(shared_private_cluster.query, fault_url.rsplit("/", 1)[1]) == []
            with DataFlow(fault_url) as other:  # another session: it would wait for a kept row lock
                define_counter(other)
                seconds = finishes_within(30, lambda: run_nodes((other.nodes["CounterUpdateNode"], "bump", update[2])))
        else:  # DuckDB: a kept transaction makes the next writer of the row conflict
            seconds = finishes_within(30, lambda: run_nodes(update))
        assert seconds < NEXT_RUN_LIMIT
        assert counter_value(db, counter) == 1  # the interrupted run's write was rolled back, the next one kept


KERNEL_SETUP = """
import pathlib, time
from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder
db = DataFlow({url!r}, pool_size=1, pool_max_overflow=0)

@db.model
class Counter:
    key: str
    n: int
    __dataflow__ = {{"unique": [["key"]]}}

workflow = WorkflowBuilder()
workflow.add_node("CounterCreateNode", "create", {{"key": "hot", "n": 0}})
counter = int(LocalRuntime().execute(workflow.build())[0]["create"]["id"][0])

def wait_forever():
    pathlib.Path({started!r}).touch()
    time.sleep(600)
"""

KERNEL_LONG_RUN = """
workflow = WorkflowBuilder()
workflow.add_node("CounterUpdateNode", "bump", {"id": counter, "n": 1})
workflow.add_node(wait_forever, "wait", {})
LocalRuntime().execute(workflow.build())
"""

KERNEL_NEXT_RUN = """
workflow = WorkflowBuilder()
workflow.add_node("CounterUpdateNode", "bump", {"id": counter, "n": 2})
started = time.perf_counter()
LocalRuntime().execute(workflow.build())
print(f"seconds={time.perf_counter() - started:.3f}")
workflow = WorkflowBuilder()
workflow.add_node("CounterReadNode", "read", {"id": counter})
print("n=" + str(LocalRuntime().execute(workflow.build())[0]["read"]["n"][0]))
"""


# After a cell that raised, nbclient leaves its event loop and a socket of its own to the collector.
@pytest.mark.filterwarnings("ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function BaseEventLoop:pytest.PytestUnraisableExceptionWarning"
)
def test_interrupting_a_running_kernel_rolls_back_and_releases(
    fault_url: str, shared_private_cluster: Cluster, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    import nbformat  # here, not at the top: importing it costs every collection 1-3 s

    notebook = nbformat.v4.new_notebook()
    with open_kernel(notebook, tmp_path) as client:
        execute(client, KERNEL_SETUP.format(url=fault_url, started=str(started)))

        def press_ctrl_c() -> None:
            wait_until(started.exists, 120, "the long run's second node")
            client.km.interrupt_kernel()

        interrupter = threading.Thread(target=press_ctrl_c, daemon=True)
        interrupter.start()
        cell = nbformat.v4.new_code_cell(KERNEL_LONG_RUN)
        notebook.cells.append(cell)
        with pytest.raises(Exception, match="KeyboardInterrupt"):
            client.execute_cell(cell, len(notebook.cells) - 1)
        interrupter.join()
        if fault_url.startswith("postgresql"):
            assert idle_in_transaction(shared_private_cluster.query, fault_url.rsplit("/", 1)[1]) == []
        printed = execute(client, KERNEL_NEXT_RUN)
    gc.collect()  # nbclient's leftovers are collected here, under the filters above, not in a later test
    seconds = float(printed.split("seconds=")[1].split()[0])
    assert seconds < NEXT_RUN_LIMIT
    assert "n=2" in printed


def test_a_failed_node_releases_the_connection_for_the_next_run(fault_url: str) -> None:
    """pool_size=1: a connection kept by a failed run would make the next run wait for the pool."""
    with DataFlow(fault_url, pool_size=1, pool_max_overflow=0, pool_timeout=5) as db:
        define_counter(db)
        counter = create_counter(db)

        def fail(**_: Any) -> None:
            raise RuntimeError("boom")

        for _ in range(3):
            workflow = WorkflowBuilder()
            workflow.add_node("CounterUpdateNode", "bump", {"id": counter, "n": 5})
            workflow.add_node(fail, "fail", {})
            with pytest.raises(Exception, match="boom"):
                LocalRuntime().execute(workflow.build())
        assert counter_value(db, counter) == 0
