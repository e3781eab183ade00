"""DataFlow construction, model definition and notebook re-runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from dataflow_nb import DatabaseError, DataFlow, DataflowError, SchemaError, ValidationError
from tests.conftest import POSTGRES_URL


def define_note(db: Any, *extra: str) -> type:
    annotations: dict[str, Any] = {"text": str}
    annotations.update(dict.fromkeys(extra, int))
    return db.model(type("Note", (), {"__annotations__": annotations}))


def test_rerunning_an_unchanged_model_cell_keeps_every_row(db: Any, run: Any) -> None:
    define_note(db)
    run("NoteCreateNode", {"text": "keep me"})
    nodes_before = set(db.nodes)
    define_note(db)
    assert set(db.nodes) == nodes_before
    assert run("NoteCountNode") == 1


def test_an_unchanged_model_reuses_an_existing_table(backend_url: str | None, tmp_path: Path) -> None:
    url = backend_url or f"duckdb:///{tmp_path / 'work.duckdb'}"
    with DataFlow(url) as first:
        define_note(first)
        from dataflow_nb import LocalRuntime, WorkflowBuilder

        workflow = WorkflowBuilder()
        workflow.add_node(first.nodes["NoteCreateNode"], "c", {"text": "persisted"})
        LocalRuntime().execute(workflow.build())
    with DataFlow(url) as second:
        define_note(second)
        workflow = WorkflowBuilder()
        workflow.add_node(second.nodes["NoteListNode"], "all", {})
        results, _ = LocalRuntime().execute(workflow.build())
    assert results["all"]["text"].to_list() == ["persisted"]


def test_a_change_that_cannot_fill_existing_rows_is_refused_with_a_schema_error(db: Any, run: Any) -> None:
    define_note(db)
    run("NoteCreateNode", {"text": "keep me"})
    with pytest.raises(SchemaError, match=r"add column stars: a new NOT NULL column without a default"):
        define_note(db, "stars")
    assert run("NoteCountNode") == 1
    assert "stars" not in db.models["Note"].fields  # the nodes still use the previous model


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(DataflowError, match="unknown database URL scheme 'mysql'"):
        DataFlow("mysql://root@localhost/test")


def test_database_url_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", f"duckdb:///{tmp_path / 'env.duckdb'}")
    with DataFlow() as db:
        define_note(db)
    assert (tmp_path / "env.duckdb").exists()


def test_unreachable_server_names_host_and_database_never_the_password() -> None:
    with pytest.raises(DatabaseError) as info:
        DataFlow("postgresql://alice:s3cret-pw@127.0.0.1:1/analytics")
    message = str(info.value)
    assert "database 'analytics' at 127.0.0.1:1" in message
    assert "s3cret-pw" not in message
    assert "***" in message


@pytest.mark.parametrize(
    ("user", "database", "reason"), [("no_such_role", "test", "no_such_role"), ("postgres", "no_such_db", "no_such_db")]
)
def test_bad_credentials_or_database_are_clear(postgres_url: str, user: str, database: str, reason: str) -> None:
    base = POSTGRES_URL.rsplit("/", 1)[0].split("@", 1)[1]
    with pytest.raises(DatabaseError, match=reason) as info:
        DataFlow(f"postgresql://{user}:hunter2@{base}/{database}")
    assert "hunter2" not in str(info.value)


def test_repr_never_shows_the_password(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql://postgres@", "postgresql://postgres:topsecret@")
    with DataFlow(url) as db:
        assert "topsecret" not in repr(db)
        assert "topsecret" not in db._repr_html_()
        assert db.url == url.replace(":topsecret@", ":***@")  # the public URL is masked
        assert "topsecret" not in str(vars(db).get("url"))


def test_a_password_anywhere_in_the_url_is_masked_wherever_the_url_is_shown(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataflow_nb import LocalRuntime, WorkflowBuilder
    from dataflow_nb.cli import main

    # The test server trusts local logins, so libpq takes these and the server ignores them.
    url = f"{postgres_url}&password=qp-secret&sslpassword=ssl-secret"
    with DataFlow(url, monitoring=True) as db:

        @db.model
        class Note:
            text: str

        workflow = WorkflowBuilder()
        workflow.add_node("NoteCreateNode", "n", {"text": "hi"})
        LocalRuntime().execute(workflow.build())
        shown = [repr(db), db._repr_html_(), str(db.url), str(db.get_monitor().get_health_status())]
        shown.append(str(db.runs()["database"].to_list()))
    assert main(["runs", "--url", url]) == 0
    assert main(["health", "--url", url.replace("127.0.0.1:5432", "127.0.0.1:1")]) == 1
    shown.append(capsys.readouterr().out)
    for text in shown:
        assert "qp-secret" not in text and "ssl-secret" not in text, text
    assert "password=***" in shown[2] and "sslpassword=***" in shown[2]


def test_url_is_none_for_the_default_database_and_the_path_for_a_file(tmp_path: Path) -> None:
    with DataFlow() as memory:
        assert memory.url is None
    with DataFlow(f"duckdb:///{tmp_path / 'f.duckdb'}") as file:
        assert file.url == f"duckdb:///{tmp_path / 'f.duckdb'}"


def test_options_that_are_not_built_yet_are_refused_not_ignored() -> None:
    with pytest.raises(DataflowError, match=r"cache_url='redis://:\*\*\*@host/0' needs cache_enabled=True"):
        DataFlow(cache_url="redis://:pw@host/0")
    with pytest.raises(ValidationError, match=r"\['soft_delete'\] takes True or False"):
        DataFlow().model(type("Soft", (), {"__annotations__": {"x": int}, "__dataflow__": {"soft_delete": "yes"}}))
    with pytest.raises(TypeError, match="unknown option"):
        DataFlow(colour="blue")


def test_frame_must_be_polars_or_pandas() -> None:
    with pytest.raises(DataflowError, match="frame='arrow'"):
        DataFlow(frame="arrow")  # type: ignore[arg-type]


def test_model_options_and_fields_are_checked(db: Any) -> None:
    with pytest.raises(ValidationError, match="unknown __dataflow__ option"):
        db.model(type("Bad", (), {"__annotations__": {"x": int}, "__dataflow__": {"indexs": [["x"]]}}))
    with pytest.raises(ValidationError, match="'id' is managed"):
        db.model(type("Bad", (), {"__annotations__": {"id": int}}))
    with pytest.raises(ValidationError, match="must be a datetime"):
        db.model(type("Bad", (), {"__annotations__": {"created_at": str}}))
    with pytest.raises(ValidationError, match="default 'x' of field 'n' does not fit int"):
        db.model(type("Bad", (), {"__annotations__": {"n": int}, "n": "x"}))


def test_declared_created_at_is_managed(db: Any, run: Any) -> None:
    @db.model
    class Visit:
        where: str
        created_at: dt.datetime

    frame = run("VisitCreateNode", {"where": "home"})
    assert frame["created_at"][0] is not None
    given = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    assert run("VisitCreateNode", {"where": "x", "created_at": given})["created_at"][0] == given


def test_a_dataflow_nothing_references_is_gone_without_a_garbage_collection(backend_url: str | None) -> None:
    import gc
    import weakref

    from dataflow_nb import LocalRuntime, WorkflowBuilder
    from dataflow_nb.registry import live_databases

    others = live_databases()  # whatever other tests keep open
    gc.disable()  # the point: reference counting alone frees a replaced DataFlow
    try:
        for _ in range(2):  # the DataFlow cell, run and re-run
            flow = DataFlow(backend_url, monitoring=True)
            define_note(flow)
            workflow = WorkflowBuilder()
            workflow.add_node("NoteCreateNode", "c", {"text": "x"})
            LocalRuntime().execute(workflow.build())
            replaced = weakref.ref(flow)
            nodes = flow.nodes["NoteCreateNode"]
            del flow, workflow
            assert replaced() is None
            assert live_databases() == others
        with pytest.raises(DataflowError, match=r"NoteCreateNode: its DataFlow 'db\d+' no longer exists"):
            _ = nodes.db
    finally:
        gc.enable()


def test_names_are_checked_against_the_databases_identifier_limit(db: Any) -> None:
    import dataclasses

    limit = db.backend.capabilities.max_identifier_length
    assert limit == 63  # both databases: PostgreSQL's NAMEDATALEN - 1, kept on DuckDB for portability
    db.model(type("Note", (), {"__annotations__": {"t" * limit: str}}))  # the longest name fits
    with pytest.raises(ValidationError, match=f"at most {limit} characters"):
        db.model(type("Memo", (), {"__annotations__": {"t" * (limit + 1): str}}))
    db.backend.capabilities = dataclasses.replace(db.backend.capabilities, max_identifier_length=10)
    with pytest.raises(ValidationError, match=r"field 'eleven_char' is not a valid name.*at most 10 characters"):
        db.model(type("Memo", (), {"__annotations__": {"eleven_char": str}}))
