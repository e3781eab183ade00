"""Package hygiene: lazy driver imports, doctests, lint and types."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dataflow_nb

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_package_imports_no_driver() -> None:
    code = (
        "import sys, dataflow_nb, dataflow_nb.query, dataflow_nb.cache;"
        "loaded = [m for m in ('duckdb', 'adbc_driver_postgresql', 'redis', 'prometheus_client', 'ipywidgets')"
        " if m in sys.modules]; print(loaded)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


MODULES = [m.name for m in pkgutil.walk_packages(dataflow_nb.__path__, "dataflow_nb.")]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert failures == 0


def _tool(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else (shutil.which(name) or name)


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "dataflow_nb", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # runs mypy --strict on the package
def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([_tool("mypy"), "dataflow_nb"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
