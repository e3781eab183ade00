"""security_enabled=True: the audit log, read-only SQL; and DataFlow(read_only=True)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dataflow_nb import DatabaseError, DataFlow, LocalRuntime, ReadOnlyError, WorkflowBuilder, WorkflowError
from tests.backends.tenants import audit_log, runner, tenant_database


@pytest.fixture
def secure(backend_url: str | None) -> Iterator[DataFlow]:
    with tenant_database(backend_url, security_enabled=True) as db:
        yield db


def test_every_committed_write_is_in_the_audit_log(secure: DataFlow, backend_url: str | None) -> None:
    run = runner(secure)
    created = run("A", "CustomerCreateNode", {"name": "a", "email": "a@x.io", "secret": "s"})
    first = int(created["id"][0])
    run("A", "CustomerUpdateNode", {"id": first, "name": "a2"})
    run("A", "CustomerUpsertNode", {"name": "u", "email": "u@x.io", "secret": "s"})
    rows = [{"name": f"n{i}", "email": f"{i}@x.io", "secret": "s"} for i in range(3)]
    run("A", "CustomerBulkCreateNode", {"data": rows})
    run("A", "CustomerBulkUpdateNode", {"filter": {"all": True}, "fields": {"secret": "t"}})
    run("A", "SQLQueryNode", {"sql": "UPDATE countries SET code = 'x'", "allow_writes": True})
    run("A", "CustomerDeleteNode", {"id": first})
    run("A", "CustomerListNode")  # reads are not audited

    log = audit_log(secure, backend_url)
    assert log["operation"].to_list() == ["Create", "Update", "Upsert", "BulkCreate", "BulkUpdate", "sql", "Delete"]
    assert log["rows"].to_list() == [1, 1, 1, 3, 5, None, 1]
    assert set(log["tenant_id"].to_list()) == {"A"} and log["run_id"].n_unique() == 7
    assert [json.loads(k) if k else None for k in log["keys"].to_list()][:3] == [[first], [first], [first + 1]]
    digests = log["digest"].to_list()
    assert digests[:3] == [None] * 3 and all(len(d) == 64 for d in digests[3:6]) and digests[6] is None
    user = (
        "duckdb"
        if secure.backend.capabilities.name == "duckdb"
        else secure.backend.safe_url.split("//")[1].split("@")[0]
    )
    assert set(log["db_user"].to_list()) == {user}
    assert log["at"].is_sorted() and log["node_id"].to_list() == ["n"] * 7
    assert audit_log(secure, backend_url, last=2)["operation"].to_list() == ["sql", "Delete"]
    if backend_url is not None:  # the login role appends to the log but cannot read or change it
        with pytest.raises(DatabaseError, match="permission denied"):
            secure.audit_log()
    else:  # nor can a tenant's raw SQL on DuckDB
        with pytest.raises(WorkflowError, match="dataflow_nb_audit"):
            run("A", "SQLQueryNode", {"sql": "SELECT count(*) AS n FROM dataflow_nb_audit"})


def test_a_rolled_back_run_leaves_no_audit_rows(secure: DataFlow, backend_url: str | None) -> None:
    workflow = WorkflowBuilder()
    workflow.add_node("CustomerCreateNode", "create", {"name": "a", "email": "a@x.io", "secret": "s"})
    workflow.add_node("CustomerBulkCreateNode", "bulk", {"data": [{"name": "b", "email": "b@x.io", "secret": "s"}]})
    workflow.add_node(lambda: 1 / 0, "boom")
    with pytest.raises(WorkflowError, match="boom"):
        LocalRuntime().execute(workflow.build(), tenant_id="A")
    assert audit_log(secure, backend_url).height == 0
    assert runner(secure)("A", "CustomerCountNode") == 0


def test_sql_is_read_only_unless_the_node_allows_writes(secure: DataFlow) -> None:
    run = runner(secure)
    run(None, "CountryCreateNode", {"code": "NL"})
    writes = [
        "UPDATE countries SET code = 'x'",
        "DELETE FROM countries",
        "INSERT INTO countries (code) VALUES ('x')",
        "SELECT nextval('countries_id_seq') AS n",
        "CREATE TABLE sneaky (x INT)",
    ]
    if secure.backend.capabilities.supports_row_level_security:
        writes.append("WITH d AS (DELETE FROM countries RETURNING *) SELECT * FROM d")
    for sql in writes:
        with pytest.raises(WorkflowError, match="allow_writes=True") as info:
            run(None, "SQLQueryNode", {"sql": sql})
        assert isinstance(info.value.__cause__, ReadOnlyError), sql
    assert run(None, "SQLQueryNode", {"sql": "SELECT code FROM countries"})["code"].to_list() == ["NL"]
    run(None, "SQLQueryNode", {"sql": "UPDATE countries SET code = 'BE'", "allow_writes": True})
    assert run(None, "CountryListNode")["code"].to_list() == ["BE"]
    # A read-only statement between writes leaves the run able to write.
    workflow = WorkflowBuilder()
    workflow.add_node("CountryCreateNode", "one", {"code": "DE"})
    workflow.add_node("SQLQueryNode", "read", {"sql": "SELECT count(*) AS n FROM countries", "db": secure})
    workflow.add_node("CountryCreateNode", "two", {"code": "FR"})
    results, _ = LocalRuntime().execute(workflow.build(), tenant_id=None)
    assert results["read"]["n"].to_list() == [2] and run(None, "CountryCountNode") == 3


@pytest.fixture
def database_url(backend_url: str | None, tmp_path: Path) -> str:
    return backend_url or f"duckdb:///{tmp_path / 'shared.duckdb'}"


def define_note(db: DataFlow) -> None:
    @db.model
    class Note:
        text: str


def test_a_read_only_dataflow_refuses_every_write_before_any_sql(database_url: str) -> None:
    # (No unique key here: DuckDB's reflection misreads a reopened file's tenant-scoped unique key.)
    with DataFlow(database_url, multi_tenant=True) as writer:
        define_note(writer)
        runner(writer)("A", "NoteCreateNode", {"text": "kept"})
    with DataFlow(database_url, multi_tenant=True, read_only=True, monitoring=True) as db:
        define_note(db)
        run = runner(db)
        before = db.get_monitor().get_metrics()["queries"]
        frame = pl.DataFrame({"id": [1], "text": ["x"]})
        writes: list[tuple[str, dict[str, Any]]] = [
            ("NoteCreateNode", {"text": "b"}),
            ("NoteUpdateNode", {"id": 1, "text": "x"}),
            ("NoteDeleteNode", {"id": 1}),
            ("NoteBulkCreateNode", {"data": frame.drop("id")}),
            ("NoteBulkUpdateNode", {"data": frame}),
            ("NoteBulkDeleteNode", {"filter": {"all": True}}),
            ("NoteBulkUpsertNode", {"data": frame, "conflict_on": ["id"]}),
            ("SQLQueryNode", {"sql": "DELETE FROM notes", "allow_writes": True}),
        ]
        for node, params in writes:
            with pytest.raises(WorkflowError, match="read-only") as info:
                run("A", node, params)
            assert isinstance(info.value.__cause__, ReadOnlyError), node
        assert db.get_monitor().get_metrics()["queries"] == before  # refused before any SQL
        with pytest.raises(WorkflowError, match="read-only"):
            run(None, "SQLQueryNode", {"sql": "DELETE FROM notes"})
        assert run("A", "NoteListNode")["text"].to_list() == ["kept"]


def test_audit_digests_are_keyed_per_database_and_tenants_never_see_the_key(
    secure: DataFlow, backend_url: str | None
) -> None:
    import hashlib
    import hmac

    run = runner(secure)
    params = {"filter": {"email": "b@x.io"}, "fields": {"secret": "t"}}
    run("A", "CustomerBulkUpdateNode", params)
    digest = audit_log(secure, backend_url)["digest"][0]
    text = json.dumps(params, default=str, sort_keys=True).encode()
    assert digest != hashlib.sha256(text).hexdigest()  # a plain hash of a guessed filter would match
    assert len(secure.audit_key) == 32 and digest == hmac.new(secure.audit_key, text, hashlib.sha256).hexdigest()
    with DataFlow(security_enabled=True) as other:  # another database, another key
        assert other.audit_key != secure.audit_key
    read = {"sql": "SELECT key FROM dataflow_nb_audit_key"}
    change = {"sql": "UPDATE dataflow_nb_audit_key SET key = 'ab'", "allow_writes": True}
    if secure.backend.capabilities.supports_row_level_security:
        assert run("A", "SQLQueryNode", read).height == 0  # row-level security: no row in a tenant's run
        run(None, "SQLQueryNode", change)  # no policy lets anyone change it: no row is updated
    else:
        for query in (read, change):
            with pytest.raises(WorkflowError, match="dataflow_nb_audit_key"):
                run("A", "SQLQueryNode", query)
    if backend_url is not None:  # the owner reads the key the login role uses: one per database, unchanged
        with DataFlow(backend_url, security_enabled=True) as owner:
            assert owner.audit_key == secure.audit_key


def test_a_file_databases_audit_key_is_kept_across_sessions(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'audited.duckdb'}"
    with DataFlow(url, security_enabled=True) as first:
        key = first.audit_key
    with DataFlow(url, security_enabled=True) as second:
        assert second.audit_key == key and len(key) == 32
