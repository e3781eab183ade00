"""Re-running a model cell in a real Jupyter kernel: unchanged, changed (additive), changed destructively.

The notebook ``notebooks/model_changes.ipynb`` runs top to bottom in a kernel started with this
interpreter (so CI uses the project's virtualenv, whatever kernels the machine has), then the
model cell is edited and executed again, as a person would, and probes check rows and nodes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kernel import execute, open_kernel, run_cell

pytestmark = pytest.mark.slow  # a real Jupyter kernel

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "model_changes.ipynb"
MODEL_CELL = 3
PROBE = (
    "import json\n"
    "print(json.dumps({'count': run('NoteCountNode'), 'fields': list(db.models['Note'].fields),\n"
    "    'nodes': sorted(n for n in db.nodes if n.startswith('Note')),\n"
    "    'history': [[r['operation'], r['target']] for r in db.migration_history().to_dicts()]}))"
)


@pytest.fixture
def kernel(backend_url: str | None, tmp_path: Path) -> Iterator[Any]:
    """A notebook client whose kernel runs this interpreter, pointed at the test's database."""
    import nbformat  # here, not at the top: importing it costs every collection 1-3 s

    with open_kernel(nbformat.read(NOTEBOOK, as_version=4), tmp_path, database_url=backend_url) as client:
        yield client


def probe(client: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(execute(client, PROBE).strip().splitlines()[-1])
    return result


def rerun_model_cell(client: Any, source: str | None = None) -> None:
    run_cell(client, MODEL_CELL, source)


def test_rerunning_the_model_cell_unchanged_changed_and_destructively(kernel: Any) -> None:
    import nbclient

    for index, cell in enumerate(kernel.nb.cells):  # the notebook, top to bottom, as saved
        kernel.execute_cell(cell, index)
    start = probe(kernel)
    assert start["count"] == 2
    assert start["history"] == [["create table", "notes"]]

    rerun_model_cell(kernel)  # unchanged: a no-op
    rerun_model_cell(kernel)
    assert probe(kernel) == start

    additive = kernel.nb.cells[MODEL_CELL].source.replace(
        "    text: str\n", "    text: str\n    stars: Optional[int] = None\n"
    )
    rerun_model_cell(kernel, additive)  # changed, additive: migrated and logged
    after_add = probe(kernel)
    assert after_add["count"] == 2
    assert "stars" in after_add["fields"]
    assert after_add["nodes"] == start["nodes"]  # regenerated, never duplicated
    assert after_add["history"][-1] == ["add column", "stars"]
    execute(kernel, 'run("NoteCreateNode", {"text": "third", "stars": 5})')

    original = kernel.nb.cells[MODEL_CELL].source.replace("    stars: Optional[int] = None\n", "")
    with pytest.raises(nbclient.exceptions.CellExecutionError) as info:
        rerun_model_cell(kernel, original)  # changed destructively: refused with the plan
    assert "SchemaError" in str(info.value)
    assert "ALTER TABLE notes DROP COLUMN stars" in str(info.value)
    refused = probe(kernel)
    assert refused["count"] == 3 and "stars" in refused["fields"]
    assert refused["history"] == after_add["history"]

    printed = execute(kernel, 'print(db.migrate("Note", allow_destructive=True)["operation"].to_list())')
    assert printed.strip() == "['drop column']"
    final = probe(kernel)
    assert final["count"] == 3
    assert "stars" not in final["fields"]
    assert final["history"][-1] == ["drop column", "stars"]
    assert final["nodes"] == start["nodes"]
