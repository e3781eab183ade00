"""SQLQueryNode's statement check: literals and comments hide ';', ':name' and '$1'."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest

from dataflow_nb import ValidationError
from dataflow_nb.nodes.sql import normalize_result, prepare


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
    ],
)
def test_one_statement_with_named_parameters(sql: str, names: tuple[str, ...]) -> None:
    assert prepare(sql).names == names


def test_colons_in_literals_are_escaped_for_sqlalchemy_text() -> None:
    assert prepare("SELECT ':a' AS s, :b").text == "SELECT '\\:a' AS s, :b"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT 1; SELECT 2", "found 2"),
        ("SELECT ';'; DROP TABLE t", "found 2"),
        ("SELECT 1 -- c\n; DELETE FROM t", "found 2"),
        ("SELECT $1", r"positional parameter \$1"),
        ("BEGIN", "BEGIN is refused"),
        ("  rollback", "ROLLBACK is refused"),
        ("SELECT 'x", "unterminated"),
        ('SELECT "x', "unterminated"),
        ("SELECT /* x", "unterminated"),
        ("SELECT $a$ x", "unterminated"),
        (";", "found 0"),
        ("   ", "sql takes the text"),
        (None, "sql takes the text"),
    ],
)
def test_refused(sql: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        prepare(sql)


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
    result = normalize_result(table)
    assert result.schema.field("n").type == pa.decimal128(38, 1)
    assert result.column("n").to_pylist() == [Decimal("1.5"), Decimal("-2.0")]
    assert result.schema.field("d").type == pa.decimal128(10, 2)
    assert result.column("u").to_pylist() == [str(uuid.UUID(int=1)), None]
    assert result.schema.field("t").type == pa.timestamp("us", "UTC")
