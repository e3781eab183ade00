"""The run's context keeps connections, scope, run id and observers; the security layer asks nodes
what it needs to know instead of testing their kind (issue 23)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from dataflow_nb import DataFlow, WorkflowBuilder
from dataflow_nb.protocols import NodeEnd, RunObserver, Statement
from dataflow_nb.query.scope import Scope
from dataflow_nb.workflow.context import RunContext, hearing

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
        "_starting",  # those of the observers with an on_node_start: a hook that does nothing is not called
        "_ending",  # ... with an on_node_end
    }


class Heard(RunObserver):
    """Hears nodes starting and statements; its other hooks are RunObserver's, which do nothing."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    def on_node_start(self, run: Any, node_id: str, node: Any, params: Any) -> None:
        self.heard.append(f"start {node_id}")

    def on_statement(self, run: Any, db: Any, statement: Statement) -> None:
        self.heard.append(f"statement {statement.rows}")


class HeardToo(Heard):
    """An override inherited from a parent class counts as the observer's own."""


def test_a_run_calls_only_the_hooks_an_observer_has() -> None:
    heard, inherited, quiet = Heard(), HeardToo(), RunObserver()
    assert hearing((heard, quiet, inherited), "on_node_start") == (heard, inherited)
    assert hearing((heard, quiet, inherited), "on_node_end") == ()


def test_an_observer_hears_each_node_and_statement_of_a_run() -> None:
    db = DataFlow("duckdb://", run_history=False)
    try:

        @db.model
        class Note:
            text: str

        heard, ended = Heard(), []

        class Ends(RunObserver):
            def on_node_end(self, run: Any, end: NodeEnd) -> None:
                ended.append((end.node_id, end.status, end.output.height))

        workflow = WorkflowBuilder()
        workflow.add_node("NoteCreateNode", "create", {"text": "a"})
        workflow.add_node("NoteListNode", "list", {})
        built = workflow.build()
        ctx = RunContext("run-1", Scope(), observers=(heard, Ends()))
        for node_id in built.order:
            spec = built.nodes[node_id]
            ctx.start_node(node_id, spec.node, spec.params)
            output = spec.node.run(ctx, dict(spec.params))
            ctx.end_node(spec.node, spec.params, output)
        ctx.commit()
        ctx.release()
    finally:
        db.close()
    assert heard.heard == ["start create", "statement 1", "start list", "statement 1"]
    assert ended == [("create", "ok", 1), ("list", "ok", 1)]


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
