"""The run's context keeps connections, scope, run id and observers; the security layer asks nodes
what it needs to know instead of testing their kind (issue 23)."""

from __future__ import annotations

import ast
from pathlib import Path

from dataflow_nb.workflow.context import RunContext

PACKAGE = Path(__file__).resolve().parents[2] / "dataflow_nb"
NODE_KINDS = ("dataflow_nb.nodes.sql", "dataflow_nb.nodes.bulk", "dataflow_nb.nodes.read", "dataflow_nb.nodes.write")


def test_the_run_context_keeps_connections_scope_run_id_and_observers() -> None:
    assert set(RunContext.__slots__) == {
        "run_id",
        "scope",
        "node_id",
        "links",  # one per database: its connection, route, and the tables the run wrote there
        "commit_sent",
        "writers",  # which databases a run may read from a replica: chosen at connect
        "observers",
    }


def test_the_security_layer_imports_no_kind_of_node() -> None:
    found = []
    for path in sorted((PACKAGE / "security").glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in NODE_KINDS:
                found.append(f"{path.name}:{node.lineno} imports {node.module}")
            if isinstance(node, ast.Name) and node.id.endswith("QueryNode"):
                found.append(f"{path.name}:{node.lineno} names {node.id}")
    assert found == []
