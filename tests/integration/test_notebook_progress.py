"""A saved notebook's bulk progress bar shows the final count, not the ``0%`` it was first shown with."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.kernel import open_kernel

pytestmark = pytest.mark.slow  # a real Jupyter kernel

CELLS = [
    "import polars as pl\n"
    "from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder\n"
    "db = DataFlow()\n"
    "@db.model\n"
    "class Reading:\n"
    "    n: int",
    "workflow = WorkflowBuilder()\n"
    "workflow.add_node('ReadingBulkCreateNode', 'load',\n"
    "    {'data': pl.DataFrame({'n': range(2500)}), 'batch_size': 1000, 'progress': True})\n"
    "results, _ = LocalRuntime().execute(workflow.build())\n"
    "assert results['load'].rows_written == 2500",
]


def test_the_saved_progress_text_shows_the_final_count(backend_url: str | None, tmp_path: Path) -> None:
    import nbformat  # here, not at the top: importing it costs every collection 1-3 s

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    with open_kernel(notebook, tmp_path, database_url=backend_url) as client:
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
    saved = tmp_path / "saved.ipynb"
    nbformat.write(notebook, saved)
    outputs = nbformat.read(saved, as_version=4).cells[1].outputs
    bars = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(bars) == 1, outputs  # the live widget, one per load
    text = bars[0]["data"]["text/plain"]
    assert "ReadingBulkCreateNode" in text and "2,500/2,500 rows" in text and "100%" in text, text
    assert " 0%" not in text
