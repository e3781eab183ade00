"""An injection corpus: in values it is stored and matched verbatim; anywhere else it is refused.

Every payload goes into every place a user's text reaches SQL: values (filters, creates,
SQLQueryNode parameters), field names, operators, order_by, group_by, aggregate names and
fields, and the query builder. Afterwards every table is intact.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest

from dataflow_nb import DataFlow, DataflowError, LocalRuntime, ValidationError, WorkflowBuilder
from dataflow_nb.query import create_query_builder

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
PAYLOADS = [
    "'; DROP TABLE accounts; --",
    "' OR '1'='1",
    '" OR "1"="1',
    "1 OR 1=1",
    "admin'--",
    "' UNION SELECT name, 1 FROM audits --",
    "Robert'); DROP TABLE audits;--",
    "1; DELETE FROM accounts",
    "%' OR 1=1 --",
    "\\'; DROP TABLE accounts; --",
    "$1",
    "$$; DROP TABLE accounts; $$",
    "$tag$ x $tag$",
    ":name",
    "::text",
    "?",
    "' || (SELECT current_user) || '",
    "'; SELECT pg_sleep(5); --",
    "/* comment */ name",
    "-- comment",
    "name) OR (1=1",
    "accounts.name",
    "(SELECT 1)",
    "*",
    "name DESC; DROP TABLE accounts",
    "E'\\x27'",
    "0x27",
    "%",
    "_",
    "\\",
    "'",
    '"',
    ";",
    "ñame",
    "name\nDROP TABLE accounts",
    "",
]


@pytest.fixture
def bank(db: DataFlow, run: Any) -> DataFlow:
    @db.model
    class Account:
        name: str
        balance: int
        note: str | None = None

    @db.model
    class Audit:
        event: str

    run("AccountCreateNode", {"name": "alice", "balance": 10})
    run("AuditCreateNode", {"event": "opened"})
    return db


def run_node(db: DataFlow, node: str, params: dict[str, Any]) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node(db.nodes.get(node, node), "n", params)
    return LocalRuntime().execute(workflow.build())[0]["n"]


def assert_intact(db: DataFlow, accounts: int) -> None:
    assert run_node(db, "AccountCountNode", {}) == accounts
    assert run_node(db, "AuditListNode", {})["event"].to_list() == ["opened"]
    assert run_node(db, "AccountListNode", {"filter": {"name": "alice"}})["balance"].to_list() == [10]


def refused(db: DataFlow, node: str, params: dict[str, Any]) -> None:
    with pytest.raises(DataflowError):
        run_node(db, node, params)


def test_corpus_is_large_enough() -> None:
    assert len(set(PAYLOADS)) >= 30


def test_values_are_stored_and_matched_verbatim(bank: DataFlow) -> None:
    for stored, payload in enumerate(PAYLOADS, start=2):
        created = run_node(bank, "AccountCreateNode", {"name": payload, "balance": 1, "note": payload})
        assert created["name"].to_list() == [payload]
        found = run_node(bank, "AccountListNode", {"filter": {"name": payload, "note": {"$in": [payload]}}})
        assert found["note"].to_list() == [payload]
        assert run_node(bank, "AccountCountNode", {"filter": {"name": {"$ne": payload}}}) == stored - 1
        echoed = run_node(bank, "SQLQueryNode", {"sql": "SELECT :v AS v", "params": {"v": payload}, "db": bank})
        assert echoed["v"].to_list() == [payload]
    assert_intact(bank, accounts=1 + len(PAYLOADS))


def test_patterns_are_values_too(bank: DataFlow) -> None:
    for payload in PAYLOADS:
        for op in ("$like", "$ilike", "$regex"):
            # A pattern the database cannot read (a lone \ or an unbalanced "(") is an error.
            with contextlib.suppress(DataflowError):
                run_node(bank, "AccountListNode", {"filter": {"name": {op: payload}}})
    assert_intact(bank, accounts=1)


def test_names_operators_order_and_groups_are_refused(bank: DataFlow) -> None:
    for payload in PAYLOADS:
        refused(bank, "AccountListNode", {"filter": {payload: 1}})
        refused(bank, "AccountListNode", {"filter": {"balance": {payload: 1}}})
        refused(bank, "AccountListNode", {"filter": {"$or": [{payload: "x"}]}})
        refused(bank, "AccountListNode", {"order_by": [payload]})
        refused(bank, "AccountListNode", {"order_by": f"-{payload}"})
        refused(bank, "AccountListNode", {"fields": ["name", payload]})
        refused(bank, "AccountListNode", {"group_by": [payload]})
        if not IDENTIFIER.match(payload):  # a valid name is quoted by the dialect, so harmless
            refused(bank, "AccountListNode", {"aggregate": {payload: {"$count": "*"}}})
        refused(bank, "AccountListNode", {"aggregate": {"n": {"$sum": payload}}})
        refused(bank, "AccountListNode", {"aggregate": {"n": {payload: "balance"}}})
        refused(bank, "AccountListNode", {"group_by": "name", "having": {payload: 1}})
        refused(bank, "AccountCountNode", {"filter": {payload: None}})
        refused(bank, "AccountCreateNode", {"name": "x", "balance": 1, payload: "x"})
    assert_intact(bank, accounts=1)


def test_the_builder_refuses_bad_identifiers_and_binds_values(bank: DataFlow) -> None:
    dialect = "postgresql" if bank.backend.capabilities.name == "postgresql" else "duckdb"
    connection = bank.backend.connect()
    try:
        for payload in PAYLOADS:
            if not IDENTIFIER.match(payload):  # a valid name is quoted by the dialect, so harmless
                with pytest.raises(ValidationError):
                    create_query_builder(dialect).table(payload)  # type: ignore[arg-type]
                with pytest.raises(ValidationError):
                    create_query_builder(dialect).table("accounts").where(payload, "$eq", 1)  # type: ignore[arg-type]
                with pytest.raises(ValidationError):
                    create_query_builder(dialect).table("accounts").order_by(payload)  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                create_query_builder(dialect).table("accounts").where("name", payload, 1)  # type: ignore[arg-type]
            built = create_query_builder(dialect).table("accounts").where("name", "$eq", payload)  # type: ignore[arg-type]
            assert connection.execute_sql(*built.build_count()).column(0).to_pylist() == [0]  # type: ignore[union-attr]
            connection.execute_sql(*built.build_update({"note": payload}))
            connection.execute_sql(*built.build_delete())
        connection.commit()
    finally:
        connection.close()
    assert_intact(bank, accounts=1)


def test_sql_node_refuses_a_smuggled_second_statement(bank: DataFlow) -> None:
    for payload in ("; DROP TABLE accounts", "; DELETE FROM audits", ";\nDROP TABLE audits; --"):
        refused(bank, "SQLQueryNode", {"sql": f"SELECT 1 AS one{payload}", "db": bank})
    assert_intact(bank, accounts=1)
