"""SQLQueryNode: named parameters, one statement, the run's transaction, the same frames."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from dataflow_nb import DataFlow, LocalRuntime, ValidationError, WorkflowBuilder, WorkflowError
from dataflow_nb.nodes import sql as sql_node
from tests.conftest import shared


def add_notes(db: DataFlow, run: Any) -> DataFlow:
    @db.model
    class Note:
        title: str
        stars: int | None = None
        price: Decimal | None = None
        key: uuid.UUID | None = None

    for title, stars, price in [("a:b", 1, Decimal("1.50")), ("it's", 5, None), ("x;y", None, Decimal("2"))]:
        run("NoteCreateNode", {"title": title, "stars": stars, "price": price, "key": uuid.UUID(int=stars or 0)})
    return db


@pytest.fixture
def notes(db: DataFlow, run: Any) -> DataFlow:
    return add_notes(db, run)


def query(db: DataFlow, sql: str, params: dict[str, Any] | None = None) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node("SQLQueryNode", "q", {"sql": sql, "params": params or {}, "db": db})
    return LocalRuntime().execute(workflow.build())[0]["q"]


@pytest.fixture(scope="class")
def class_notes(class_db: DataFlow, class_run: Any) -> DataFlow:
    return add_notes(class_db, class_run)


class TestOnThreeNotes:
    """Reads, and refusals rolled back, of three notes written once for the class (``notes`` here)."""

    notes = shared("notes")

    run = shared("run")

    def test_named_parameters_in_natural_types(self, notes: DataFlow) -> None:
        frame = query(
            notes,
            "SELECT title, stars, price, key, created_at FROM notes "
            "WHERE (stars >= :min OR stars IS NULL) AND title IN :titles AND created_at < :later "
            "AND coalesce(price, :zero) < :max AND key IS DISTINCT FROM :other ORDER BY title",
            {
                "min": 2,
                "titles": ["it's", "x;y", "nope"],
                "later": dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                "zero": Decimal("0"),
                "max": Decimal("10.5"),
                "other": uuid.UUID(int=99),
            },
        )
        assert frame["title"].to_list() == ["it's", "x;y"]
        assert frame.schema["stars"] == pl.Int64
        assert frame.schema["price"] == pl.Decimal(38, 9)
        assert frame.schema["key"] == pl.String  # UUID columns come back as their text on both databases
        assert frame.schema["created_at"] == pl.Datetime("us", "UTC")
        assert frame["key"].to_list() == [str(uuid.UUID(int=5)), str(uuid.UUID(int=0))]

    def test_literals_comments_and_casts_are_not_parameters(self, notes: DataFlow) -> None:
        frame = query(
            notes,
            "SELECT title, ':not_a_param' AS text, CAST(:n AS BIGINT)::TEXT AS cast -- a ; comment :x\n"
            "FROM notes /* ; :y */ WHERE title = :title;",
            {"n": 7, "title": "a:b"},
        )
        assert frame.to_dicts() == [{"title": "a:b", "text": ":not_a_param", "cast": "7"}]
        assert query(notes, "SELECT count(*) AS n FROM notes WHERE title = 'it''s'").to_dicts() == [{"n": 1}]

    @pytest.mark.parametrize(
        ("sql", "params", "message"),
        [
            ("SELECT 1; DROP TABLE notes", {}, r"runs one statement, found 2"),
            ("SELECT 1 AS x; SELECT 2 AS y;", {}, r"runs one statement, found 2"),
            ("DELETE FROM notes; --", {}, None),  # one statement and a comment: allowed (and rolled back below)
            ("SELECT * FROM notes WHERE stars > $1", {}, r"positional parameter \$1 is not supported"),
            (
                "SELECT * FROM notes WHERE stars > :min",
                {},
                r"names parameters \['min'\] \(as :name\); missing \['min'\]",
            ),
            ("SELECT 1 AS x", {"extra": 1}, r"not in the SQL \['extra'\]"),
            ("COMMIT", {}, r"COMMIT is refused: the run owns the transaction"),
            ("SELECT 'open", {}, r"unterminated"),
            ("SELECT :v AS v", {"v": {"a": 1}}, r"parameter 'v' has type dict"),
            ("SELECT :v AS v", {"v": []}, r"parameter 'v' is an empty list"),
            ("SELECT :v AS v", {"v": Decimal("0.0000000001")}, r"parameter 'v'.*more than 9 decimal places"),
            ("", {}, r"sql takes the text of one SQL statement"),
        ],
    )
    def test_refusals_happen_before_anything_runs(
        self, notes: DataFlow, run: Any, sql: str, params: Any, message: str
    ) -> None:
        workflow = WorkflowBuilder()
        workflow.add_node("SQLQueryNode", "q", {"sql": sql, "params": params, "db": notes})
        workflow.add_node(lambda: 1 / 0, "fail")  # whatever ran is rolled back
        with pytest.raises((ValidationError, WorkflowError), match=message or "division by zero"):
            LocalRuntime().execute(workflow.build())
        assert run("NoteCountNode", {}) == 3


def test_it_runs_in_the_runs_transaction(notes: DataFlow, run: Any) -> None:
    workflow = WorkflowBuilder()
    workflow.add_node("NoteCreateNode", "new", {"title": "draft"})
    workflow.add_node(
        "SQLQueryNode", "seen", {"sql": "SELECT count(*) AS n FROM notes WHERE title = :t", "db": notes.name}
    )
    workflow.add_node("SQLQueryNode", "bump", {"sql": "UPDATE notes SET stars = 9 WHERE title = :t", "db": notes})
    results, _ = LocalRuntime().execute(
        workflow.build(), parameters={"seen": {"params": {"t": "draft"}}, "bump": {"params": {"t": "draft"}}}
    )
    assert results["seen"].to_dicts() == [{"n": 1}]  # sees the uncommitted create
    assert results["bump"].shape == (0, 0)  # no rows from a write, on both databases
    assert run("NoteListNode", {"filter": {"title": "draft"}})["stars"].to_list() == [9]

    failing = WorkflowBuilder()
    failing.add_node(
        "SQLQueryNode", "wipe", {"sql": "DELETE FROM notes WHERE stars > :s", "params": {"s": 0}, "db": notes}
    )
    failing.add_node(lambda: 1 / 0, "boom")
    with pytest.raises(WorkflowError, match="boom"):
        LocalRuntime().execute(failing.build())
    assert run("NoteCountNode", {}) == 4


def test_which_database(notes: DataFlow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql_node, "live_databases", lambda: [notes])
    workflow = WorkflowBuilder()
    workflow.add_node("SQLQueryNode", "q", {"sql": "SELECT count(*) AS n FROM notes"})
    assert LocalRuntime().execute(workflow.build())[0]["q"].to_dicts() == [{"n": 3}]

    with DataFlow(name="other_db") as other:
        monkeypatch.setattr(sql_node, "live_databases", lambda: [notes, other])
        with pytest.raises(ValidationError, match=r"2 DataFlow objects are open \(.*'other_db'.*say which with"):
            workflow.build()
        named = WorkflowBuilder()
        named.add_node("SQLQueryNode", "q", {"sql": "SELECT 1 AS one", "db": "other_db"})
        assert LocalRuntime().execute(named.build())[0]["q"].to_dicts() == [{"one": 1}]
        unknown = WorkflowBuilder()
        unknown.add_node("SQLQueryNode", "q", {"sql": "SELECT 1", "db": "nope"})
        with pytest.raises(ValidationError, match="no open DataFlow is named 'nope'; open ones: "):
            unknown.build()
