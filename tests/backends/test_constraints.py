"""Indexes, unique keys and field defaults from the model, on both databases; violations name the key."""

from __future__ import annotations

from typing import Any

import pytest

from dataflow_nb import ConflictError, LocalRuntime, UniqueViolation, WorkflowBuilder, WorkflowError


def define_user(db: Any) -> None:
    @db.model
    class User:
        email: str
        handle: str
        team: str = "core"
        score: int = 0
        __dataflow__ = {"unique": [["email"], ["team", "handle"]], "indexes": [["team"]]}


def conflict(run: Any, node: str, params: dict[str, Any]) -> UniqueViolation:
    with pytest.raises(WorkflowError) as info:
        run(node, params)
    error = info.value.__cause__
    assert isinstance(error, UniqueViolation) and isinstance(error, ConflictError)
    return error


def test_indexes_unique_keys_and_defaults_exist_in_the_database(db: Any, run: Any) -> None:
    define_user(db)
    plan = db.migration_plan()
    assert plan.height == 0  # the live table has every index, key and default of the model
    connection = db.backend.connect()
    try:
        connection.execute_sql("INSERT INTO users (email, handle) VALUES ('raw@x.io', 'raw')")
        result = connection.execute_sql("SELECT team, score FROM users")
        assert result is not None and result.to_pylist() == [{"team": "core", "score": 0}]
    finally:
        connection.close()


def test_a_duplicate_on_create_names_constraint_columns_and_value(db: Any, run: Any) -> None:
    define_user(db)
    run("UserCreateNode", {"email": "a@x.io", "handle": "a"})
    error = conflict(run, "UserCreateNode", {"email": "a@x.io", "handle": "b"})
    assert (error.constraint, error.columns) == ("users_email_key", ["email"])
    assert "unique constraint 'users_email_key' on ['email'] with value email='a@x.io'" in str(error)
    assert "UserUpsertNode" in str(error)


def test_a_bulk_load_of_existing_keys_points_to_the_bulk_upsert(db: Any, run: Any) -> None:
    """Loading a file a second time: the way out is the bulk upsert, not the one-record UserUpsertNode."""
    define_user(db)
    rows = [{"email": "a@x.io", "handle": "a"}, {"email": "b@x.io", "handle": "b"}]
    run("UserBulkCreateNode", {"data": rows})
    error = conflict(run, "UserBulkCreateNode", {"data": rows})
    assert "users_email_key" in str(error) or "users_team_handle_key" in str(error)
    assert "use UserBulkUpsertNode to update the existing rows" in str(error)
    assert "UserUpsertNode" not in str(error)
    assert run("UserCountNode") == 2


def test_a_duplicate_composite_key_on_update(db: Any, run: Any) -> None:
    define_user(db)
    run("UserCreateNode", {"email": "a@x.io", "handle": "ann"})
    other = run("UserCreateNode", {"email": "b@x.io", "handle": "bob"})["id"][0]
    error = conflict(run, "UserUpdateNode", {"id": other, "handle": "ann"})
    assert (error.constraint, error.columns) == ("users_team_handle_key", ["team", "handle"])
    assert "'users_team_handle_key' on ['team', 'handle']" in str(error)
    assert "core" in str(error) and "ann" in str(error)


def test_two_duplicates_in_one_run_roll_back_both(db: Any, run: Any) -> None:
    define_user(db)
    workflow = WorkflowBuilder()
    workflow.add_node("UserCreateNode", "one", {"email": "same@x.io", "handle": "one"})
    workflow.add_node("UserCreateNode", "two", {"email": "same@x.io", "handle": "two"})
    with pytest.raises(WorkflowError) as info:
        LocalRuntime().execute(workflow.build())
    assert info.value.node_id == "two"
    assert "users_email_key" in str(info.value)
    assert run("UserCountNode") == 0


def test_unique_keys_of_a_multi_tenant_model_hold_per_tenant(db: Any, run: Any) -> None:
    @db.model
    class Member:
        email: str
        __dataflow__ = {"multi_tenant": True, "unique": [["email"]]}

    run("MemberCreateNode", {"email": "a@x.io"}, tenant_id="acme")
    run("MemberCreateNode", {"email": "a@x.io"}, tenant_id="globex")
    with pytest.raises(WorkflowError) as info:
        run("MemberCreateNode", {"email": "a@x.io"}, tenant_id="acme")
    error = info.value.__cause__
    assert isinstance(error, UniqueViolation)
    assert error.constraint == "members_email_key"
    assert "on ['email']" in str(error)  # tenant_id is part of the key, but not the user's concern
