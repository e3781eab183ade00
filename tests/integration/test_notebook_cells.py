"""Re-running and editing the DataFlow cell in a real Jupyter kernel, as a notebook user does.

The notebook: imports, ``db = DataFlow(...)``, a model cell, a workflow cell. Re-running the
DataFlow cell (or editing it from DuckDB to PostgreSQL) and the cells below must work again:
a DataFlow nothing references is gone without a garbage collection, and when the old one is
still alive (shown in an ``Out[n]``, or held by a kept traceback) the newest wins, with one
warning per node name that names both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kernel import execute, open_kernel, printed, run_cell

pytestmark = pytest.mark.slow  # a real Jupyter kernel

IMPORTS, DATAFLOW, MODEL, WORKFLOW = range(4)
CELLS = [
    "import polars as pl\n"
    "from polars.testing import assert_frame_equal\n"
    "from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder",
    "db = DataFlow()",
    "@db.model\n"
    "class Flight:\n"
    "    code: str\n"
    "    carrier: str\n"
    "    delay: int\n"
    "    __dataflow__ = {'unique': [['code']]}",
    "flights = pl.DataFrame({'code': ['F1', 'F2', 'F3'], 'carrier': ['AA', 'UA', 'AA'], 'delay': [3, -2, 15]})\n"
    "workflow = WorkflowBuilder()\n"
    "workflow.add_node('FlightBulkUpsertNode', 'load', {'data': flights, 'conflict_on': ['code']})\n"
    "workflow.add_node('FlightListNode', 'late',\n"
    "    {'filter': {'delay': {'$gt': 0}}, 'fields': ['code', 'carrier', 'delay'], 'order_by': ['code']})\n"
    "results, run_id = LocalRuntime().execute(workflow.build())\n"
    "late = results['late']",
]
WARNING = "DataflowWarning"


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Any]:
    import nbformat  # here, not at the top: importing it costs every collection 1-3 s

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    with open_kernel(notebook, tmp_path) as client:
        yield client


def dataflow_cell(url: str | None, *, shown: bool = False) -> str:
    source = "db = DataFlow()" if url is None else f"db = DataFlow({url!r})"
    return source + "\ndb" if shown else source


def run_all(kernel: Any, url: str | None, *, shown: bool = False) -> list[Any]:
    """Run the DataFlow cell (with ``url``) and every cell below it; return the cells."""
    return [run_cell(kernel, i, dataflow_cell(url, shown=shown) if i == DATAFLOW else None) for i in range(1, 4)]


def state(kernel: Any) -> dict[str, Any]:
    probe = "import json; print(json.dumps({'url': db.backend.safe_url, 'name': db.name, 'rows': late.to_dicts()}))"
    result: dict[str, Any] = json.loads(execute(kernel, probe).strip().splitlines()[-1])
    return result


def test_rerunning_the_dataflow_cell_and_the_cells_below(kernel: Any, backend_url: str | None) -> None:
    run_cell(kernel, IMPORTS)
    run_all(kernel, backend_url)
    first = state(kernel)
    assert first["rows"] == [{"code": "F1", "carrier": "AA", "delay": 3}, {"code": "F3", "carrier": "AA", "delay": 15}]
    execute(kernel, "before = late")

    for _ in range(2):
        cells = run_all(kernel, backend_url)
        assert WARNING not in printed(cells[-1], "stderr")  # the replaced DataFlow is gone: nothing is ambiguous
        execute(kernel, "assert_frame_equal(before, late)")
    again = state(kernel)
    assert again["name"] != first["name"] and again["rows"] == first["rows"]
    # Nothing but a weak reference is left of the replaced DataFlows: no gc.collect() was needed.
    assert (
        execute(kernel, "from dataflow_nb.registry import live_databases; print(len(live_databases()))").strip() == "1"
    )


@pytest.mark.parametrize("old_db", ["unreferenced", "shown in Out[n]", "held by a traceback"])
def test_editing_the_dataflow_cell_from_duckdb_to_postgresql(kernel: Any, postgres_url: str, old_db: str) -> None:
    import nbclient

    shown = old_db == "shown in Out[n]"
    run_cell(kernel, IMPORTS)
    cells = run_all(kernel, None, shown=shown)
    if shown:
        assert "DataFlow" in cells[0].outputs[0]["data"]["text/plain"]  # the old db is Out[n]
    execute(kernel, "before = late")
    duckdb = state(kernel)
    if old_db == "held by a traceback":
        with pytest.raises(nbclient.exceptions.CellExecutionError, match="WorkflowError"):
            execute(
                kernel,
                "w = WorkflowBuilder()\nw.add_node('FlightCreateNode', 'dup', "
                "{'code': 'F1', 'carrier': 'AA', 'delay': 1})\nLocalRuntime().execute(w.build())",
            )
        assert "FlightCreateNode" in execute(kernel, "import sys; print(sys.last_value)")  # the kernel kept it

    cells = run_all(kernel, postgres_url, shown=shown)
    warned = printed(cells[-1], "stderr")
    postgres = state(kernel)
    assert postgres["url"].startswith("postgresql://") and postgres["rows"] == duckdb["rows"]
    execute(kernel, "assert_frame_equal(before, late)")  # the same frame from PostgreSQL as from DuckDB

    old_alive = execute(kernel, "from dataflow_nb.registry import live_databases; print(len(live_databases()))")
    if old_db == "unreferenced":
        assert old_alive.strip() == "1"
        assert WARNING not in warned
        return
    # The old DataFlow is still alive: the newest wins, with one warning per name naming both.
    assert old_alive.strip() == "2"
    for name in ("FlightBulkUpsertNode", "FlightListNode"):
        (line,) = [w for w in warned.splitlines() if WARNING in w and repr(name) in w]
        assert f"using the newest, {postgres['name']!r} ({postgres['url']})" in line
        assert f"{duckdb['name']!r} (duckdb:///:memory:): write '{duckdb['name']}.{name}'" in line
    assert WARNING not in printed(run_cell(kernel, WORKFLOW), "stderr")  # once per name, not every run
    execute(kernel, "assert_frame_equal(before, late)")

    # The old one stays reachable by its qualified name; closing it withdraws its nodes.
    count_old = (
        "w = WorkflowBuilder()\n"
        f"w.add_node('{duckdb['name']}.FlightCountNode', 'n')\n"
        "print(LocalRuntime().execute(w.build())[0]['n'])"
    )
    assert execute(kernel, count_old).strip() == "3"
    execute(kernel, "live_databases()[0].close()")
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="unknown node type"):
        execute(kernel, count_old)
    execute(kernel, "del before")
