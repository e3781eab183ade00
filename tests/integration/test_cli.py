"""The ``dataflow-nb demo`` command runs a real workflow on the embedded DuckDB and prints the frame."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_demo_prints_the_resulting_frame() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dataflow_nb.cli", "demo"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={"PATH": "/usr/bin:/bin", "DATAFLOW_PROGRESS": "0"},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "dataflow_nb demo on duckdb:///:memory:" in out
    assert "4 users stored" in out
    lines = [line for line in out.splitlines() if "@example.com" in line]
    assert [line.split("┆")[1].strip() for line in lines] == ["Alice", "Dana"]
    assert done.stderr == ""


def test_demo_on_a_duckdb_file(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'demo.duckdb'}"
    done = subprocess.run(
        [sys.executable, "-m", "dataflow_nb.cli", "demo", "--url", url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "demo.duckdb").exists()


def test_unknown_command_fails_with_usage() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dataflow_nb.cli", "dance"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 2
    assert "invalid choice: 'dance'" in done.stderr


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"]])
def test_help(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dataflow_nb.cli", *argv], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0
    assert "demo" in done.stdout
