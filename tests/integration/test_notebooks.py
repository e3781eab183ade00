"""Every notebook in notebooks/ runs top to bottom in a real kernel, on DuckDB and on PostgreSQL.

The notebook is not changed: ``DATABASE_URL`` in the kernel's environment chooses the database
(unset: an in-memory DuckDB; PostgreSQL: the test's own schema through its search_path). The
kernel runs this interpreter, so CI uses the project's virtualenv whatever kernels the machine
has; its working folder is a temporary one, so files a notebook writes go nowhere else. A
notebook added to the folder is picked up by the next run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.kernel import open_kernel

if TYPE_CHECKING:
    import nbformat

pytestmark = pytest.mark.slow  # every notebook executed in a real kernel

FOLDER = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
NUMBERED = [p for p in NOTEBOOKS if p.name[:2].isdigit()]  # 01-04: the tour, which shares tables and history


def run_notebook(path: Path, database_url: str | None, folder: Path, *, times: int = 1) -> nbformat.NotebookNode:
    """Execute every cell of ``path`` ``times`` times over (Run All, again) in a fresh kernel working
    in ``folder``; return the executed notebook (the outputs of the last pass)."""
    import nbformat  # here, not at the top: importing it costs every collection 1-3 s

    notebook = nbformat.read(path, as_version=4)
    with open_kernel(notebook, folder, database_url=database_url) as client:
        for _ in range(times):
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
    return notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_end_to_end(path: Path, backend_url: str | None, tmp_path: Path) -> None:
    import nbformat

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


def test_the_tour_runs_twice_in_a_row_then_in_reverse_on_one_database(backend_url: str | None, tmp_path: Path) -> None:
    """One database for every notebook, as with DATABASE_URL set once: PostgreSQL (the test's
    schema) or a DuckDB file. Each notebook runs twice in its kernel (every cell run again, the
    load cells included), in order; then all of them again, newest first, each on what the others
    left. Nothing is written next to the notebooks or into the kernel's working folder."""
    url = backend_url or f"duckdb:///{tmp_path / 'shared.duckdb'}"
    before = sorted(p.name for p in FOLDER.iterdir())
    printed: dict[str, str] = {}
    for turn, (path, times) in enumerate([*((p, 2) for p in NUMBERED), *((p, 1) for p in reversed(NUMBERED))]):
        folder = tmp_path / f"turn-{turn}"
        executed = run_notebook(path, url, folder, times=times)  # raises CellExecutionError naming the cell
        assert sorted(p.name for p in folder.iterdir()) == ["kernels"], f"{path.name} wrote into its folder"
        printed[path.stem] = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert sorted(p.name for p in FOLDER.iterdir()) == before
    no_postgres = "No PostgreSQL here" in printed["03-duckdb-to-postgres"]
    assert no_postgres == (backend_url is None)  # notebook 03 says when it only compared DuckDB with DuckDB
