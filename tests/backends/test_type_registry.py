"""One type registry: a value binds with the same SQL and Arrow type in a model filter, the query
builder and SQLQueryNode, and all three find the same row, on each database."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from dataflow_nb import DataFlow, LocalRuntime, ValidationError, WorkflowBuilder
from dataflow_nb.backends.base import compile_statement
from dataflow_nb.core import types
from dataflow_nb.nodes.sql import SQLQueryNode
from dataflow_nb.query import create_query_builder
from dataflow_nb.query.filters import compile_filter, model_target

VALUES: dict[str, Any] = {
    "s": "it's",
    "n": 2**40,
    "x": 1.5,
    "d": Decimal("12.345678912"),  # nine places: DuckDB's bare NUMERIC would keep three
    "seen": dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC),
    "born": dt.date(2024, 5, 6),
    "tm": dt.time(7, 8, 9),
    "key": uuid.UUID(int=7),
    "raw": b"\x00\xff",
    "ok": True,
}
# The first bound parameter and the cast the dialect renders for it, if any.
FIRST_BIND = re.compile(r"\$1(::[A-Z]+(?: [A-Z]+)*(?:\(\d+, \d+\))?)?")


@pytest.fixture(scope="class")
def typed(class_db: DataFlow, class_run: Any) -> DataFlow:
    """Two rows of every type, written once for the class: its tests only read them."""

    @class_db.model
    class Typed:
        s: str
        n: int
        x: float
        d: Decimal
        seen: dt.datetime
        born: dt.date
        tm: dt.time
        key: uuid.UUID
        raw: bytes
        ok: bool

    class_run("TypedCreateNode", VALUES)
    other = {
        "s": "other",
        "n": 1,
        "x": 2.5,
        "d": Decimal("1"),
        "seen": dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        "born": dt.date(2020, 1, 1),
        "tm": dt.time(1, 2, 3),
        "key": uuid.UUID(int=8),
        "raw": b"\x01",
        "ok": False,
    }
    class_run("TypedCreateNode", other)
    return class_db


def _dialect_name(db: DataFlow) -> Any:
    return "postgresql" if db.backend.capabilities.name == "postgresql" else "duckdb"


def _cast(sql: str) -> str:
    found = FIRST_BIND.search(sql)
    assert found is not None, sql
    return found.group(1) or ""


class TestOneTypedTable:
    """Reads only, of the two rows ``typed`` writes once for the class, on each database."""

    @pytest.mark.parametrize("field", list(VALUES))
    def test_model_filter_builder_and_sql_node_bind_alike(self, typed: DataFlow, field: str) -> None:
        value = VALUES[field]
        model = typed.models["Typed"]
        table = model.table
        by_model = compile_statement(
            sa.select(table.c.s).where(compile_filter(model_target(model, table), {field: value})),
            typed.backend.dialect,
        )
        builder_sql, builder_values = (
            create_query_builder(_dialect_name(typed))
            .table(model.table_name)
            .where(field, "$eq", value)
            .build_select(["s"])
        )
        node_sql = f"SELECT s FROM {model.table_name} WHERE {field} = :v"
        by_node = SQLQueryNode.compiled(typed, {"sql": node_sql, "params": {"v": value}})
        # The same SQL type: the same cast in the SQL text, the same Arrow type on the wire. The
        # PostgreSQL backend's own statements bind a timestamp as its UTC wall-clock time and say so
        # (``AT TIME ZONE 'UTC'``, issue 24); the builder's SQL, handed to users, keeps the usual cast.
        utc_wall_clock = field == "seen" and _dialect_name(typed) == "postgresql"
        wire = pa.timestamp("us") if utc_wall_clock else types.field_type_for(type(value)).arrow  # type: ignore[union-attr]
        run_cast = "::TIMESTAMP AT TIME ZONE" if utc_wall_clock else _cast(builder_sql)
        assert _cast(by_model.sql) == _cast(by_node.sql) == run_cast
        assert by_model.types == by_node.types == (wire,)
        if utc_wall_clock:
            assert _cast(builder_sql) == "::TIMESTAMP WITH TIME ZONE"
        assert list(by_model.values) == builder_values == list(by_node.values)

        # ... and so the same row, found by each.
        workflow = WorkflowBuilder()
        workflow.add_node("TypedListNode", "list", {"filter": {field: value}})
        workflow.add_node("SQLQueryNode", "sql", {"sql": node_sql, "params": {"v": value}})
        results, _ = LocalRuntime().execute(workflow.build())
        connection = typed.backend.connect()
        try:
            built = connection.execute_sql(builder_sql, builder_values)
        finally:
            connection.close()
        assert built is not None
        assert (
            results["list"]["s"].to_list() == results["sql"]["s"].to_list() == built.column("s").to_pylist() == ["it's"]
        )

    def test_text_binds_as_the_text_columns_type(self, typed: DataFlow) -> None:
        """str was TEXT in the model and VARCHAR in the builder and SQL nodes: now TEXT in all three."""
        sql, _ = (
            create_query_builder(_dialect_name(typed)).table("typeds").where("s", "$eq", "a").build_update({"s": "b"})
        )
        if typed.backend.capabilities.name == "postgresql":
            assert sql == "UPDATE typeds SET s=$1::TEXT WHERE typeds.s = $2::TEXT"
        else:  # DuckDB's dialect casts no text bind
            assert sql == "UPDATE typeds SET s=$1 WHERE typeds.s = $2"

    def test_builder_values_are_checked_like_model_values(self, typed: DataFlow) -> None:
        builder = create_query_builder(_dialect_name(typed)).table("typeds")
        with pytest.raises(ValidationError, match=r"field 'd': value .* has more than 9 decimal places"):
            builder.where("d", "$eq", Decimal("0.0000000001"))
        with pytest.raises(ValidationError, match=r"field 'n': value .* is outside the 64-bit integer range"):
            builder.where("n", "$gt", 2**63)
        with pytest.raises(ValidationError, match=r"cannot bind .* of type dict"):
            builder.where("s", "$eq", {"a": 1})
        # A naive datetime is read as UTC, as a model field reads it.
        _, values = builder.where("seen", "$lt", dt.datetime(2024, 1, 1)).build_select()
        assert values == [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)]


def test_lookups_agree_with_each_other() -> None:
    for field_type in types.FIELD_TYPES:
        assert types.field_type_for(field_type.python) is field_type
        assert types.field_type_named(field_type.label) is field_type
        by_sql = types.field_type_for_sql(field_type.sa_type())
        assert by_sql is not None and by_sql.arrow == field_type.arrow
    for value in VALUES.values():
        found = types.field_type_of(value)
        assert found is not None and found.python is type(value)
    assert types.field_type_of(True).label == "bool"  # type: ignore[union-attr]  # not int
    assert types.field_type_of(dt.datetime(2024, 1, 1)).label == "datetime"  # type: ignore[union-attr]  # not date
    assert types.field_type_of(object()) is None
    assert types.field_type_for_arrow(pa.large_string()).label == "str"  # type: ignore[union-attr]
    assert types.field_type_for_arrow(pa.timestamp("ns")).label == "datetime"  # type: ignore[union-attr]
    assert types.arrow_bind_type(sa.Numeric(20, 4)) == pa.decimal128(20, 4)


def test_every_field_type_reads_back_from_the_catalog(db: DataFlow) -> None:
    """Migrations compare a model with its table as the catalog reports it, in each database's
    own spelling (``catalog_types`` of its backend): every field type must read back as itself,
    or a changed type would go unnoticed (an unknown name reflects as NullType, never compared)."""
    from dataflow_nb.backends.reflect import sqlalchemy_connection

    hints = {f"f_{f.label.lower()}": f.python for f in types.FIELD_TYPES}
    db.model(type("EveryType", (), {"__annotations__": hints}))
    table = db.models["EveryType"].table_name
    dialect = db.backend.dialect
    with db.migrations.connection() as connection, sqlalchemy_connection(connection, db.backend) as reflecting:
        reflected = {c["name"]: c["type"] for c in sa.inspect(reflecting).get_columns(table)}
    for field_type in types.FIELD_TYPES:
        column = reflected[f"f_{field_type.label.lower()}"]
        wanted = field_type.sa_type().compile(dialect=dialect)
        assert column.compile(dialect=dialect) == wanted, (field_type.label, column)
