"""A real Jupyter kernel for notebook tests, running this interpreter (so CI uses the project's
virtualenv, whatever kernels the machine has), and helpers that run cells as a person would.

nbclient and nbformat load in the functions: importing nbformat costs 1-3 s (jsonschema), which
every collection, ``-m "not slow"`` included, would pay for these slow tests."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def open_kernel(notebook: Any, cwd: Path, *, database_url: str | None = None) -> Iterator[Any]:
    """A notebook client with a started kernel; ``DATABASE_URL`` is ``database_url`` (or unset)."""
    import nbclient
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = cwd / "kernels" / "dataflow-test"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "dataflow", "language": "python"}))
    manager = KernelManager(
        kernel_name="dataflow-test", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])
    )
    client = nbclient.NotebookClient(notebook, km=manager, timeout=120, kernel_name="dataflow-test")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    with client.setup_kernel(env=env, cwd=str(cwd), cleanup_kc=True):
        yield client


def run_cell(client: Any, index: int, source: str | None = None) -> Any:
    """Run cell ``index`` (after replacing its source, as an edit would); return the cell."""
    cell = client.nb.cells[index]
    if source is not None:
        cell.source = source
    client.execute_cell(cell, index)
    return cell


def execute(client: Any, source: str) -> str:
    """Run ``source`` as a new cell; return what it printed."""
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    client.nb.cells.append(cell)
    client.execute_cell(cell, len(client.nb.cells) - 1)
    return printed(cell)


def printed(cell: Any, stream: str = "stdout") -> str:
    """What a cell wrote to ``stream`` (warnings go to stderr)."""
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream" and o["name"] == stream)
