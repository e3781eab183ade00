"""SQLQueryNode's statement check, with each database's own scanner and parser.

Literals, quoted names and comments hide ';', ':name' and '$1'; a second statement, a
transaction statement or a positional parameter is refused before anything runs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from dataflow_nb import ValidationError
from dataflow_nb.backends import duckdb_results, postgres_results
from dataflow_nb.backends.base import SQLReader, compile_statement
from dataflow_nb.backends.duckdb import DuckDBDialect
from dataflow_nb.backends.duckdb_sql import DuckDBSQLReader
from dataflow_nb.backends.postgres_sql import PostgresSQLReader
from dataflow_nb.query.user_sql import Prepared, check_statement, prepare

READERS: dict[str, tuple[SQLReader, Any]] = {
    "duckdb": (DuckDBSQLReader(), DuckDBDialect()),
    "postgres": (PostgresSQLReader(), postgresql.dialect(paramstyle="numeric_dollar")),  # type: ignore[no-untyped-call]
}


@pytest.fixture(params=list(READERS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def checked(sql: Any, backend: str) -> Prepared:
    """What SQLQueryNode checks before a run: parameters, then one statement (compiled, unbound)."""
    reader, dialect = READERS[backend]
    prepared = prepare(sql, reader)
    unbound = sa.text(prepared.text).bindparams(*(sa.bindparam(n) for n in prepared.names))
    check_statement(compile_statement(unbound, dialect), reader, binds_tenants=backend == "postgres")
    return prepared


@pytest.mark.parametrize(
    ("sql", "names"),
    [
        ("SELECT :a, :b, :a", ("a", "b")),
        ("SELECT x::int FROM t WHERE y = :y", ("y",)),
        ("SELECT ':not' || :yes", ("yes",)),
        ("SELECT 'it''s; :not' AS s", ()),
        ('SELECT 1 AS ";:not"', ()),
        ("SELECT E'\\'; :not' AS s", ()),
        ("SELECT $$ ; :not $$ AS s", ()),
        ("SELECT $tag$ ; $1 :not $tag$ AS s", ()),
        ("SELECT 1 -- ; :not\n, :yes", ("yes",)),
        ("SELECT 1 /* ; :not $1 */, :yes;", ("yes",)),
        ("SELECT 1;  -- trailing comment only", ()),
        ("SELECT 'é:' || :yes AS s", ("yes",)),
    ],
)
def test_one_statement_with_named_parameters(sql: str, names: tuple[str, ...], backend: str) -> None:
    assert checked(sql, backend).names == names


def test_colons_in_literals_are_escaped_for_sqlalchemy_text(backend: str) -> None:
    assert checked("SELECT ':a' AS s, :b", backend).text == "SELECT '\\:a' AS s, :b"
    assert checked("SELECT x::int, 'é:' AS s, :b", backend).text == "SELECT x\\:\\:int, 'é\\:' AS s, :b"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT 1; SELECT 2", "found 2"),
        ("SELECT ';'; DROP TABLE t", "found 2"),
        ("SELECT 1 -- c\n; DELETE FROM t", "found 2"),
        ("SELECT $1", r"positional parameter \$1"),
        ("SELECT ?", r"positional parameter \?|syntax error"),  # DuckDB's placeholder; an error to PostgreSQL
        ("BEGIN", "BEGIN is refused"),
        ("  rollback", "ROLLBACK is refused"),
        ("SELECT 'x", "unterminated"),
        ('SELECT "x', "unterminated"),
        ("SELECT /* x", "unterminated"),
        ("SELECT $a$ x", "unterminated|syntax error"),  # DuckDB reads $a$ x as a syntax error
        (";", "found 0"),
        ("   ", "sql takes the text"),
        (None, "sql takes the text"),
    ],
)
def test_refused(sql: str, message: str, backend: str) -> None:
    with pytest.raises(ValidationError, match=message):
        checked(sql, backend)


def test_results_are_evened_out_across_drivers() -> None:
    numeric = pa.field("n", pa.string(), metadata={b"POSTGRESQL:type": b"numeric", b"POSTGRESQL:typmod": b"-1"})
    typed = pa.field(
        "d", pa.string(), metadata={b"POSTGRESQL:type": b"numeric", b"POSTGRESQL:typmod": str((10 << 16 | 2) + 4)}
    )
    uuids = pa.array([uuid.UUID(int=1).bytes, None], pa.binary(16))
    table = pa.table(
        {
            "n": pa.ExtensionArray.from_storage(
                pa.opaque(pa.string(), "numeric", "PostgreSQL"), pa.array(["1.5", "-2"])
            ),
            "d": pa.ExtensionArray.from_storage(
                pa.opaque(pa.string(), "numeric", "PostgreSQL"), pa.array(["3.10", None])
            ),
            "u": pa.ExtensionArray.from_storage(pa.uuid(), uuids),
            "t": pa.array([dt.datetime(2024, 1, 1), None], pa.timestamp("us", "Etc/UTC")),
        }
    )
    table = pa.table(
        table.columns,
        schema=pa.schema(
            [
                numeric.with_type(table.schema.field("n").type),
                typed.with_type(table.schema.field("d").type),
                table.schema.field("u"),
                table.schema.field("t"),
            ]
        ),
    )
    result = postgres_results.normalize_result(table)
    assert result.schema.field("n").type == pa.decimal128(38, 1)
    assert result.column("n").to_pylist() == [Decimal("1.5"), Decimal("-2.0")]
    assert result.schema.field("d").type == pa.decimal128(10, 2)
    assert result.column("u").to_pylist() == [str(uuid.UUID(int=1)), None]
    assert result.schema.field("t").type == pa.timestamp("us", "UTC")
    relabelled = duckdb_results.normalize_result(table.select(["t"]))
    assert relabelled.schema.field("t").type == pa.timestamp("us", "UTC")
    plain = pa.table({"a": [1]})
    assert duckdb_results.normalize_result(plain) is plain  # nothing to even out: the table itself
