"""Grouped Lists: the same values and the same dtypes on both databases, checked against polars."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dataflow_nb import DataFlow, LocalRuntime, ValidationError, WorkflowBuilder, WorkflowError
from tests.conftest import shared

CARRIERS = ["AA", "UA", "ua", None]
AGGREGATE = {
    "flights": {"$count": "*"},
    "delays": {"$count": "dep_delay"},
    "carriers": {"$count_distinct": "tail"},
    "total_delay": {"$sum": "dep_delay"},
    "avg_delay": {"$avg": "dep_delay"},
    "total_fare": {"$sum": "fare"},
    "avg_fare": {"$avg": "fare"},
    "total_miles": {"$sum": "miles"},
    "first_day": {"$min": "day"},
    "last_seen": {"$max": "seen"},
    "min_tail": {"$min": "tail"},
    "all_ok": {"$min": "ok"},
    "any_ok": {"$max": "ok"},
}
DTYPES = {
    "carrier": pl.String,
    "flights": pl.Int64,
    "delays": pl.Int64,
    "carriers": pl.Int64,
    "total_delay": pl.Int64,
    "avg_delay": pl.Float64,
    "total_fare": pl.Decimal(38, 9),
    "avg_fare": pl.Float64,
    "total_miles": pl.Float64,
    "first_day": pl.Date,
    "last_seen": pl.Datetime("us", "UTC"),
    "min_tail": pl.String,
    "all_ok": pl.Boolean,
    "any_ok": pl.Boolean,
}


def make_rows() -> list[dict[str, Any]]:
    rng = random.Random(7)  # noqa: S311 - test data, not secrets
    return [
        {
            "carrier": rng.choice(CARRIERS),
            "tail": rng.choice(["N1", "N2", "n3", "Z9", None]),
            "dep_delay": rng.choice([None, -5, 0, 3, 17, 2**40]),
            "fare": rng.choice([None, Decimal("99.99"), Decimal("0.000000001"), Decimal("-12.5")]),
            "miles": rng.choice([None, 0.5, 1200.25, -3.0]),
            "day": rng.choice([None, dt.date(2024, 1, 1), dt.date(2023, 12, 31)]),
            "seen": rng.choice([None, dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC)]),
            "ok": rng.choice([None, True, False]),
        }
        for _ in range(60)
    ]


def add_flight_model(db: DataFlow) -> DataFlow:
    @db.model
    class Flight:
        carrier: str | None = None
        tail: str | None = None
        dep_delay: int | None = None
        fare: Decimal | None = None
        miles: float | None = None
        day: dt.date | None = None
        seen: dt.datetime | None = None
        ok: bool | None = None
        meta: dict[str, Any] | None = None

    return db


@pytest.fixture(scope="class")
def class_flight_model(class_db: DataFlow) -> DataFlow:
    return add_flight_model(class_db)


@pytest.fixture(scope="class")
def class_flights(class_flight_model: DataFlow) -> list[dict[str, Any]]:
    """60 flights, written once for a class of tests that only read them."""
    rows = make_rows()
    workflow = WorkflowBuilder()
    for i, row in enumerate(rows):
        workflow.add_node(class_flight_model.nodes["FlightCreateNode"], f"f{i}", row)
    LocalRuntime().execute(workflow.build())
    return rows


def reference(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The same aggregation in polars, with the documented result types."""
    frame = pl.DataFrame(
        rows,
        schema={k: v for k, v in DTYPES.items() if k == "carrier"}
        | {
            "tail": pl.String,
            "dep_delay": pl.Int64,
            "fare": pl.Decimal(38, 9),
            "miles": pl.Float64,
            "day": pl.Date,
            "seen": pl.Datetime("us", "UTC"),
            "ok": pl.Boolean,
        },
    )
    return (
        frame.group_by("carrier")
        .agg(
            flights=pl.len().cast(pl.Int64),
            delays=pl.col("dep_delay").count().cast(pl.Int64),
            carriers=pl.col("tail").drop_nulls().n_unique().cast(pl.Int64),
            total_delay=pl.when(pl.col("dep_delay").count() > 0).then(pl.col("dep_delay").sum()),
            avg_delay=pl.col("dep_delay").mean(),
            total_fare=pl.when(pl.col("fare").count() > 0).then(pl.col("fare").sum()),
            avg_fare=pl.col("fare").cast(pl.Float64).mean(),
            total_miles=pl.when(pl.col("miles").count() > 0).then(pl.col("miles").sum()),
            first_day=pl.col("day").min(),
            last_seen=pl.col("seen").max(),
            min_tail=pl.col("tail").min(),
            all_ok=pl.when(pl.col("ok").count() > 0).then(pl.col("ok").all()),
            any_ok=pl.when(pl.col("ok").count() > 0).then(pl.col("ok").any()),
        )
        .sort("carrier", nulls_last=True)
        .cast(DTYPES)  # type: ignore[arg-type]
    )


class TestOneFlightTable:
    """Reads only, of the 60 flights written once for the class, on each database."""

    flight_model = shared("flight_model")

    flights = shared("flights")

    run = shared("run")

    def test_grouped_list_matches_polars_with_the_same_dtypes(self, flights: list[dict[str, Any]], run: Any) -> None:
        frame = run("FlightListNode", {"group_by": ["carrier"], "aggregate": AGGREGATE})
        assert dict(frame.schema) == DTYPES
        assert frame["carrier"].to_list() == ["AA", "UA", "ua", None]  # code-point order, NULL last
        # Float sums and averages may differ in the last bits between databases: compare closely.
        assert_frame_equal(frame, reference(flights), check_exact=False, rel_tol=1e-12)

    def test_filter_having_order_and_limit(self, flights: list[dict[str, Any]], run: Any) -> None:
        expected = reference([r for r in flights if r["miles"] is not None])
        expected = expected.filter(pl.col("flights") >= 5).sort(
            "flights", "carrier", descending=[True, False], nulls_last=True
        )
        frame = run(
            "FlightListNode",
            {
                "filter": {"miles": {"$exists": True}},
                "group_by": "carrier",
                "aggregate": {"flights": {"$count": "*"}, "avg_delay": {"$avg": "dep_delay"}},
                "having": {"flights": {"$gte": 5}, "carrier": {"$ne": "ua"}},
                "order_by": ["-flights"],
                "limit": 2,
            },
        )
        expected = expected.filter(pl.col("carrier").ne_missing("ua")).head(2).select("carrier", "flights", "avg_delay")
        assert_frame_equal(frame, expected, check_exact=False, rel_tol=1e-12)

    def test_totals_without_group_by_and_empty_results(self, flights: list[dict[str, Any]], run: Any) -> None:
        totals = run("FlightListNode", {"aggregate": {"n": {"$count": "*"}, "late": {"$max": "dep_delay"}}})
        assert totals.to_dicts() == [{"n": 60, "late": 2**40}]
        empty = run("FlightListNode", {"filter": {"id": {"$lt": 0}}, "group_by": ["carrier"], "aggregate": AGGREGATE})
        assert empty.height == 0
        assert dict(empty.schema) == DTYPES
        nothing = run(
            "FlightListNode", {"filter": {"id": {"$lt": 0}}, "aggregate": {"n": {"$count": "*"}, "s": {"$sum": "fare"}}}
        )
        assert nothing.to_dicts() == [{"n": 0, "s": None}]
        groups = run("FlightListNode", {"group_by": ["carrier", "ok"], "order_by": ["-ok"]})
        assert groups.columns == ["carrier", "ok"]
        assert groups.height == len({(r["carrier"], r["ok"]) for r in flights})

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            (
                {"aggregate": {"n": {"$median": "dep_delay"}}},
                r"unknown aggregate '\$median'.*; valid aggregates are \['\$count'",
            ),
            (
                {"aggregate": {"n": {"$sum": "carrier"}}},
                r"\$sum takes a number field \(int, float, Decimal\); 'carrier' is str",
            ),
            ({"aggregate": {"n": {"$avg": "nope"}}}, r"unknown field 'nope'"),
            (
                {"aggregate": {"n": {"$count_distinct": "*"}}},
                r"\$count_distinct takes a field name \('\*' counts rows with \$count only\)",
            ),
            ({"aggregate": {"n": {"$max": "meta"}}}, r"\$max has no order to use on dict field 'meta'"),
            ({"aggregate": {"n": {"$count": "*", "$sum": "miles"}}}, r"takes one operator"),
            ({"aggregate": {"bad name": {"$count": "*"}}}, r"aggregate name 'bad name' is not a valid name"),
            ({"group_by": ["carrier"], "aggregate": {"carrier": {"$count": "*"}}}, r"also a group_by field; rename it"),
            ({"group_by": ["meta"]}, r"cannot group on JSON field 'meta'"),
            ({"group_by": ["carrier", "carrier"]}, r"names a field twice"),
            ({"group_by": []}, r"group_by takes field names"),
            ({"group_by": ["carrier"], "fields": ["carrier"]}, r"drop fields"),
            ({"having": {"n": 1}}, r"having filters groups; give group_by and/or aggregate"),
            ({"group_by": "carrier", "having": {"n": {"$gt": 1}}}, r"unknown group_by field or aggregate name 'n'"),
            (
                {"group_by": "carrier", "order_by": ["-tail"]},
                r"valid group_by field or aggregate names are \['carrier'\]",
            ),
            ({"aggregate": {"n": {"$count": "*"}}, "having": {"n": {"$gt": "many"}}}, r"'n' is int; got 'many'"),
        ],
    )
    def test_bad_aggregations_are_refused_before_sql_runs(
        self, flight_model: Any, run: Any, params: Any, message: str
    ) -> None:
        with pytest.raises((ValidationError, WorkflowError), match=message):
            run("FlightListNode", params)


def test_pandas_frames_keep_integer_counts(backend_url: str | None) -> None:
    with DataFlow(backend_url, frame="pandas") as db:

        @db.model
        class Trip:
            city: str
            km: int | None = None

        workflow = WorkflowBuilder()
        for i, (city, km) in enumerate([("Oslo", 5), ("Oslo", None), ("Rome", 7)]):
            workflow.add_node(db.nodes["TripCreateNode"], f"t{i}", {"city": city, "km": km})
        aggregate = {"n": {"$count": "*"}, "km": {"$sum": "km"}, "avg": {"$avg": "km"}}
        workflow.add_node(db.nodes["TripListNode"], "by_city", {"group_by": ["city"], "aggregate": aggregate})
        frame = LocalRuntime().execute(workflow.build())[0]["by_city"]
        assert [str(t) for t in frame.dtypes[1:]] == ["Int64", "Int64", "Float64"]
        assert frame["km"].tolist() == [5, 7]
