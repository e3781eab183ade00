"""Values a notebook holds are parameters like their Python equivalents, on both backends.

numpy scalars, pandas ``Timestamp``/``NaT``, polars and pandas Series and numpy arrays; values
that used to escape as raw Python errors are ValidationErrors naming the field; Decimal
precision per field.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from dataflow_nb import DataFlow, Precision, SchemaError, ValidationError, WorkflowBuilder
from tests.conftest import model_fixtures, shared

PLUS_5 = dt.timezone(dt.timedelta(hours=5))
MINUS_5 = dt.timezone(dt.timedelta(hours=-5))


def add_things(db: DataFlow) -> DataFlow:
    @db.model
    class Thing:
        name: str
        n: int = 0
        x: float = 0.0
        on: bool = False
        at: dt.datetime | None = None
        day: dt.date | None = None
        clock: dt.time | None = None
        doc: dict | None = None  # type: ignore[type-arg]
        price: Decimal | None = None
        rate: Annotated[Decimal, Precision(38, 12)] | None = None

    return db


things, class_things = model_fixtures("things", add_things)


def build(node: str, params: dict[str, Any]) -> None:
    workflow = WorkflowBuilder()
    workflow.add_node(node, "node", params)
    workflow.build()


def names(run: Any, spec: dict[str, Any]) -> list[str]:
    return sorted(run("ThingListNode", {"filter": spec})["name"].to_list())


def test_numpy_and_pandas_scalars_are_accepted_like_python_values(things: DataFlow, run: Any) -> None:
    stamp = pd.Timestamp("2024-07-01 12:30:15.123456", tz="Europe/Berlin")
    created = run(
        "ThingCreateNode",
        {
            "name": np.str_("a"),
            "n": np.int64(7),
            "x": np.float64(1.5),
            "on": np.bool_(True),
            "at": stamp,
            "day": np.datetime64("2024-02-29"),
            "price": np.int32(3),
        },
    )
    row = created.row(0, named=True)
    assert (row["name"], row["n"], row["x"], row["on"], row["price"]) == ("a", 7, 1.5, True, Decimal(3))
    assert row["at"] == stamp.to_pydatetime() and row["day"] == dt.date(2024, 2, 29)
    run("ThingCreateNode", {"name": "b", "n": 8, "at": pd.NaT, "day": np.datetime64("NaT")})
    record = np.int64(created["id"][0])
    assert run("ThingReadNode", {"id": record})["name"].to_list() == ["a"]
    run("ThingUpdateNode", {"id": record, "n": np.int16(9), "at": np.datetime64("2024-01-01T00:00:00.5")})
    assert run("ThingReadNode", {"id": record})["at"].to_list() == [dt.datetime(2024, 1, 1, 0, 0, 0, 500000, dt.UTC)]

    assert names(run, {"n": np.int64(9)}) == ["a"]
    assert names(run, {"on": np.bool_(False)}) == ["b"]
    assert names(run, {"at": {"$gte": pd.Timestamp("2023-12-31", tz="UTC")}}) == ["a"]
    assert names(run, {"at": pd.NaT}) == ["b"]  # NaT is None: matches NULL
    assert run("ThingListNode", {"limit": np.int64(1), "order_by": "name"})["name"].to_list() == ["a"]
    assert run("ThingCountNode", {"filter": {"name": np.str_("b")}}) == 1


class TestSeriesAndArrays:
    """One Thing table per database for the class, emptied after each test."""

    things = shared("things", empty=("Thing",))

    run = shared("run")

    @pytest.mark.parametrize(
        "values",
        [
            pl.Series("n", [1, 3]),
            pd.Series([1, 3]),
            np.array([1, 3]),
            [np.int64(1), np.int64(3)],
        ],
        ids=["polars", "pandas", "numpy", "list-of-numpy"],
    )
    def test_series_and_arrays_are_in_lists_and_bulk_ids(self, things: DataFlow, run: Any, values: Any) -> None:
        ids = [
            run("ThingCreateNode", {"name": name, "n": n})["id"][0]
            for name, n in [("one", 1), ("two", 2), ("three", 3)]
        ]
        assert names(run, {"n": {"$in": values}}) == ["one", "three"]
        assert names(run, {"n": {"$nin": values}}) == ["two"]
        if isinstance(values, list):
            return  # a plain list of ids is not a bulk input (a list of dicts is)
        by_id = {"polars": pl.Series([ids[0], ids[2]]), "pandas": pd.Series([ids[0], ids[2]])}.get(
            type(values).__module__.partition(".")[0], np.array([ids[0], ids[2]])
        )
        report = run("ThingBulkDeleteNode", {"data": by_id})  # bulk ids: a Series or array of them
        assert report.deleted == 2
        assert names(run, {}) == ["two"]


@pytest.mark.slow  # binds 100,000 values
def test_in_with_100000_values_binds_one_array(things: DataFlow, run: Any) -> None:
    run("ThingBulkCreateNode", {"data": pl.DataFrame({"name": [f"r{i}" for i in range(1000)], "n": range(1000)})})
    wanted = np.arange(0, 200_000, 2)  # 100,000 values: PostgreSQL takes at most 65,535 parameters
    assert run("ThingCountNode", {"filter": {"n": {"$in": wanted}}}) == 500
    assert run("ThingCountNode", {"filter": {"n": {"$nin": wanted.tolist()}}}) == 500
    assert run("ThingCountNode", {"filter": {"name": {"$in": [f"r{i}" for i in range(100_000)]}}}) == 1000
    updated = run("ThingBulkUpdateNode", {"filter": {"n": {"$in": wanted}}, "fields": {"on": True}})
    assert updated.updated == 500


def test_in_on_uuid_decimal_and_datetime_fields(db: DataFlow, run: Any) -> None:
    import uuid

    @db.model
    class Tag:
        key: uuid.UUID
        price: Decimal
        at: dt.datetime

    keys = [uuid.uuid4() for _ in range(3)]
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for i, key in enumerate(keys):
        run("TagCreateNode", {"key": key, "price": Decimal(f"{i}.5"), "at": at + dt.timedelta(days=i)})
    assert run("TagCountNode", {"filter": {"key": {"$in": [str(keys[0]), keys[2]]}}}) == 2
    assert run("TagCountNode", {"filter": {"price": {"$in": [Decimal("1.5"), 2]}}}) == 1
    days = pd.Series(pd.to_datetime(["2024-01-02", "2024-01-03"], utc=True))
    assert run("TagCountNode", {"filter": {"at": {"$in": days}}}) == 2


class TestRefusedAtBuild:
    """Values refused when the workflow is built: nothing is written to the class's one table."""

    things = shared("things")

    run = shared("run")

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"x": 10**400}, r"field 'x': value 1000.*\.\.\..* is too large for a float"),
            ({"at": dt.datetime(1, 1, 1, tzinfo=PLUS_5)}, r"field 'at'.* outside the years 1 to 9999"),
            ({"at": dt.datetime(9999, 12, 31, 23, tzinfo=MINUS_5)}, r"field 'at'.* outside the years 1 to 9999"),
            (
                {"clock": dt.time(12, 0, tzinfo=dt.UTC)},
                r"field 'clock'.* has a time zone, which a time column cannot keep",
            ),
            ({"name": "a\x00b"}, r"field 'name'.* contains a NUL character"),
            ({"doc": {"k": "a\x00"}}, r"field 'doc'.* contains a NUL character .* in JSON"),
            ({"doc": {"k": [1.0, float("nan")]}}, r"field 'doc'.* not JSON-serialisable"),
            ({"price": Decimal("0.0000000001")}, r"field 'price'.* more than 9 decimal places, the column keeps 9"),
            ({"rate": Decimal("0.0000000000001")}, r"field 'rate'.* more than 12 decimal places, the column keeps 12"),
            ({"at": pd.Timestamp("2024-01-01 00:00:00.000000001")}, r"field 'at'.* has nanoseconds"),
        ],
        ids=["huge-int", "year-1", "year-9999", "time-tz", "nul", "json-nul", "json-nan", "scale", "scale-12", "ns"],
    )
    def test_values_that_do_not_fit_are_validation_errors_at_build(
        self, things: DataFlow, run: Any, params: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ValidationError, match=message):
            build("ThingCreateNode", {"name": "a", **params})
        if "doc" not in params:  # JSON fields are not filtered by value
            with pytest.raises(ValidationError, match=message):
                build("ThingListNode", {"filter": {k: {"$in": [v]} for k, v in params.items()}})
        assert run("ThingCountNode", {}) == 0  # nothing was written

    def test_error_messages_show_a_short_preview_of_a_large_value(self, things: DataFlow) -> None:
        with pytest.raises(ValidationError) as info:
            build("ThingCreateNode", {"name": "a", "n": "7" * 100_000})
        with pytest.raises(ValidationError) as listed:
            build("ThingListNode", {"filter": {"n": {"$in": np.array(["x"] * 100_000)}}})
        with pytest.raises(ValidationError) as scalar:
            build("ThingListNode", {"filter": {"n": {"$in": "y" * 100_000}}})
        for shown in (info, listed, scalar):
            assert len(str(shown.value)) < 600, str(shown.value)
        assert "..." in str(scalar.value)


def test_decimal_precision_per_field_round_trips(things: DataFlow, run: Any) -> None:
    model = things.models["Thing"]
    assert model.fields["rate"].type.label == "Decimal(38, 12)" and model.fields["price"].type.label == "Decimal"
    rate = Decimal("12345678901234567890123456.123456789012")
    created = run("ThingCreateNode", {"name": "a", "rate": rate, "price": Decimal("1.123456789")})
    assert created["rate"].to_list() == [rate]
    assert created["price"].to_list() == [Decimal("1.123456789")]
    assert names(run, {"rate": {"$gte": rate}}) == ["a"]
    assert names(run, {"rate": {"$in": [rate]}}) == ["a"]
    frame = run("ThingListNode", {})
    assert str(frame.schema["rate"]) == "Decimal(precision=38, scale=12)"
    with pytest.raises(ValidationError, match="more than 26 digits before the point"):
        build("ThingCreateNode", {"name": "b", "rate": Decimal(10**26)})


def test_precision_only_on_decimal_fields(db: DataFlow) -> None:
    with pytest.raises(ValidationError, match="field 'n' has Precision"):

        @db.model
        class Bad:
            n: Annotated[int, Precision(10, 2)]

    with pytest.raises(ValueError, match=r"Precision\(40, 2\)"):
        Precision(40, 2)


def test_a_precision_change_is_a_migration(db: DataFlow, run: Any) -> None:
    def define(precision: Precision) -> None:
        db.model(type("Price", (), {"__annotations__": {"amount": Annotated[Decimal, precision]}}))

    define(Precision(20, 4))
    run("PriceCreateNode", {"amount": Decimal("1.5")})
    with pytest.raises(SchemaError, match=r"change type amount: NUMERIC\(20, ?4\) -> NUMERIC\(30, ?8\)"):
        define(Precision(30, 8))
    db.migrate("Price", allow_destructive=True)
    assert run("PriceListNode", {})["amount"].to_list() == [Decimal("1.5")]
    assert str(run("PriceListNode", {}).schema["amount"]) == "Decimal(precision=30, scale=8)"


def test_a_sensitive_value_is_masked_in_the_new_messages(db: DataFlow) -> None:
    from dataflow_nb.security import Sensitive

    ssn_value = "SSN-778-12-4455"

    @db.model
    class Person:
        ssn: Annotated[str, Sensitive]
        n: int = 0

    long_value = ssn_value * 1000  # a preview would cut it, so masking by the whole value would miss it
    creates = [{"ssn": ssn_value + "\x00"}, {"ssn": long_value + "\x00"}]
    filters = [
        {"ssn": {"$in": long_value}},
        {"ssn": {"$in": pl.Series([long_value + "\x00"])}},
        {"ssn": {"$like": ssn_value + "\\"}},
        {"ssn": {"$between": long_value}},
        {"ssn": {"$exists": long_value}},
    ]
    attempts = [("PersonCreateNode", c) for c in creates] + [("PersonListNode", {"filter": f}) for f in filters]
    for node, params in attempts:
        with pytest.raises(ValidationError) as info:
            build(node, params)
        shown = str(info.value)
        assert "***" in shown, shown
        assert ssn_value[:8] not in shown, shown


def test_bulk_loads_refuse_nul_in_text_and_json_on_both_backends(things: DataFlow, run: Any) -> None:
    rows = pl.DataFrame({"name": ["ok", "bad\x00name", "fine"], "doc": ['{"a": 1}', '{"a": 2}', '{"a": "x\\u0000"}']})
    with pytest.raises(Exception, match=r"row 2, column 'name'.* contains a NUL character") as info:
        run("ThingBulkCreateNode", {"data": rows})
    assert "Nothing was written" in str(info.value)
    assert run("ThingCountNode", {}) == 0
    report = run("ThingBulkCreateNode", {"data": rows, "on_error": "quarantine"})
    assert report.rows_written == 1
    reasons = dict(zip(report.rejected["column"].to_list(), report.rejected["reason"].to_list(), strict=True))
    assert "contains a NUL character" in reasons["name"] and "in JSON" in reasons["doc"]
    assert run("ThingListNode", {})["name"].to_list() == ["ok"]


def test_a_nul_rejects_only_its_own_row_when_batches_share_one_buffer(things: DataFlow, run: Any) -> None:
    # One-row batches are slices of the same Arrow buffer: the NUL is in every batch's buffer.
    rows = pl.DataFrame({"name": ["ok", "bad\x00name", "fine"]})
    report = run("ThingBulkCreateNode", {"data": rows, "on_error": "quarantine", "batch_size": 1})
    assert report.rejected["row"].to_list() == [2]
    assert sorted(run("ThingListNode", {})["name"].to_list()) == ["fine", "ok"]


def test_a_version_read_into_pandas_updates_a_versioned_record(db: DataFlow, run: Any) -> None:
    @db.model
    class Doc:
        title: str

        __dataflow__ = {"versioned": True}

    created = run("DocCreateNode", {"title": "a"})
    read = created.to_pandas()
    record, version = read["id"].iloc[0], read["version"].iloc[0]  # numpy scalars, as pandas gives them
    assert isinstance(version, np.integer)
    updated = run("DocUpdateNode", {"id": record, "version": version, "title": "b"})
    assert updated["version"].to_list() == [2]
