"""PostgreSQL row-level security for multi-tenant tables: the database scopes raw SQL too.

Each multi-tenant table gets ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` and one policy,
``tenant_id = dataflow_nb_tenant()``, for reads and writes alike. The run's tenant is not a
session setting (any SQL on the connection could change one with ``set_config``): a run starts
by calling ``dataflow_nb_begin_tenant(tenant)``, a ``SECURITY DEFINER`` function that records
the transaction's tenant in ``dataflow_nb_run_tenants``, a table only its owner can touch. A
second call in the same transaction fails, so a statement cannot switch tenants midway, and the
record goes when the transaction does (a rolled-back run leaves nothing; committed ones are
swept by the next run). Superusers and ``BYPASSRLS`` roles are not bound by any of this:
runs must log in as an ordinary role (see docs/security.md).

Bookkeeping tables that name every tenant's runs (the run history) get other policies: a
transaction bound to a tenant reads only that tenant's rows and changes none; outside a
tenant's transaction (where dataflow_nb writes and reads the history) they are open. A secret
(the audit key) is read outside a tenant's transaction only, and changed by nobody.

Every tenant's runs log in as one role, and PostgreSQL shows a role the query text of its own
sessions and lets it end them: unless an administrator revokes that (docs/security.md), one
tenant's SQL reads another's statements and can end its run. ``exposed_sessions`` says what is
still granted, so the DataFlow can warn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dataflow_nb.backends.sql import quoted

RUN_TENANTS = "dataflow_nb_run_tenants"
POLICY = "dataflow_nb_tenant"
BOOKKEEPING_POLICY = "dataflow_nb_bookkeeping"
KEY_POLICY = "dataflow_nb_key"
BEGIN_TENANT_FUNCTION = "dataflow_nb_begin_tenant"
BEGIN_TENANT = f"SELECT {BEGIN_TENANT_FUNCTION}($1)"


def functions_ddl(schema: str) -> list[str]:
    """The run-tenants table and the two functions, in ``schema`` (idempotent)."""
    s = quoted(schema)
    path = f"{s}, pg_temp"  # a SECURITY DEFINER function must not follow the caller's search_path
    return [
        f"CREATE TABLE IF NOT EXISTS {s}.{RUN_TENANTS} (xid BIGINT PRIMARY KEY, tenant TEXT NOT NULL)",
        # RLS on with no policy: nobody but the owner (whom the functions run as) reads or writes it,
        # even a role granted every privilege on the schema's tables.
        f"ALTER TABLE {s}.{RUN_TENANTS} ENABLE ROW LEVEL SECURITY",
        f"REVOKE ALL ON {s}.{RUN_TENANTS} FROM PUBLIC",
        f"""CREATE OR REPLACE FUNCTION {s}.dataflow_nb_begin_tenant(run_tenant TEXT) RETURNS TEXT
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = {path} AS $fn$
BEGIN
  IF run_tenant IS NULL OR run_tenant = '' THEN
    RAISE EXCEPTION 'dataflow_nb: a run needs a tenant id';
  END IF;
  IF EXISTS (SELECT 1 FROM {s}.{RUN_TENANTS} WHERE xid = txid_current()) THEN
    RAISE EXCEPTION 'dataflow_nb: this transaction already acts for a tenant; a run cannot change it';
  END IF;
  DELETE FROM {s}.{RUN_TENANTS} WHERE xid IN (
    SELECT xid FROM {s}.{RUN_TENANTS} WHERE txid_status(xid) IS DISTINCT FROM 'in progress'
    FOR UPDATE SKIP LOCKED);
  INSERT INTO {s}.{RUN_TENANTS} VALUES (txid_current(), run_tenant);
  RETURN run_tenant;
END $fn$""",
        f"""CREATE OR REPLACE FUNCTION {s}.dataflow_nb_tenant() RETURNS TEXT
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {path} AS $fn$
  SELECT tenant FROM {s}.{RUN_TENANTS} WHERE xid = txid_current_if_assigned()
$fn$""",
    ]


def table_ddl(schema: str, table: str) -> list[str]:
    """Row-level security on one multi-tenant table."""
    tenant = _run_tenant(schema)
    return _policies_ddl(schema, table, [(POLICY, f"USING (tenant_id = {tenant}) WITH CHECK (tenant_id = {tenant})")])


def bookkeeping_ddl(schema: str, table: str) -> list[str]:
    """A bookkeeping table with a ``tenant_id`` column: read-only, and only its own rows, in a tenant's run."""
    tenant = _run_tenant(schema)
    return _policies_ddl(
        schema,
        table,
        [
            (f"{BOOKKEEPING_POLICY}_reads", f"FOR SELECT USING ({tenant} IS NULL OR tenant_id = {tenant})"),
            (BOOKKEEPING_POLICY, f"USING ({tenant} IS NULL) WITH CHECK ({tenant} IS NULL)"),
        ],
    )


def secret_ddl(schema: str, table: str) -> list[str]:
    """A table of secrets: no row in a tenant's transaction; no policy lets anyone change it."""
    return _policies_ddl(schema, table, [(KEY_POLICY, f"FOR SELECT USING ({_run_tenant(schema)} IS NULL)")])


def _run_tenant(schema: str) -> str:
    # (SELECT ...) makes the tenant an InitPlan: looked up once per statement, not once per row.
    return f"(SELECT {quoted(schema)}.dataflow_nb_tenant())"


def _policies_ddl(schema: str, table: str, policies: list[tuple[str, str]]) -> list[str]:
    """Row-level security on, forced (the owner is bound too), and ``policies`` (name, rule) made
    anew in order; the last one's presence is what ``protect_table`` checks for."""
    qualified = f"{quoted(schema)}.{quoted(table)}"
    statements = [
        f"ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {qualified} FORCE ROW LEVEL SECURITY",
    ]
    for name, rule in policies:
        statements += [f"DROP POLICY IF EXISTS {name} ON {qualified}", f"CREATE POLICY {name} ON {qualified} {rule}"]
    return statements


# What lets a role read its other sessions' query text or end them (granted to PUBLIC by default).
SESSION_PRIVILEGES = (
    ("table", "pg_catalog.pg_stat_activity"),
    ("function", "pg_catalog.pg_stat_get_activity(integer)"),
    ("function", "pg_catalog.pg_stat_get_backend_activity(integer)"),
    ("function", "pg_catalog.pg_terminate_backend(integer, bigint)"),
    ("function", "pg_catalog.pg_cancel_backend(integer)"),
)


def exposed_sessions(connection: Any) -> list[str]:
    """Which of ``SESSION_PRIVILEGES`` the current role holds; none counted for a superuser or a
    ``BYPASSRLS`` role, which no tenant's run may use anyway."""
    checks = [
        f"has_{kind}_privilege('{name}', '{'SELECT' if kind == 'table' else 'EXECUTE'}')"
        for kind, name in SESSION_PRIVILEGES
    ]
    result = connection.execute_sql(
        f"SELECT r.rolsuper OR r.rolbypassrls, {', '.join(checks)} FROM pg_roles r WHERE r.rolname = current_user"
    )
    assert result is not None and result.num_rows == 1
    exempt, *held = (result.column(i)[0].as_py() for i in range(result.num_columns))
    return [] if exempt else [name for (_, name), granted in zip(SESSION_PRIVILEGES, held, strict=True) if granted]


def isolate_table(connection: Any, table: str) -> None:
    """Apply the tenant policy to ``table`` unless it is already there (DDL takes a table lock)."""
    protect_table(connection, table, POLICY, table_ddl)


def protect_bookkeeping_table(connection: Any, table: str) -> None:
    """Apply the bookkeeping policies to ``table`` unless they are already there."""
    protect_table(connection, table, BOOKKEEPING_POLICY, bookkeeping_ddl)


def protect_secret_table(connection: Any, table: str) -> None:
    """Apply the secret policy to ``table`` unless it is already there."""
    protect_table(connection, table, KEY_POLICY, secret_ddl)


def protect_table(connection: Any, table: str, policy: str, ddl: Callable[[str, str], list[str]]) -> None:
    """Run ``ddl`` for ``table`` unless row-level security and ``policy`` are on it already; create
    the run-tenants table and functions first when the schema has none."""
    result = connection.execute_sql(
        "SELECT current_schema(), c.relrowsecurity AND c.relforcerowsecurity AND EXISTS ("
        "  SELECT 1 FROM pg_policies p WHERE p.schemaname = current_schema() AND p.tablename = $1"
        "  AND p.policyname = $2),"
        " EXISTS (SELECT 1 FROM pg_proc f WHERE f.proname = 'dataflow_nb_begin_tenant'"
        "  AND f.pronamespace = to_regnamespace(current_schema()))"
        " FROM pg_class c WHERE c.oid = to_regclass($1)",
        [table, policy],
    )
    assert result is not None and result.num_rows == 1, f"table {table} was just created"
    schema, protected, functions = (result.column(i)[0].as_py() for i in range(3))
    statements = ([] if functions else functions_ddl(schema)) + ([] if protected else ddl(schema, table))
    for statement in statements:
        connection.execute_sql(statement)
