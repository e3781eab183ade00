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
"""

from __future__ import annotations

from typing import Any

from dataflow_nb.backends.sql import quoted

RUN_TENANTS = "dataflow_nb_run_tenants"
POLICY = "dataflow_nb_tenant"
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
    qualified = f"{quoted(schema)}.{quoted(table)}"
    # (SELECT ...) makes the tenant an InitPlan: looked up once per statement, not once per row.
    tenant = f"(SELECT {quoted(schema)}.dataflow_nb_tenant())"
    return [
        f"ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {qualified} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {POLICY} ON {qualified}",
        f"CREATE POLICY {POLICY} ON {qualified} USING (tenant_id = {tenant}) WITH CHECK (tenant_id = {tenant})",
    ]


def isolate_table(connection: Any, table: str) -> None:
    """Apply the policy to ``table`` unless it is already there (DDL takes a table lock)."""
    result = connection.execute_sql(
        "SELECT current_schema(), c.relrowsecurity AND c.relforcerowsecurity AND EXISTS ("
        "  SELECT 1 FROM pg_policies p WHERE p.schemaname = current_schema() AND p.tablename = $1"
        "  AND p.policyname = $2),"
        " EXISTS (SELECT 1 FROM pg_proc f WHERE f.proname = 'dataflow_nb_begin_tenant'"
        "  AND f.pronamespace = to_regnamespace(current_schema()))"
        " FROM pg_class c WHERE c.oid = to_regclass($1)",
        [table, POLICY],
    )
    assert result is not None and result.num_rows == 1, f"table {table} was just created"
    schema, protected, functions = (result.column(i)[0].as_py() for i in range(3))
    statements = ([] if functions else functions_ddl(schema)) + ([] if protected else table_ddl(schema, table))
    for statement in statements:
        connection.execute_sql(statement)
