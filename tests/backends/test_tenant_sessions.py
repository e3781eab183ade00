"""PostgreSQL only: one tenant's session never reaches another's: what it leaves in a pooled
session is gone for the next tenant, and it cannot read or end another tenant's session.

The runs log in as an ordinary role with the grants docs/security.md prescribes (see
``tests/backends/tenants.py``); the pool holds one connection, so both tenants' runs use it.
DuckDB has no pool of server sessions: each DataFlow has its own connection, and raw SQL on a
tenant table is refused there (``test_tenant_attacks.py``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from dataflow_nb import DataFlow, WorkflowError
from tests.backends.tenants import runner, tenant_database
from tests.conftest import POSTGRES_URL, _admin_connection, _run, run_later


@pytest.fixture
def one_session(postgres_url: str) -> Iterator[DataFlow]:
    with tenant_database(postgres_url, pool_size=1, pool_max_overflow=0) as db:
        yield db


def backend_pid(run: Any, tenant: str) -> int:
    return int(run(tenant, "SQLQueryNode", {"sql": "SELECT pg_backend_pid() AS pid"})["pid"][0])


def test_a_temporary_table_of_one_tenant_never_catches_anothers_writes(one_session: DataFlow) -> None:
    run = runner(one_session)
    pid = backend_pid(run, "A")
    run("A", "SQLQueryNode", {"sql": "CREATE TEMP TABLE customers (LIKE customers INCLUDING DEFAULTS)"})
    run("B", "CustomerCreateNode", {"name": "bob", "email": "b@x.io", "secret": "b-secret-2"})
    assert backend_pid(run, "B") == pid  # one pooled session served both tenants
    with pytest.raises(WorkflowError, match="does not exist"):  # gone with A's run
        run("A", "SQLQueryNode", {"sql": "SELECT secret FROM pg_temp.customers"})
    assert run("A", "SQLQueryNode", {"sql": "SELECT secret FROM customers"}).height == 0
    assert run("B", "CustomerListNode")["secret"].to_list() == ["b-secret-2"]  # in the real table


def test_a_setting_one_tenant_changes_is_back_to_the_urls_for_the_next(one_session: DataFlow) -> None:
    run = runner(one_session)
    schema = run("A", "SQLQueryNode", {"sql": "SELECT current_schema() AS s"})["s"][0]
    run("A", "SQLQueryNode", {"sql": "SELECT set_config('search_path', 'pg_catalog', false) AS p"})
    run("A", "SQLQueryNode", {"sql": "SELECT set_config('statement_timeout', '1', false) AS t"})
    created = run("B", "CustomerCreateNode", {"name": "bob", "email": "b@x.io", "secret": "b-secret-2"})
    assert created["tenant_id"].to_list() == ["B"]
    shown = run("B", "SQLQueryNode", {"sql": "SELECT current_schema() AS s, current_setting('statement_timeout') AS t"})
    assert shown.row(0) == (schema, "0")  # the URL's search_path (options=-csearch_path=...) survives


# docs/security.md, "Roles on PostgreSQL": what the administrator takes from PUBLIC in the database.
SESSION_REVOKES = (
    "REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC",
    "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer) FROM PUBLIC",
    "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_backend_activity(integer) FROM PUBLIC",
    "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_terminate_backend(integer, bigint) FROM PUBLIC",
    "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_cancel_backend(integer) FROM PUBLIC",
)


@contextmanager
def database_of_its_own(revokes: tuple[str, ...]) -> Iterator[str]:
    """A database of the test's own on the shared server (the revokes hold in it alone); its URL."""
    name = f"dataflow_t_{uuid.uuid4().hex[:10]}"
    admin = _admin_connection()
    _run(admin, f"CREATE DATABASE {name}")
    try:
        url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
        inside = _admin_connection(url)
        for statement in (*revokes, "CREATE SCHEMA app"):
            _run(inside, statement)
        inside.close()
        yield f"{url}?options=-csearch_path%3Dapp"
    finally:
        admin.close()
        run_later(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # its checkpoint takes ~1.5 s


def b_pid_while_running(run: Any, sql: str, outcome: dict[str, Any]) -> tuple[threading.Thread, int]:
    """Start B's run of ``sql`` in a thread; the pid of its session, seen by the administrator."""

    def work() -> None:
        try:
            outcome["b"] = run("B", "SQLQueryNode", {"sql": sql})
        except Exception as exc:
            outcome["b"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    admin = _admin_connection()
    try:
        for _ in range(200):
            with admin.cursor() as cursor:
                cursor.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(1.5)%b-secret%'")
                found = cursor.fetchall()
            if found:
                return thread, int(found[0][0])
            time.sleep(0.01)
    finally:
        admin.close()
    thread.join()
    raise AssertionError(f"B's run never showed in pg_stat_activity: {outcome}")


@pytest.mark.parametrize("revoked", [False, True], ids=["documented-grants-only", "sessions-revoked"])
def test_a_tenant_neither_reads_nor_ends_another_tenants_session(
    revoked: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with database_of_its_own(SESSION_REVOKES if revoked else ()) as url, tenant_database(url) as db:
        warned = [r.getMessage() for r in caplog.records if "pg_terminate_backend" in r.getMessage()]
        if not revoked:  # the DataFlow says what is still granted, and stops there
            assert warned and "REVOKE" in warned[0]
            return
        assert not warned
        run = runner(db)
        sql = "SELECT pg_sleep(1.5)::text AS s, 'b-secret-2' AS secret"
        outcome: dict[str, Any] = {}
        thread, pid = b_pid_while_running(run, sql, outcome)
        attacks = [
            "SELECT string_agg(query, ';') AS q FROM pg_stat_activity",
            "SELECT string_agg(s.query, ';') AS q FROM pg_stat_get_activity(NULL) s",
            "SELECT string_agg(pg_stat_get_backend_activity(b), ';') AS q FROM pg_stat_get_backend_idset() b",
            f"SELECT pg_cancel_backend({pid}) AS c",
            f"SELECT pg_terminate_backend({pid}) AS t",
        ]
        for attack in attacks:
            with pytest.raises(WorkflowError, match="permission denied"):
                run("A", "SQLQueryNode", {"sql": attack})
        thread.join()
        assert not isinstance(outcome["b"], Exception), outcome["b"]
        assert outcome["b"]["secret"].to_list() == ["b-secret-2"]  # B's run went on to its end
