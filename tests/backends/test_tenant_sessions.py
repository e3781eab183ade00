"""PostgreSQL only: what one tenant leaves in a pooled session never reaches the next tenant.

The runs log in as an ordinary role with the grants docs/security.md prescribes (see
``tests/backends/tenants.py``); the pool holds one connection, so both tenants' runs use it.
DuckDB has no pool of server sessions: each DataFlow has its own connection, and raw SQL on a
tenant table is refused there (``test_tenant_attacks.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dataflow_nb import DataFlow, WorkflowError
from tests.backends.tenants import runner, tenant_database


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
