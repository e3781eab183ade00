"""Every import the docs, the notebooks, the benchmarks and the seed's examples show works as written.

The seed (``tests/integration/seed_concepts.md``) imports from ``kailash_dataflow`` and
``kailash.*``; dataflow_nb offers the same names from ``dataflow_nb`` itself, so each seed import
is checked with its module read as ``dataflow_nb``. Its Django block is a counter-example.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "integration" / "seed_concepts.md"
SEED_MODULES = ("kailash_dataflow", "kailash")
NOT_OURS = ("django",)  # the seed's counter-example


def _blocks(path: Path) -> list[str]:
    if path.suffix == ".py":
        return [path.read_text()]
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def _imports(path: Path) -> list[tuple[str, str, str | None]]:
    """(where, module, name or None) for every import statement in the file's code."""
    found = []
    for number, block in enumerate(_blocks(path)):
        lines = [line for line in block.splitlines() if not line.lstrip().startswith(("%", "!"))]
        tree = ast.parse("\n".join(lines))
        where = f"{path.relative_to(ROOT)} block {number}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(where, alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found += [(where, node.module, alias.name) for alias in node.names]
    return found


def _sources() -> list[Path]:
    docs = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    scripts = sorted((ROOT / "benchmarks").glob("*.py"))
    return [*docs, *sorted((ROOT / "notebooks").glob("*.ipynb")), *scripts, SEED]


IMPORTS = [i for path in _sources() for i in _imports(path)]


def test_the_sources_were_read() -> None:
    modules = {module for _, module, _ in IMPORTS}
    assert "dataflow_nb" in modules and "kailash.nodes.data" in modules
    assert len(IMPORTS) > 40


@pytest.mark.parametrize(("where", "module", "name"), IMPORTS, ids=[f"{w}: {m}.{n}" for w, m, n in IMPORTS])
def test_every_import_shown_works(where: str, module: str, name: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # a benchmark imports its sibling helpers
    if module.split(".")[0] in NOT_OURS:
        return
    if module.split(".")[0] in SEED_MODULES:
        module = "dataflow_nb"  # the seed's spelling: the same names, from dataflow_nb
        assert name is not None, f"{where}: the seed imports a module, not a name"
    imported = importlib.import_module(module)
    if name is not None and name != "*":
        assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}") is not None, (
            f"{where}: from {module} import {name} fails"
        )
