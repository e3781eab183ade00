"""Polars frames hold no Object columns: every field type reads, writes to files, joins, groups,
pickles and writes back unchanged, with the same dtypes on both backends (with ``fields=``,
for zero rows, and from SQLQueryNode). pandas keeps Python objects for UUID and JSON."""

from __future__ import annotations

import io
import json
import pickle
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dataflow_nb import DataFlow, LocalRuntime, ValidationError, WorkflowBuilder, WorkflowError
from tests.backends.test_types import ROUND_TRIP, define

FIELDS = list(ROUND_TRIP)
SECOND = {
    **{name: written for name, (_, written, _) in ROUND_TRIP.items()},
    "s": "second",
    "i": 7,
    "u": uuid.UUID("87654321-4321-8765-4321-876543218765"),
    "js": {"zz": 1, "a": {"y": [True]}},
    "ls": [{"k": None}],
}
EXPECTED_TEXT = {  # polars: UUID as canonical text, JSON as text (keys ordered as PostgreSQL's jsonb orders them)
    "u": "12345678-1234-5678-1234-567812345678",
    "js": '{"a": [1, 2.5, null, "x"], "b": {"c": true}}',
    "ls": '[1, "two", {"three": 3}]',
}


def run_node(db: DataFlow, node: str, params: dict[str, Any] | None = None) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node(db.nodes.get(node, node), "n", params or {})
    return LocalRuntime().execute(workflow.build())[0]["n"]


def filled(db: DataFlow) -> pl.DataFrame:
    define(db, nullable=True)
    run_node(db, "TypedCreateNode", {name: written for name, (_, written, _) in ROUND_TRIP.items()})
    run_node(db, "TypedCreateNode", SECOND)
    run_node(db, "TypedCreateNode", {})  # every field None
    frame: pl.DataFrame = run_node(db, "TypedListNode")
    return frame


def test_every_field_type_reads_into_a_plain_polars_frame(db: DataFlow, tmp_path: Path) -> None:
    frame = filled(db)
    assert not [n for n, dtype in frame.schema.items() if dtype == pl.Object]
    row = frame.row(0, named=True)
    for name, text in EXPECTED_TEXT.items():
        assert frame.schema[name] == pl.String, name
        assert row[name] == text, name
    assert frame.equals(run_node(db, "TypedListNode"))  # the same frame on every re-run
    frame.write_parquet(tmp_path / "typed.parquet")
    assert_frame_equal(pl.read_parquet(tmp_path / "typed.parquet"), frame)
    assert_frame_equal(pickle.loads(pickle.dumps(frame)), frame)  # noqa: S301 - our own bytes
    frame.drop("by").write_csv(io.BytesIO())  # polars writes no binary column to CSV, whatever its source
    for name in FIELDS:  # every column joins, groups, sorts and filters like any other
        counts = Counter(frame[name].to_list())
        joined = frame.join(frame.select(name, pl.col("id").alias("other_id")), on=name)
        assert joined.height == sum(n * n for value, n in counts.items() if value is not None), name
        assert frame.group_by(name).len().height == len(counts), name
        assert frame.sort(name, nulls_last=True)[name].to_list()[-1] is None, name
        assert frame.filter(pl.col(name) == frame[name][0]).height == counts[frame[name][0]], name
    assert frame.to_arrow()["u"].to_pylist()[0] == EXPECTED_TEXT["u"]  # text, not pointer bytes


def test_a_list_frame_writes_back_unchanged(db: DataFlow) -> None:
    frame = filled(db)
    report = run_node(db, "TypedBulkUpsertNode", {"data": frame, "conflict_on": ["id"]})
    # The same values again: every row matches and none is rewritten (issue 21: unchanged rows are left as they are).
    assert (report.updated, report.unchanged, report.inserted, report.rows_rejected) == (0, 3, 0, 0)
    again = run_node(db, "TypedListNode")
    assert_frame_equal(again.drop("updated_at"), frame.drop("updated_at"))
    report = run_node(db, "TypedBulkUpdateNode", {"data": frame.drop("created_at", "updated_at")})
    assert report.updated == 3
    assert_frame_equal(run_node(db, "TypedListNode").drop("updated_at"), frame.drop("updated_at"))

    # UUID as 16 bytes (a Binary column) or uuid.UUID, JSON as objects: the same rows again.
    ids, uuids, docs = frame["id"].to_list(), frame["u"].to_list(), frame["js"].to_list()
    as_bytes = pl.DataFrame({"id": ids, "u": [u and uuid.UUID(u).bytes for u in uuids]})
    assert as_bytes.schema["u"] == pl.Binary
    run_node(db, "TypedBulkUpdateNode", {"data": as_bytes})
    objects = [
        {"id": i, "u": u and uuid.UUID(u), "js": d and json.loads(d)} for i, u, d in zip(ids, uuids, docs, strict=True)
    ]
    run_node(db, "TypedBulkUpdateNode", {"data": objects})
    assert_frame_equal(run_node(db, "TypedListNode").drop("updated_at"), frame.drop("updated_at"))

    decoded = run_node(db, "TypedListNode", {"json": "decode", "fields": ["id", "js", "ls"], "filter": {"id": 2}})
    assert decoded.schema["ls"] != pl.String
    run_node(db, "TypedBulkUpdateNode", {"data": decoded})
    assert run_node(db, "TypedReadNode", {"id": 2}).select("js", "ls").row(0) == (
        '{"a": {"y": [true]}, "zz": 1}',
        '[{"k": null}]',
    )


def test_json_decode_per_node_and_per_dataflow(backend_url: str | None) -> None:
    with DataFlow(backend_url, json="decode") as db:

        @db.model
        class Doc:
            meta: dict
            tags: list

        run_node(db, "DocCreateNode", {"meta": {"a": 1, "b": "x"}, "tags": [1, 2]})
        run_node(db, "DocCreateNode", {"meta": {"a": 2, "b": None}, "tags": []})
        frame = run_node(db, "DocListNode")
        assert frame.schema["meta"] == pl.Struct({"a": pl.Int64, "b": pl.String})
        assert frame.schema["tags"] == pl.List(pl.Int64)
        assert frame["meta"].to_list() == [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
        assert run_node(db, "DocListNode", {"json": "text"})["tags"].to_list() == ["[1, 2]", "[]"]
        assert run_node(db, "DocReadNode", {"id": 1, "json": "text"})["meta"].to_list() == ['{"a": 1, "b": "x"}']

        run_node(db, "DocCreateNode", {"meta": {"a": [1]}, "tags": [{"not": "an int"}]})
        with pytest.raises(WorkflowError, match=r"DocListNode.*field 'tags': json='decode' needs every value"):
            run_node(db, "DocListNode")
        with pytest.raises(ValidationError, match=r"DocListNode: json='yes'; choose 'text' .* or 'decode'"):
            run_node(db, "DocListNode", {"json": "yes"})


def test_pandas_keeps_python_objects(backend_url: str | None) -> None:
    with DataFlow(backend_url, frame="pandas") as db:
        define(db, nullable=True)
        run_node(db, "TypedCreateNode", {name: written for name, (_, written, _) in ROUND_TRIP.items()})
        row = run_node(db, "TypedListNode").iloc[0]
        for name in ("u", "js", "ls"):
            assert row[name] == ROUND_TRIP[name][1], name  # uuid.UUID, dict and list, as written


def test_duckdb_and_postgresql_give_the_same_frames(postgres_url: str) -> None:
    frames: dict[str, list[pl.DataFrame]] = {}
    for url in (None, postgres_url):
        with DataFlow(url) as db:
            frame = filled(db).drop("created_at", "updated_at")
            frames.setdefault("list", []).append(frame)
            frames.setdefault("fields", []).append(run_node(db, "TypedListNode", {"fields": FIELDS}))
            frames.setdefault("empty", []).append(
                run_node(db, "TypedListNode", {"filter": {"id": 0}, "fields": FIELDS})
            )
            frames.setdefault("decoded", []).append(
                run_node(db, "TypedListNode", {"fields": ["js", "ls"], "json": "decode", "filter": {"id": 2}})
            )
            columns = ", ".join(f'"{name}"' for name in FIELDS)  # "by" is a keyword in DuckDB
            sql = f"SELECT {columns} FROM typeds ORDER BY id"
            frames.setdefault("sql", []).append(run_node(db, "SQLQueryNode", {"sql": sql, "db": db}))
            empty_sql = f"SELECT {columns} FROM typeds WHERE id = 0"
            frames.setdefault("sql_empty", []).append(run_node(db, "SQLQueryNode", {"sql": empty_sql, "db": db}))
    for kind, (duck, postgres) in frames.items():
        try:
            assert_frame_equal(duck, postgres)
        except AssertionError as exc:
            raise AssertionError(f"{kind}: the DuckDB frame differs from the PostgreSQL frame: {exc}") from None
    assert frames["empty"][0].schema == frames["fields"][0].schema  # zero rows, the same dtypes
    assert frames["sql_empty"][0].schema == frames["sql"][0].schema
    assert frames["sql"][0]["u"].to_list()[:2] == [EXPECTED_TEXT["u"], str(SECOND["u"])]


def test_a_statement_run_again_gives_the_same_frame(db: DataFlow) -> None:
    """From its second run on, a statement whose result needed nothing evened out or cast goes
    from the driver straight into polars (on PostgreSQL ADBC's own stream, no pyarrow table:
    issue 24). Its frames are the first run's, for plain fields and for every other type, which
    keep the Arrow path; and a Read that finds nothing still says so."""
    import datetime as dt

    from dataflow_nb import NotFoundError

    @db.model
    class Plain:
        name: str
        n: int
        x: float
        ok: bool
        day: dt.date
        seen: dt.datetime

    @db.model
    class Money:  # numeric comes from ADBC as text: evened to a decimal every time, then no cast
        name: str
        amount: Decimal

    define(db, nullable=True)
    day = dt.date(2024, 1, 2)
    plain = {"name": "a", "n": 1, "x": 0.5, "ok": True, "day": day, "seen": dt.datetime(2024, 1, 2, tzinfo=dt.UTC)}
    typed = {name: written for name, (_, written, _) in ROUND_TRIP.items()}
    money = {"name": "m", "amount": Decimal("12.50")}
    for model, values in (("Plain", plain), ("Money", money), ("Typed", typed)):
        created = [run_node(db, f"{model}CreateNode", values) for _ in range(3)]
        assert created[2].schema == created[0].schema, model
        record = created[0]["id"][0]
        for node, params in ((f"{model}ReadNode", {"id": record}), (f"{model}ListNode", {})):
            first = run_node(db, node, params)
            for _ in range(2):
                assert_frame_equal(run_node(db, node, params), first)
        with pytest.raises(WorkflowError) as missing:
            run_node(db, f"{model}ReadNode", {"id": 10**9})
        assert isinstance(missing.value.__cause__, NotFoundError), model
        changed = run_node(db, f"{model}UpdateNode", {"id": record, "s" if model == "Typed" else "name": "b"})
        assert_frame_equal(changed, run_node(db, f"{model}ReadNode", {"id": record}))

    def seen(node: str) -> list[Any]:
        return [compiled.seen for compiled in db.nodes[node]._statements.values()]

    plain_seen = seen("PlainReadNode") + seen("PlainCreateNode") + seen("PlainUpdateNode")
    assert plain_seen and all(s.cast is False for s in plain_seen)  # straight into polars from now on
    if db.backend.capabilities.name == "postgresql":
        assert all(s.evened is False for s in plain_seen)  # ADBC's own stream
        assert all(s.evened for s in seen("TypedReadNode") + seen("MoneyReadNode"))  # evened each time
    assert all(s.cast is False for s in seen("MoneyReadNode"))  # so only the evening keeps it off the stream
