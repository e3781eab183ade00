"""Model changes against a live table: safe ones apply and are logged, the rest wait for migrate()."""

from __future__ import annotations

from typing import Any

import pytest

from dataflow_nb import SchemaError
from tests.helpers import rows_of


def define(db: Any, fields: dict[str, Any], name: str = "Note", **options: Any) -> type:
    """Define (or re-define, as a re-run cell does) a model from a dict of annotations and defaults."""
    annotations = {k: v[0] if isinstance(v, tuple) else v for k, v in fields.items()}
    defaults = {k: v[1] for k, v in fields.items() if isinstance(v, tuple)}
    namespace = {"__annotations__": annotations, "__dataflow__": options, **defaults}
    return db.model(type(name, (), namespace))


def columns(db: Any, table: str = "notes") -> list[str]:
    connection = db.backend.connect()
    try:
        result = connection.execute_sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = $1 ORDER BY ordinal_position",
            [table],
        )
        return result.column(0).to_pylist() if result is not None else []
    finally:
        connection.close()


def history(db: Any) -> list[tuple[str, str, bool]]:
    return [(r["operation"], r["target"], r["destructive"]) for r in rows_of(db.migration_history())]


def test_rerunning_an_unchanged_model_is_a_no_op(db: Any, run: Any) -> None:
    define(db, {"text": str})
    run("NoteCreateNode", {"text": "keep"})
    before = history(db)
    define(db, {"text": str})
    fresh = type(db)(db.url) if db.url else None  # a new kernel against the same PostgreSQL schema
    if fresh is not None:
        define(fresh, {"text": str})
        fresh.close()
    assert history(db) == before == [("create table", "notes", False)]
    assert run("NoteCountNode") == 1


def test_a_new_nullable_column_is_added_and_logged(db: Any, run: Any) -> None:
    define(db, {"text": str})
    run("NoteCreateNode", {"text": "old"})
    define(db, {"text": str, "stars": int | None})
    assert "stars" in columns(db)
    assert history(db)[-1] == ("add column", "stars", False)
    run("NoteCreateNode", {"text": "new", "stars": 5})
    assert rows_of(run("NoteListNode"), ["text", "stars"]) == [
        {"text": "old", "stars": None},
        {"text": "new", "stars": 5},
    ]


def test_a_new_column_with_a_default_fills_existing_rows(db: Any, run: Any) -> None:
    define(db, {"text": str})
    run("NoteCreateNode", {"text": "old"})
    define(db, {"text": str, "stars": (int, 3), "label": (str, "it's new"), "pinned": (bool, False)})
    assert rows_of(run("NoteListNode"), ["stars", "label", "pinned"]) == [
        {"stars": 3, "label": "it's new", "pinned": False}
    ]


def test_a_new_index_is_created_automatically(db: Any, run: Any) -> None:
    define(db, {"text": str})
    run("NoteCreateNode", {"text": "old"})
    define(db, {"text": str}, indexes=[["text"]])
    assert history(db)[-1] == ("add index", "notes_text_idx", False)
    assert db.migration_plan().height == 0


def test_dropping_a_field_needs_a_decision_and_keeps_everything_until_then(db: Any, run: Any) -> None:
    define(db, {"text": str, "stars": int | None})
    run("NoteCreateNode", {"text": "keep", "stars": 4})
    with pytest.raises(SchemaError) as info:
        define(db, {"text": str})
    message = str(info.value)
    assert "drop column stars: its values in 1 row(s) would be lost" in message
    assert "ALTER TABLE notes DROP COLUMN stars;" in message
    assert "db.migrate('Note', allow_destructive=True)" in message
    # Nothing changed: the column, its value and the previous nodes are all still there.
    assert "stars" in columns(db)
    assert rows_of(run("NoteListNode"), ["text", "stars"]) == [{"text": "keep", "stars": 4}]
    plan = rows_of(db.migration_plan())
    assert [(p["operation"], p["target"], p["safe"]) for p in plan] == [("drop column", "stars", False)]
    assert plan[0]["ddl"] == "ALTER TABLE notes DROP COLUMN stars;"
    with pytest.raises(SchemaError, match="need allow_destructive=True"):
        db.migrate("Note")
    applied = db.migrate("Note", allow_destructive=True)
    assert rows_of(applied, ["operation", "target"]) == [{"operation": "drop column", "target": "stars"}]
    assert "stars" not in columns(db)
    assert history(db)[-1] == ("drop column", "stars", True)
    assert rows_of(run("NoteListNode"), ["text"]) == [{"text": "keep"}]
    assert "stars" not in db.models["Note"].fields


def test_a_type_change_needs_a_decision_and_converts_the_values(db: Any, run: Any) -> None:
    define(db, {"code": str})
    run("NoteCreateNode", {"code": "42"})
    with pytest.raises(SchemaError, match=r"change type code: TEXT -> BIGINT"):
        define(db, {"code": int})
    db.migrate("Note", allow_destructive=True)
    assert rows_of(run("NoteListNode"), ["code"]) == [{"code": 42}]


def test_not_null_on_a_column_holding_nulls_needs_a_decision(db: Any, run: Any) -> None:
    define(db, {"text": str, "stars": int | None})
    run("NoteCreateNode", {"text": "a", "stars": None})
    with pytest.raises(SchemaError, match=r"set not null stars: 1 existing row\(s\) hold NULL"):
        define(db, {"text": str, "stars": int})


def test_not_null_on_a_column_without_nulls_is_safe(db: Any, run: Any) -> None:
    define(db, {"text": str, "stars": int | None})
    run("NoteCreateNode", {"text": "a", "stars": 2})
    define(db, {"text": str, "stars": int})
    assert history(db)[-1] == ("set not null", "stars", False)


def test_a_rename_keeps_the_values(db: Any, run: Any) -> None:
    define(db, {"text": str, "stars": int | None})
    run("NoteCreateNode", {"text": "a", "stars": 5})
    with pytest.raises(SchemaError, match="drop column stars"):
        define(db, {"text": str, "rating": int | None})
    db.migrate("Note", renames={"stars": "rating"})
    assert history(db)[-1] == ("rename column", "stars -> rating", False)
    assert rows_of(run("NoteListNode"), ["text", "rating"]) == [{"text": "a", "rating": 5}]


def test_a_failing_migration_is_rolled_back_whole(db: Any, run: Any) -> None:
    define(db, {"text": str})
    run("NoteCreateNode", {"text": "not a number"})
    with pytest.raises(SchemaError):
        define(db, {"text": int, "extra": str | None})
    before = history(db)
    with pytest.raises(SchemaError, match=r"failed at .* and was rolled back, so nothing changed"):
        db.migrate("Note", allow_destructive=True)
    # The nullable column came first in the plan and succeeded; the rollback took it back too.
    assert columns(db) == ["id", "text", "created_at", "updated_at"]
    assert history(db) == before
    assert rows_of(run("NoteListNode"), ["text"]) == [{"text": "not a number"}]


def test_on_an_empty_table_every_change_is_safe(db: Any, run: Any) -> None:
    define(db, {"text": str, "stars": int | None})
    define(db, {"text": int, "rating": int})
    assert columns(db) == ["id", "text", "created_at", "updated_at", "rating"]


def test_a_unique_key_on_repeating_values_needs_a_decision(db: Any, run: Any) -> None:
    define(db, {"email": str})
    run("NoteCreateNode", {"email": "a@x.io"})
    run("NoteCreateNode", {"email": "a@x.io"})
    with pytest.raises(SchemaError, match=r"1 value\(s\) of \['email'\] repeat in existing rows"):
        define(db, {"email": str}, unique=[["email"]])


def test_a_unique_key_on_distinct_values_is_added(db: Any, run: Any) -> None:
    define(db, {"email": str})
    run("NoteCreateNode", {"email": "a@x.io"})
    define(db, {"email": str}, unique=[["email"]])
    assert history(db)[-1] == ("add unique", "notes_email_key", False)


@pytest.mark.notyet(
    ["duckdb"],
    raises=SchemaError,
    match="DuckDB cannot drop a constraint",
    reason="DuckDB has no ALTER TABLE ... DROP CONSTRAINT: the change is refused with the reason",
)
def test_dropping_a_unique_key(db: Any, run: Any) -> None:
    define(db, {"email": str}, unique=[["email"]])
    run("NoteCreateNode", {"email": "a@x.io"})
    define(db, {"email": str})
    assert history(db)[-1] == ("drop unique", "notes_email_key", False)
    run("NoteCreateNode", {"email": "a@x.io"})


def test_altering_a_column_of_a_table_with_an_index(db: Any, run: Any) -> None:
    """DuckDB refuses ALTER on an indexed table: the plan drops and recreates the indexes around it."""
    define(db, {"text": str, "stars": int | None}, indexes=[["text"]])
    run("NoteCreateNode", {"text": "a", "stars": 1})
    define(db, {"text": str, "stars": int | None, "pinned": (bool, False)}, indexes=[["text"]])
    assert rows_of(run("NoteListNode", {"filter": {"text": "a"}}), ["stars", "pinned"]) == [
        {"stars": 1, "pinned": False}
    ]
    assert db.migration_plan().height == 0


def test_migrate_names_unknown_models(db: Any) -> None:
    with pytest.raises(SchemaError, match="no model named 'Nope'"):
        db.migrate("Nope")


def test_migrate_takes_the_class(db: Any, run: Any) -> None:
    define(db, {"text": str, "stars": int | None})
    run("NoteCreateNode", {"text": "a"})
    changed = type("Note", (), {"__annotations__": {"text": str}})
    db.migrate(changed, allow_destructive=True)
    assert "stars" not in columns(db)


def test_reopening_a_tenant_scoped_unique_key_is_a_no_op(backend_url: str | None, tmp_path: Any) -> None:
    """A new kernel on the same database sees no change in a multi-tenant model's unique key
    (DuckDB reads the key back under its columns' name, not the model's)."""
    from dataflow_nb import DataFlow

    url = backend_url or f"duckdb:///{tmp_path / 'tenants.duckdb'}"
    for _ in range(2):
        db = DataFlow(url)
        try:
            define(db, {"email": str}, name="Account", multi_tenant=True, unique=[["email"]])
            assert history(db) == [("create table", "accounts", False)]
            assert db.migration_plan().height == 0
        finally:
            db.close()
