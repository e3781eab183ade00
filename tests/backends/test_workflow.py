"""Workflows: build checks, one transaction per run, rollback on failure, callables, timings."""

from __future__ import annotations

import asyncio
import re
import warnings
from typing import Any

import polars as pl
import pytest

from dataflow_nb import (
    DataFlow,
    DataflowWarning,
    LocalRuntime,
    RunResults,
    ValidationError,
    WorkflowBuilder,
    WorkflowError,
)
from tests.conftest import model_fixtures, shared


def add_notes(db: Any) -> Any:
    @db.model
    class Note:
        text: str
        stars: int = 0

    return Note


notes, class_notes = model_fixtures("notes", add_notes)


def count_rows(db: Any) -> int:
    workflow = WorkflowBuilder()
    workflow.add_node(db.nodes["NoteCountNode"], "count", {})
    results, _ = LocalRuntime().execute(workflow.build())
    return int(results["count"])


def table_names(db: Any) -> list[str]:
    connection = db.backend.connect()
    try:
        table = connection.execute_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1"
        )
        # The run history's tables appear with the first run: bookkeeping, not what a run created.
        return [t for t in table.column(0).to_pylist() if not t.startswith("dataflow_nb_run")]
    finally:
        connection.close()


def test_results_map_node_ids_and_carry_timings(notes: Any) -> None:
    workflow = WorkflowBuilder()
    workflow.add_node("NoteCreateNode", "first", {"text": "a"})
    workflow.add_node("NoteCreateNode", "second", {"text": "b", "stars": 2})
    workflow.add_node("NoteListNode", "all", {"order_by": "-stars"})
    results, run_id = LocalRuntime().execute(workflow.build())
    assert isinstance(results, RunResults)
    assert results.run_id == run_id and len(run_id) == 32
    assert results["all"]["text"].to_list() == ["b", "a"]
    assert 0 < results["execution_time"] < 60
    timings = results.timings
    assert timings["node_id"].to_list() == ["first", "second", "all"]
    assert timings["node_type"].to_list() == ["NoteCreateNode", "NoteCreateNode", "NoteListNode"]
    assert timings["seconds"].sum() <= results["execution_time"]
    assert "<table>" in results._repr_html_()


def test_a_failing_last_node_rolls_back_every_write(db: Any, notes: Any) -> None:
    workflow = WorkflowBuilder()
    workflow.add_node("NoteCreateNode", "kept", {"text": "committed before"})
    LocalRuntime().execute(workflow.build())
    tables_before = table_names(db)

    def explode(data: Any) -> Any:
        raise RuntimeError("boom")

    workflow = WorkflowBuilder()
    workflow.add_node("NoteCreateNode", "a", {"text": "a"})
    workflow.add_node("NoteUpdateNode", "b", {"id": 1, "text": "changed"})
    workflow.add_node("NoteDeleteNode", "c", {"id": 1})
    workflow.add_node(explode, "last")
    workflow.add_connection("a", "data", "last", "data")
    with pytest.raises(WorkflowError) as info:
        LocalRuntime().execute(workflow.build())
    assert info.value.node_id == "last"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "rolled back" in str(info.value)
    assert count_rows(db) == 1
    workflow = WorkflowBuilder()
    workflow.add_node("NoteReadNode", "r", {"id": 1})
    results, _ = LocalRuntime().execute(workflow.build())
    assert results["r"]["text"].to_list() == ["committed before"]
    assert table_names(db) == tables_before


def scratch_table_node(db: Any) -> Any:
    """A node class that creates a table inside the run's transaction."""
    from dataflow_nb.nodes.base import Node

    class CreateScratchTable(Node):
        node_type = "CreateScratchTable"

        def run(self, ctx: Any, params: dict[str, Any]) -> int:
            ctx.connection(db).execute_sql("CREATE TABLE scratch (x BIGINT)")
            return 1

    return CreateScratchTable


def test_a_failing_node_after_ddl_rolls_the_ddl_back(db: Any, notes: Any) -> None:
    def fail(**_: Any) -> None:
        raise RuntimeError("after ddl")

    before = table_names(db)
    workflow = WorkflowBuilder()
    workflow.add_node(scratch_table_node(db), "ddl")
    workflow.add_node(fail, "fail")
    workflow.add_connection("ddl", "data", "fail", "data")
    with pytest.raises(WorkflowError, match="after ddl"):
        LocalRuntime().execute(workflow.build())
    assert "scratch" not in table_names(db)
    assert table_names(db) == before


def test_outputs_flow_through_connections(notes: Any) -> None:
    workflow = WorkflowBuilder()
    workflow.add_node("NoteCreateNode", "create", {"text": "hello", "stars": 3})
    workflow.add_node("NoteReadNode", "read", {})
    workflow.add_connection("create", "id", "read", "id")
    workflow.add_node(lambda data: data.with_columns(pl.col("stars") * 2), "double")
    workflow.add_connection("read", "data", "double", "data")
    results, _ = LocalRuntime().execute(workflow.build())
    assert results["double"]["stars"].to_list() == [6]


def test_parameters_override_node_params(notes: Any) -> None:
    workflow = WorkflowBuilder()
    workflow.add_node("NoteCreateNode", "create", {"text": "default"})
    results, _ = LocalRuntime().execute(workflow.build(), parameters={"create": {"text": "override"}})
    assert results["create"]["text"].to_list() == ["override"]


def test_execute_works_inside_a_running_event_loop(notes: Any) -> None:
    async def in_kernel() -> Any:
        workflow = WorkflowBuilder()
        workflow.add_node("NoteCreateNode", "create", {"text": "from a loop"})
        return LocalRuntime().execute(workflow.build())

    results, _ = asyncio.run(in_kernel())
    assert results["create"]["text"].to_list() == ["from a loop"]


class TestBuildRefusals:
    """Workflows refused when built, before anything runs: the class shares one Note table per database."""

    db = shared("db")

    notes = shared("notes")

    def test_build_rejects_unknown_types_with_the_closest_name(self, notes: Any) -> None:
        workflow = WorkflowBuilder()
        workflow.add_node("NoteCreatNode", "x", {"text": "a"})
        with pytest.raises(WorkflowError, match="did you mean 'NoteCreateNode'"):
            workflow.build()

    def test_build_rejects_duplicate_ids(self, notes: Any) -> None:
        workflow = WorkflowBuilder()
        workflow.add_node("NoteCreateNode", "x", {"text": "a"})
        workflow.add_node("NoteCreateNode", "x", {"text": "b"})
        with pytest.raises(WorkflowError, match="duplicate node id 'x'"):
            workflow.build()

    def test_build_rejects_cycles(self, notes: Any) -> None:
        workflow = WorkflowBuilder()
        workflow.add_node(lambda data=None: data, "a")
        workflow.add_node(lambda data=None: data, "b")
        workflow.add_connection("a", "data", "b", "data")
        workflow.add_connection("b", "data", "a", "data")
        with pytest.raises(WorkflowError, match="cycle"):
            workflow.build()

    def test_build_rejects_connections_to_unknown_nodes(self, notes: Any) -> None:
        workflow = WorkflowBuilder()
        workflow.add_node("NoteCreateNode", "a", {"text": "a"})
        workflow.add_connection("a", "id", "ghost", "id")
        with pytest.raises(WorkflowError, match="unknown node 'ghost'"):
            workflow.build()

    def test_build_checks_parameters_before_anything_runs(self, db: Any, notes: Any) -> None:
        workflow = WorkflowBuilder()
        workflow.add_node("NoteCreateNode", "a", {"text": "a"})
        workflow.add_node("NoteCreateNode", "b", {"txt": "typo"})
        with pytest.raises(ValidationError, match="did you mean 'text'"):
            workflow.build()
        assert count_rows(db) == 0


def test_same_model_in_two_live_dataflows_means_the_newest(db: Any, notes: Any) -> None:
    with DataFlow(name="other") as other:

        @other.model
        class Note:
            text: str

        workflow = WorkflowBuilder()
        workflow.add_node("NoteCreateNode", "x", {"text": "in other"})
        expected = (
            rf"using the newest, 'other' \({re.escape(other.backend.safe_url)}\)\. To use an older one instead: "
            rf"'{db.name}' .*write '{db.name}\.NoteCreateNode' or pass <that DataFlow>\.nodes\['NoteCreateNode'\]"
        )
        with pytest.warns(DataflowWarning, match=expected):
            built = workflow.build()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # one warning per name, not one per build
            built = workflow.build()
        qualified = WorkflowBuilder()
        qualified.add_node(f"{db.name}.NoteCreateNode", "y", {"text": "in db"})
        qualified.add_node(db.nodes["NoteCreateNode"], "z", {"text": "in db too"})
        LocalRuntime().execute(qualified.build())
        assert LocalRuntime().execute(built)[0]["x"]["text"].to_list() == ["in other"]
    assert count_rows(db) == 2
    # Closing ``other`` withdrew its nodes: the bare name means db again, with no warning.
    again = WorkflowBuilder()
    again.add_node("NoteCreateNode", "x", {"text": "back in db"})
    LocalRuntime().execute(again.build())
    assert count_rows(db) == 3


def test_one_connection_per_database_per_run(db: Any, notes: Any) -> None:
    # The run history's own short transaction (a "running" row, see test_run_history.py) is not the run's.
    db.history.record = False
    seen: list[int] = []
    original = db.backend.connect

    def counting_connect() -> Any:
        connection = original()
        seen.append(id(connection))
        return connection

    db.backend.connect = counting_connect
    try:
        workflow = WorkflowBuilder()
        for i in range(5):
            workflow.add_node("NoteCreateNode", f"n{i}", {"text": str(i)})
        workflow.add_node("NoteCountNode", "count", {})
        results, _ = LocalRuntime().execute(workflow.build())
    finally:
        del db.backend.connect
    assert results["count"] == 5
    assert len(seen) == 1
