"""Bad input: each a clear error naming what was wrong, or stored verbatim; never executed."""

from __future__ import annotations

from typing import Any

import pytest

from dataflow_nb import LocalRuntime, ValidationError, WorkflowBuilder, WorkflowError
from tests.conftest import model_fixtures, shared


def add_people(db: Any) -> Any:
    @db.model
    class Person:
        name: str
        age: int
        score: float = 0.0

    return Person


people, class_people = model_fixtures("people", add_people)


def build(node: str, params: dict[str, Any]) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node(node, "n", params)
    return workflow.build()


class TestRefusedBeforeAnyWrite:
    """Refused before anything is written: the class shares one Person table per database."""

    people = shared("people")

    @pytest.mark.parametrize(
        ("node", "params", "message"),
        [
            (
                "PersonCreateNode",
                {"name": "a", "age": 1, "agee": 2},
                r"unknown field 'agee' \(did you mean 'age'\?\); "
                r"valid fields are \['name', 'age', 'score', 'created_at', 'updated_at'\]",
            ),
            ("PersonCreateNode", {"name": "a", "age": "ten"}, r"field 'age' expects int, got 'ten' of type str"),
            ("PersonCreateNode", {"name": "a", "age": True}, r"field 'age' expects int, got True of type bool"),
            (
                "PersonCreateNode",
                {"name": "a", "age": 2**63},
                r"field 'age': value 9223372036854775808 is outside the 64-bit integer range",
            ),
            ("PersonCreateNode", {"name": None, "age": 1}, r"field 'name' is not nullable"),
            ("PersonCreateNode", {"id": 5, "name": "a", "age": 1}, r"unknown field 'id'"),
            ("PersonListNode", {"filter": {"age; DROP TABLE people": 1}}, r"unknown field 'age; DROP TABLE people'"),
            ("PersonListNode", {"filter": {"age": {"$gt": "1 OR 1=1"}}}, r"field 'age' expects int, got '1 OR 1=1'"),
            ("PersonListNode", {"filter": {"age": {"$where": "1"}}}, r"unknown operator '\$where'"),
            ("PersonListNode", {"order_by": ["-age; DROP TABLE people"]}, r"unknown field 'age; DROP TABLE people'"),
            ("PersonListNode", {"fields": ["name", "password"]}, r"unknown field 'password'"),
            ("PersonListNode", {"limit": -1}, r"limit must be a non-negative int"),
            ("PersonListNode", {"filtr": {}}, r"unknown parameter\(s\) 'filtr' \(did you mean 'filter'\?\)"),
            ("PersonReadNode", {"id": "1 OR 1=1"}, r"'id' must be an int"),
            ("PersonUpdateNode", {"id": 1, "age": "x"}, r"field 'age' expects int"),
        ],
    )
    def test_bad_parameters_fail_at_build_naming_the_problem(
        self, people: Any, node: str, params: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ValidationError, match=message):
            build(node, params)

    def test_missing_required_fields_are_listed(self, people: Any) -> None:
        workflow = build("PersonCreateNode", {})
        with pytest.raises(
            WorkflowError, match=r"missing required field 'name' \(str\); missing required field 'age' \(int\)"
        ) as caught:
            LocalRuntime().execute(workflow)
        assert isinstance(caught.value.__cause__, ValidationError)


SQL_LOOKING = [
    "'; DROP TABLE people; --",
    "Robert'); DELETE FROM people WHERE ('1'='1",
    "$1",
    "%(name)s",
    ":name",
    "1 OR 1=1",
    "\\x00\\' OR 1=1 --",
]


class TestStoredVerbatim:
    """One Person table per database for the class, emptied after each test."""

    people = shared("people", empty=("Person",))

    @pytest.mark.parametrize("text", SQL_LOOKING)
    def test_sql_looking_values_are_stored_verbatim(self, people: Any, text: str) -> None:
        workflow = WorkflowBuilder()
        workflow.add_node("PersonCreateNode", "c", {"name": text, "age": 1})
        workflow.add_node("PersonListNode", "by_name", {"filter": {"name": text}})
        workflow.add_node("PersonCountNode", "count", {})
        results, _ = LocalRuntime().execute(workflow.build())
        assert results["c"]["name"].to_list() == [text]
        assert results["by_name"]["name"].to_list() == [text]
        assert results["count"] == 1
