"""The seed's examples (``seed_concepts.md``, copied verbatim) run as written, imports changed.

Each program is one or more of the document's python blocks, run in one namespace; a prelude
only supplies what the document leaves to the reader (an import, or ``get_active_users``).
The Django block is the document's counter-example and is not ours to run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dataflow_nb import DataFlow, DataflowError
from tests.conftest import unavailable

SEED = Path(__file__).with_name("seed_concepts.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", SEED, re.S)
# The seed's spelling, module for module: every name it imports comes from dataflow_nb itself.
IMPORTS = {
    "from kailash_dataflow import DataFlow": "from dataflow_nb import DataFlow",
    "from kailash.workflow.builder import WorkflowBuilder": "from dataflow_nb import WorkflowBuilder",
    "from kailash.runtime.local import LocalRuntime": "from dataflow_nb import LocalRuntime",
    "from kailash.nodes.data import create_query_builder": "from dataflow_nb import create_query_builder",
    "from kailash.nodes.data import create_query_cache": "from dataflow_nb import create_query_cache",
}


_opened: list[dict[str, Any]] = []


@pytest.fixture(autouse=True)
def close_databases() -> Any:
    """Close every DataFlow a program made, as a reader's kernel would at shutdown."""
    yield
    while _opened:
        for value in _opened.pop().values():
            if isinstance(value, DataFlow):
                value.close()


def run_blocks(*indexes: int, prelude: str = "") -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    _opened.append(namespace)
    source = prelude + "\n" + "\n".join(BLOCKS[i] for i in indexes)
    for old, new in IMPORTS.items():
        source = source.replace(old, new)
    assert "kailash" not in source
    exec(compile(source, f"seed blocks {indexes}", "exec"), namespace)  # noqa: S102 - the point of the test
    return namespace


def test_the_document_has_the_blocks_this_test_expects() -> None:
    assert len(BLOCKS) == 13
    assert "django" in BLOCKS[6]


def test_models_and_workflow_integration() -> None:
    ns = run_blocks(0, 1)
    assert ns["results"]["create_user"]["email"].to_list() == ["alice@example.com"]
    assert ns["results"]["list_users"]["name"].to_list() == ["Alice"]
    assert len(ns["run_id"]) == 32


def test_query_builder() -> None:
    ns = run_blocks(2)
    assert ns["sql"] == (
        "SELECT users.name, users.email, users.created_at FROM users "
        "WHERE users.age > $1::BIGINT AND users.status = $2::TEXT"
    )
    assert ns["params"] == [18, "active"]


def test_caching_layer() -> None:
    prelude = (
        "calls = []\n"
        "def get_active_users():\n    calls.append(1)\n    return [{'name': 'Alice'}]\n"
        "from dataflow_nb.cache import create_query_cache as _fresh\n"
        "_fresh('redis://localhost:6379').invalidate('active_users')\n"  # a clean start, as in a new kernel
    )
    try:
        ns = run_blocks(3, prelude=prelude)
    except DataflowError as exc:
        unavailable(f"Redis at localhost:6379 is not reachable: {exc}")
    cache = ns["cache"]
    try:
        assert ns["cached_result"] == [{"name": "Alice"}]
        again = cache.get_or_execute(key="active_users", query_func=ns["get_active_users"], ttl=300)
        assert again == [{"name": "Alice"}]
        assert ns["calls"] == [1]
    finally:
        cache.invalidate("active_users")
        cache.close()


def test_multi_tenancy() -> None:
    ns = run_blocks(4, prelude="from dataflow_nb import DataFlow")
    assert "tenant_id" in ns["db"].models["Customer"].fields


def test_monitoring() -> None:
    ns = run_blocks(5, prelude="from dataflow_nb import DataFlow")
    assert ns["metrics"]["queries"] == 0
    assert ns["health"]["status"] == "healthy"


def test_dataflow_approach_and_development_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    prelude = "from dataflow_nb import WorkflowBuilder, LocalRuntime\nworkflow = WorkflowBuilder()"
    ns = run_blocks(7, 8, 9, 10, prelude=prelude)
    assert ns["results"]["create_product"]["price"].to_list() == [999.99]
    assert ns["results"]["create_user"]["name"].to_list() == ["Alice"]
    assert f"Workflow {ns['run_id']} completed in" in capsys.readouterr().out


def test_configuration() -> None:
    assert "db" in run_blocks(11, prelude="from dataflow_nb import DataFlow")
    with pytest.raises(DataflowError) as info:
        run_blocks(12, prelude="from dataflow_nb import DataFlow")
    assert ":pass@" not in str(info.value)
