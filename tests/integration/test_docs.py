"""Every python block in docs/*.md runs, top to bottom, one namespace per page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dataflow_nb import DataFlow

DOCS = sorted((Path(__file__).resolve().parents[2] / "docs").glob("*.md"))
# What a page leaves to the reader, supplied here (and nothing else).
PRELUDES = {"cache.md": "def get_active_users():\n    return [{'name': 'Ada'}]\n"}


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_page_examples_run(page: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    assert blocks, f"{page.name} has no python examples"
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    try:
        exec(compile(PRELUDES.get(page.name, "") + "\n".join(blocks), str(page), "exec"), namespace)  # noqa: S102
    finally:
        if "cache" in namespace:  # leave no entry behind for the next test to find
            namespace["cache"].invalidate("active_users")
            namespace["cache"].close()
        for value in namespace.values():
            if isinstance(value, DataFlow):
                value.close()
