"""What a notebook shows for a run's results, a bulk report, the monitor and a DataFlow: HTML,
and the same in plain text where HTML is not rendered."""

from __future__ import annotations

from IPython.lib.pretty import pretty

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder


def test_results_report_monitor_and_dataflow_show_html_and_plain_text(backend_url: str | None) -> None:
    with DataFlow(backend_url, monitoring=True) as db:
        db.model(type("Note", (), {"__annotations__": {"text": str, "stars": int}}))
        workflow = WorkflowBuilder()
        workflow.add_node("NoteBulkCreateNode", "load", {"data": [{"text": f"n{i}", "stars": i} for i in range(40)]})
        workflow.add_node("NoteListNode", "all", {"order_by": "stars"})
        workflow.add_node("NoteCountNode", "count", {})
        workflow.add_connection("load", "rows_written", "all", "limit")
        results, run_id = LocalRuntime().execute(workflow.build())

        page = results._repr_html_()
        assert run_id in page and "NoteBulkCreateNode" in page
        assert "rows_written" in page  # the bulk report's own HTML
        assert "n0" in page and "n39" in page and "n20" not in page  # the frame, truncated as polars does
        assert "<code>count</code>" in page and "40" in page
        text = pretty(results)
        assert text.startswith(f"Run {run_id}") and "load (NoteBulkCreateNode): ok" in text
        assert "shape: (40, 5)" in text and "rows_written: 40" in text

        report = results["load"]
        assert pretty(report).startswith("NoteBulkCreateNode on Note") and "inserted: 40" in pretty(report)

        monitor = db.get_monitor()
        assert "<caption>Monitor</caption>" in monitor._repr_html_()
        assert pretty(monitor).startswith("Monitor") and "runs" in pretty(monitor)

        assert "<td>notes</td><td>40</td>" in db._repr_html_()
        assert "Note: table notes, 40 rows" in pretty(db) and "stars: int" in pretty(db)
        assert "dataflow_nb_runs" not in db._repr_html_()  # the history is no model


def test_a_model_shows_its_table_and_fields_not_its_internals(db: DataFlow) -> None:
    @db.model
    class Member:
        name: str
        nickname: str | None
        level: int = 1

        __dataflow__ = {"unique": [["name"]]}

    spec = db.models["Member"]
    assert repr(spec) == (
        "ModelSpec('Member', table 'members': id: int, name: str, nickname: Optional[str], level: int, "
        "created_at: datetime, updated_at: datetime)"
    )
    assert repr(spec.fields["level"]) == "Field('level': int; default 1)"
    shown = spec._repr_html_()
    assert "<td>nickname</td><td>Optional[str]</td>" in shown and "<td>id</td><td>int</td><td>generated</td>" in shown
    assert "unique" in shown and "function" not in shown
