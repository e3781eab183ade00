"""Two tenants on one database, and on PostgreSQL an ordinary login role for the runs.

Row-level security does not bind superusers (the test server's ``postgres``), so the tables
are created by the owner and every run logs in as a role created here and dropped afterwards:
the setup docs/security.md describes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder
from tests.conftest import _admin_connection, _run

LOGIN_GRANTS = (
    "GRANT USAGE ON SCHEMA {schema} TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
    "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",  # UPDATE: setval
)


def define_models(db: DataFlow) -> None:
    @db.model
    class Customer:
        name: str
        email: str
        secret: str

        __dataflow__ = {"unique": [["email"]]}

    @db.model
    class Country:
        code: str

        __dataflow__ = {"multi_tenant": False}


def _exists(admin: Any, schema: str, table: str) -> bool:
    with admin.cursor() as cursor:
        cursor.execute(f"SELECT to_regclass('{schema}.{table}') IS NOT NULL")
        return bool(cursor.fetchone()[0])


def audit_log(db: DataFlow, owner_url: str | None, last: int | None = None) -> Any:
    """The audit log as the owner reads it (on PostgreSQL the login role may only append to it)."""
    if owner_url is None or owner_url.startswith("duckdb"):
        return db.audit_log(last)
    with DataFlow(owner_url, security_enabled=True) as owner:
        return owner.audit_log(last)


@contextmanager
def login_role(owner_url: str) -> Iterator[str]:
    """A non-superuser role with DML rights on the test's schema; yields its URL."""
    schema = unquote(owner_url).split("search_path=")[1]
    role = f"dataflow_login_{uuid.uuid4().hex[:10]}"
    admin = _admin_connection(owner_url.split("?", 1)[0])  # grants are per database
    try:
        _run(admin, f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS")
        for grant in LOGIN_GRANTS:
            _run(admin, grant.format(schema=schema, role=role))
        if _exists(admin, schema, "dataflow_nb_audit"):  # the audit log: written by runs, read by the owner
            _run(admin, f"REVOKE SELECT, UPDATE, DELETE ON {schema}.dataflow_nb_audit FROM {role}")
        yield owner_url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
    finally:
        _run(admin, f"DROP OWNED BY {role}")
        _run(admin, f"DROP ROLE IF EXISTS {role}")
        admin.close()


@contextmanager
def tenant_database(backend_url: str | None, **options: Any) -> Iterator[DataFlow]:
    """The models created by the owner; on PostgreSQL the yielded DataFlow logs in as ``login_role``."""
    with DataFlow(backend_url, multi_tenant=True, **options) as owner:
        define_models(owner)
        owner.runs()  # the owner creates the run history's table (and its row-level security)
        if backend_url is None or backend_url.startswith("duckdb"):
            yield owner
            return
    with login_role(backend_url) as url, DataFlow(url, multi_tenant=True, **options) as login:
        define_models(login)
        yield login


def runner(db: DataFlow) -> Callable[..., Any]:
    """``run(tenant, node_type, params)``: one node in one run as ``tenant``."""

    def run(tenant: str | None, node_type: str, params: dict[str, Any] | None = None) -> Any:
        workflow = WorkflowBuilder()
        node = db.nodes.get(node_type, node_type)
        workflow.add_node(node, "n", {**(params or {}), **({"db": db} if node_type == "SQLQueryNode" else {})})
        results, _ = LocalRuntime().execute(workflow.build(), tenant_id=tenant)
        return results["n"]

    return run
