"""Every notebook in notebooks/ runs top to bottom in a real kernel, on DuckDB and on PostgreSQL.

The notebook is not changed: ``DATABASE_URL`` in the kernel's environment chooses the database
(unset: an in-memory DuckDB; PostgreSQL: the test's own schema through its search_path). The
kernel runs this interpreter, so CI uses the project's virtualenv whatever kernels the machine
has; its working folder is a temporary one, so files a notebook writes go nowhere else. A
notebook added to the folder is picked up by the next run.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tests.integration.kernel import open_kernel

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def run_notebook(path: Path, database_url: str | None, folder: Path) -> nbformat.NotebookNode:
    """Execute every cell of ``path`` in a fresh kernel working in ``folder``; return the executed notebook."""
    notebook = nbformat.read(path, as_version=4)
    with open_kernel(notebook, folder, database_url=database_url) as client:
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
    return notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_end_to_end(path: Path, backend_url: str | None, tmp_path: Path) -> None:
    stored = nbformat.read(path, as_version=4)
    code_cells = [c for c in stored.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code_cells), (
        f"{path.name} is stored with outputs; clear them before committing"
    )
    executed = run_notebook(path, backend_url, tmp_path)  # raises CellExecutionError naming the cell
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    if backend_url is not None:  # it really ran on PostgreSQL: its tables are in the test's schema
        assert tables_in_schema(backend_url), f"{path.name} left no table in {backend_url}: DATABASE_URL was ignored"


def tables_in_schema(url: str) -> list[str]:
    import adbc_driver_postgresql.dbapi

    with adbc_driver_postgresql.dbapi.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        return [row[0] for row in cursor.fetchall()]
