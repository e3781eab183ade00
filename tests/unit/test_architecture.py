"""Every DuckDB/PostgreSQL difference lives in ``dataflow_nb/backends/``.

Outside it no module imports a database driver or SQLAlchemy's per-database dialects, and none
names a backend to branch on it (``if backend == "duckdb"``): what differs is a capability, a
backend method or a compile rule. A new backend is new modules under ``backends/``, nothing else.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dataflow_nb"
BACKENDS = PACKAGE / "backends"
DRIVERS = ("duckdb", "adbc_driver_manager", "adbc_driver_postgresql", "pglast", "psycopg", "psycopg2", "asyncpg")
DIALECTS = "sqlalchemy.dialects"
BACKEND_NAMES = {"duckdb", "postgres", "postgresql"}


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the string constants that are docstrings (they may name databases: they explain)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def violations(source: str, where: str) -> list[str]:
    tree = ast.parse(source, where)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        found += [
            f"{where}:{node.lineno} imports {module}"
            for module in modules
            if module.split(".")[0] in DRIVERS or module.startswith(DIALECTS)
        ]
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.lower() in BACKEND_NAMES
            and id(node) not in docstrings
        ):
            found.append(f"{where}:{node.lineno} names the backend {node.value!r}")
    return found


def test_no_module_outside_backends_names_a_backend_or_imports_a_driver() -> None:
    modules = [p for p in sorted(PACKAGE.rglob("*.py")) if BACKENDS not in p.parents]
    assert len(modules) > 30  # the walk found the package
    found = [v for p in modules for v in violations(p.read_text(), str(p.relative_to(PACKAGE.parent)))]
    assert found == [], "backend differences belong in dataflow_nb/backends/:\n" + "\n".join(found)


def test_the_check_catches_a_branch_and_a_driver_import() -> None:
    source = (
        '"""Mentions duckdb in a docstring, which is allowed."""\n'
        "import duckdb\n"
        "from sqlalchemy.dialects.postgresql import insert\n"
        "def f(db):\n"
        "    return db.backend.capabilities.name == 'duckdb'\n"
    )
    assert violations(source, "probe.py") == [
        "probe.py:2 imports duckdb",
        "probe.py:3 imports sqlalchemy.dialects.postgresql",
        "probe.py:5 names the backend 'duckdb'",
    ]
