"""A Citus-ready schema: every unique key of a multi-tenant table contains tenant_id, and the plan.

Citus is not packaged for this machine, so these tests read the DDL dataflow_nb made from the
real catalog (PostgreSQL's pg_constraint and pg_index, DuckDB's duckdb_constraints() and
duckdb_indexes()) and check ``db.distribution_plan()``; no Citus server runs them.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy.schema import CreateSequence, CreateTable

from dataflow_nb import DataFlow, DataflowError, LocalRuntime, SchemaError, WorkflowBuilder, WorkflowError
from dataflow_nb.core.spec import spec_from_class


def define_models(db: DataFlow) -> None:
    @db.model
    class Customer:
        name: str
        email: str

        __dataflow__ = {"multi_tenant": True, "unique": [["email"]], "indexes": [["name"]]}

    @db.model
    class Order:
        number: int

        __dataflow__ = {"multi_tenant": True, "unique": [["number"]], "partition_by": ("list", "tenant_id")}

    @db.model
    class Event:
        name: str
        happened_at: dt.datetime

        __dataflow__ = {
            "multi_tenant": True,
            "unique": [["name", "happened_at"]],
            "partition_by": ("range", "happened_at", "month"),
        }

    @db.model
    class Country:
        code: str

        __dataflow__ = {"unique": [["code"]]}


TENANT_TABLES = {
    "customers": ["tenant_id", "id"],
    "orders": ["tenant_id", "id"],
    "events": ["tenant_id", "id", "happened_at"],
}
REFERENCE_TABLES = {"countries"}


def sql(db: DataFlow, statement: str) -> list[tuple[Any, ...]]:
    connection = db.backend.connect()
    try:
        result = connection.execute_sql(statement)
        connection.commit()
    finally:
        connection.close()
    return [] if result is None else [tuple(r.values()) for r in result.to_pylist()]


def unique_keys(db: DataFlow, table: str) -> tuple[list[str], list[list[str]]]:
    """(the primary key's columns, the columns of every unique constraint and unique index), read from the catalog."""
    if db.backend.capabilities.supports_distribution:  # PostgreSQL
        columns = (
            "array(SELECT a.attname FROM unnest({keys}) WITH ORDINALITY k(n, o) "
            "JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.n ORDER BY k.o)::text"
        )
        rows = sql(
            db,
            f"SELECT contype::text, {columns.format(keys='conkey', rel='conrelid')} FROM pg_constraint "
            f"WHERE conrelid = '{table}'::regclass AND contype IN ('p', 'u') UNION ALL "
            f"SELECT 'i', {columns.format(keys='indkey::int2[]', rel='indrelid')} FROM pg_index "
            f"WHERE indrelid = '{table}'::regclass AND indisunique",
        )
        keys = [(kind, text.strip("{}").split(",")) for kind, text in rows]
    else:
        rows = sql(
            db,
            "SELECT constraint_type, constraint_column_names FROM duckdb_constraints() "
            f"WHERE table_name = '{table}' AND constraint_type IN ('PRIMARY KEY', 'UNIQUE') UNION ALL "
            "SELECT 'i', string_split(trim(expressions, '[]'), ', ') FROM duckdb_indexes() "
            f"WHERE table_name = '{table}' AND is_unique",
        )
        keys = [("p" if kind == "PRIMARY KEY" else kind, [c.strip("'\"") for c in cols]) for kind, cols in rows]
    primary = [cols for kind, cols in keys if kind == "p"]
    assert len(primary) == 1, keys
    return primary[0], [cols for _, cols in keys]


def columns_of(db: DataFlow, table: str) -> set[str]:
    found = sql(
        db,
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = current_schema() AND table_name = '{table}'",
    )
    return {name for (name,) in found}


def test_every_unique_key_of_a_tenant_table_contains_tenant_id(db: DataFlow) -> None:
    define_models(db)
    for table, key in TENANT_TABLES.items():
        primary, uniques = unique_keys(db, table)
        assert primary == key, table
        assert len(uniques) >= 2 and all("tenant_id" in cols for cols in uniques), (table, uniques)
    for table in REFERENCE_TABLES:
        assert "tenant_id" not in columns_of(db, table)
        assert unique_keys(db, table)[0] == ["id"]


def test_the_plan_distributes_tenant_tables_and_copies_the_others(db: DataFlow) -> None:
    define_models(db)
    if not db.backend.capabilities.supports_distribution:
        with pytest.raises(DataflowError, match="never distributed; Citus is a PostgreSQL extension"):
            db.distribution_plan()
        return
    db.runs()  # the run history exists
    plan = db.distribution_plan()
    by_model = [(s.model, s.function) for s in plan.steps if s.model is not None]
    assert sorted(by_model) == sorted(
        [
            ("Country", "create_reference_table"),
            ("Customer", "create_distributed_table"),
            ("Order", "create_distributed_table"),
            ("Event", "create_distributed_table"),
        ]
    )
    assert plan.statements == [
        "SELECT create_reference_table('countries')",
        "SELECT create_distributed_table('customers', 'tenant_id', colocate_with => 'default')",
        "SELECT create_distributed_table('orders', 'tenant_id', colocate_with => 'customers')",
        "SELECT create_distributed_table('events', 'tenant_id', colocate_with => 'customers')",
    ]
    local = {s.table for s in plan.steps if s.function is None}
    assert {"dataflow_nb_runs", "dataflow_nb_migrations", "dataflow_nb_run_tenants"} <= local
    script = str(plan)
    assert "CREATE EXTENSION" in script and "SELECT create_reference_table('countries');" in script
    assert "-- dataflow_nb_runs: kept local on the coordinator" in script
    assert plan._repr_markdown_().startswith("```sql\n")


def test_a_model_that_cannot_be_distributed_is_refused_with_the_fix(postgres_url: str) -> None:
    with DataFlow(postgres_url) as db:

        @db.model
        class Reading:
            taken_at: dt.datetime

            __dataflow__ = {"partition_by": ("range", "taken_at", "month")}

        with pytest.raises(SchemaError, match="model Reading: Citus distributes a partitioned table only by hash"):
            db.distribution_plan()
    with DataFlow(postgres_url, multi_tenant=True) as db:

        @db.model
        class Customer:
            email: str

        sql(db, "CREATE UNIQUE INDEX by_hand ON customers (email)")
        with pytest.raises(SchemaError, match=r"model Customer: .*\['by_hand'\] without tenant_id"):
            db.distribution_plan()


def old_table(db: DataFlow, cls: type) -> None:
    """The table an older dataflow_nb made for ``cls``: PRIMARY KEY (id) rather than (tenant_id, id)."""
    spec = spec_from_class(cls, multi_tenant=True)
    dialect = db.backend.dialect
    sequence = spec.table.c.id.default
    create = str(CreateTable(spec.table).compile(dialect=dialect))
    old = re.sub(r"PRIMARY KEY \(tenant_id, id\)", "PRIMARY KEY (id)", create)
    assert old != create
    sql(db, str(CreateSequence(sequence).compile(dialect=dialect)))  # type: ignore[arg-type]
    sql(db, old)


def run_as(tenant: str, node: str, params: dict[str, Any]) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node(node, "n", params)
    results, _ = LocalRuntime().execute(workflow.build(), tenant_id=tenant)
    return results["n"]


def test_a_table_with_the_old_primary_key(backend_url: str | None) -> None:
    """PostgreSQL moves it to (tenant_id, id) in the model's migration; DuckDB cannot, and keeps (id)."""

    class Customer:
        name: str

    with DataFlow(backend_url, multi_tenant=True) as db:
        old_table(db, Customer)
        sql(db, "INSERT INTO customers (tenant_id, name) VALUES ('acme', 'A'), ('globex', 'G')")
        db.model(Customer)
        primary, _ = unique_keys(db, "customers")
        theirs = run_as("globex", "CustomerListNode", {})["id"][0]
        upsert = {"data": [{"id": theirs, "name": "mine"}], "conflict_on": ["id"]}
        if db.backend.capabilities.drops_constraints:
            assert primary == ["tenant_id", "id"]
            history = db.migration_history()
            assert [c for c in history["operation"].to_list() if "primary key" in c] == [
                "drop primary key",
                "add primary key",
            ]
            assert "ADD CONSTRAINT customers_pkey PRIMARY KEY (tenant_id, id)" in history["ddl"].to_list()[-1]
            assert run_as("acme", "CustomerBulkUpsertNode", upsert).inserted == 1
        else:
            assert primary == ["id"]
            assert db.migration_plan().height == 0  # nothing pending: the key is kept
            assert run_as("acme", "CustomerCreateNode", {"name": "A2"})["tenant_id"].to_list() == ["acme"]
            with pytest.raises(WorkflowError, match=r"keeps PRIMARY KEY \(id\)"):
                run_as("acme", "CustomerBulkUpsertNode", upsert)
        assert run_as("globex", "CustomerListNode", {})["name"].to_list() == ["G"]
