"""Read-only and tenant SQL tried as an attacker would: writes hidden in EXPLAIN, files, catalog
statistics, and another DataFlow on the same database.

On PostgreSQL the runs log in as an ordinary role (``tests/backends/tenants.py``), so the database
enforces what DuckDB's allow-lists (``backends/duckdb_access.py``) enforce there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dataflow_nb import DataFlow, DataflowError, ReadOnlyError, TenantError, WorkflowError
from tests.backends.tenants import audit_log, runner, tenant_database
from tests.conftest import _admin_connection, _run


@pytest.fixture
def database_url(backend_url: str | None, tmp_path: Path) -> str:
    """A database two DataFlows can open: a DuckDB file, or the test's PostgreSQL schema."""
    return backend_url or f"duckdb:///{tmp_path / 'clinic.duckdb'}"


@pytest.fixture
def clinic(database_url: str) -> Iterator[DataFlow]:
    """Multi-tenant and security_enabled; on PostgreSQL logged in as the login role."""
    with tenant_database(database_url, security_enabled=True) as db:
        run = runner(db)
        run("A", "CustomerCreateNode", {"name": "ann", "email": "a@x.io", "secret": "a-secret-1"})
        run("B", "CustomerCreateNode", {"name": "bob", "email": "b@x.io", "secret": "b-secret-2"})
        run(None, "CountryCreateNode", {"code": "NL"})
        yield db


def refused(run: Any, tenant: str | None, sql: str, match: str | None = None) -> WorkflowError:
    with pytest.raises(WorkflowError, match=match) as info:
        run(tenant, "SQLQueryNode", {"sql": sql})
    return info.value


def test_explain_analyze_does_not_write_in_read_only_sql(clinic: DataFlow, database_url: str, tmp_path: Path) -> None:
    run = runner(clinic)
    audited = audit_log(clinic, database_url).height
    target = tmp_path / "f.csv"
    duckdb = clinic.backend.capabilities.name == "duckdb"
    for sql in ("EXPLAIN ANALYZE DELETE FROM dataflow_nb_audit", "EXPLAIN ANALYZE DELETE FROM countries"):
        error = refused(run, None, sql)
        if duckdb:  # the refusal names the statement kind, why, and the fix
            assert isinstance(error.__cause__, ReadOnlyError), sql
            assert "is EXPLAIN" in str(error) and "EXPLAIN ANALYZE runs the statement" in str(error)
            assert "allow_writes=True" in str(error)
    # PostgreSQL runs no EXPLAIN through SQLQueryNode (rows come back by COPY), cannot EXPLAIN a COPY,
    # and would not let the login role write the server's files.
    refused(run, None, f"EXPLAIN ANALYZE COPY (SELECT 'x') TO '{target}'")
    assert not target.exists()
    assert audit_log(clinic, database_url).height == audited
    assert run(None, "CountryCountNode") == 1
    assert run(None, "SQLQueryNode", {"sql": "SELECT count(*) AS n FROM countries"})["n"].to_list() == [1]


@pytest.mark.notimpl(
    ["postgres"],
    raises=AssertionError,
    match='syntax error at or near "EXPLAIN"',
    reason="PostgreSQL's read-only check lets EXPLAIN ANALYZE through: COPY's syntax error refuses it instead",
)
def test_a_read_only_dataflow_runs_no_explain_analyze(database_url: str) -> None:
    with DataFlow(database_url) as owner:

        @owner.model
        class Note:
            text: str

        runner(owner)(None, "NoteCreateNode", {"text": "kept"})
    with DataFlow(database_url, read_only=True) as db:

        @db.model
        class Note:  # the table exists: nothing is created
            text: str

        run = runner(db)
        error = refused(run, None, "EXPLAIN ANALYZE DELETE FROM notes")
        assert isinstance(error.__cause__, ReadOnlyError) and "read-only" in str(error), error
        assert run(None, "NoteListNode")["text"].to_list() == ["kept"]


def test_tenant_and_read_only_sql_reach_no_file_and_no_column_statistics(
    clinic: DataFlow, database_url: str, tmp_path: Path
) -> None:
    run = runner(clinic)
    if clinic.backend.capabilities.name == "duckdb":
        database_file = database_url.removeprefix("duckdb:///")
        for tenant in ("A", None):
            error = refused(run, tenant, "SELECT * FROM pragma_storage_info('customers')", "pragma_storage_info")
            assert isinstance(error.__cause__, TenantError if tenant else ReadOnlyError)
            assert "range()" in str(error)  # the allow-list is named
            for sql in (f"SELECT * FROM read_blob('{database_file}*')", "SELECT * FROM read_csv('/etc/passwd')"):
                refused(run, tenant, sql, "(?s)disabled by configuration.*allow_files=True")
            refused(run, tenant, f"SELECT * FROM '{database_file}'")
            refused(run, tenant, f"ATTACH '{tmp_path / 'other.duckdb'}' AS other")
        assert not (tmp_path / "other.duckdb").exists()
    else:  # the database's own protection: statistics of a table under row-level security, server files
        admin = _admin_connection()
        try:
            _run(admin, f"ANALYZE {database_url.split('%3D')[1]}.customers")
        finally:
            admin.close()
        stats = run("A", "SQLQueryNode", {"sql": "SELECT * FROM pg_stats WHERE tablename = 'customers'"})
        assert "b-secret-2" not in str(stats.rows())
        refused(run, "A", "SELECT pg_read_file('/etc/passwd') AS f", "permission denied")
        refused(run, None, "SELECT pg_read_binary_file('/etc/passwd') AS f", "permission denied")
    # The library's own file reads still work: a bulk load from a CSV and a Parquet file.
    frame = pl.DataFrame({"code": ["BE", "DE"]})
    frame.write_csv(tmp_path / "codes.csv")
    frame.write_parquet(tmp_path / "codes.parquet")
    for name in ("codes.csv", "codes.parquet"):
        assert run(None, "CountryBulkCreateNode", {"source": str(tmp_path / name)}).inserted == 2
    assert run(None, "CountryCountNode") == 5


def test_allow_files_opens_file_readers_to_a_session_that_owns_the_data(tmp_path: Path) -> None:
    """DuckDB only: PostgreSQL reads no client file, whatever the DataFlow says."""
    (tmp_path / "codes.csv").write_text("code\nNL\n")
    with DataFlow(security_enabled=True, allow_files=True) as db:
        read = runner(db)(None, "SQLQueryNode", {"sql": f"SELECT code FROM read_csv('{tmp_path / 'codes.csv'}')"})
        assert read["code"].to_list() == ["NL"]
    with pytest.raises(DataflowError, match="multi_tenant"):
        DataFlow(multi_tenant=True, allow_files=True)


def test_sql_on_another_dataflow_of_the_same_database_stays_in_the_tenant(clinic: DataFlow) -> None:
    """SQLQueryNode's db may be a DataFlow without the models (or without multi_tenant)."""
    assert clinic.url is not None
    with DataFlow(clinic.url) as other:  # on PostgreSQL the login role again
        run = runner(other)
        if clinic.backend.capabilities.name == "duckdb":
            for sql in ("SELECT name, secret FROM customers", "SELECT * FROM pragma_storage_info('customers')"):
                error = refused(run, "A", sql, "tenant 'A'")
                assert isinstance(error.__cause__, TenantError)
        else:  # the tenant is bound on the other DataFlow's connection too: row-level security holds
            rows = run("A", "SQLQueryNode", {"sql": "SELECT name, secret FROM customers ORDER BY name"})
            assert rows.rows() == [("ann", "a-secret-1")]
            assert run("A", "SQLQueryNode", {"sql": "SELECT dataflow_nb_tenant() AS t"})["t"].to_list() == ["A"]
            for tenant, sql in (
                ("A", "SELECT dataflow_nb_begin_tenant('B') AS t"),
                ("A", "SELECT t.x FROM (SELECT public.dataflow_nb_begin_tenant('B') AS x) AS t"),
                (None, "SELECT dataflow_nb_begin_tenant('B') AS t"),
            ):
                refused(run, tenant, sql, "dataflow_nb_begin_tenant.*SQL may not call it")
    assert runner(clinic)("B", "CustomerListNode")["secret"].to_list() == ["b-secret-2"]
