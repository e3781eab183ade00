"""Managed timestamps: created_at once, updated_at on every update path, both tz-aware."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dataflow_nb import LocalRuntime, ValidationError, WorkflowBuilder
from tests.conftest import runner


def define_item(db: Any) -> None:
    @db.model
    class Item:
        sku: str
        qty: int = 0
        __dataflow__ = {"unique": [["sku"]], "soft_delete": True, "versioned": True}


def stamps(frame: Any) -> tuple[dt.datetime, dt.datetime]:
    return frame["created_at"][0], frame["updated_at"][0]


def test_created_at_is_set_once_and_updated_at_moves_on_every_path(db: Any, run: Any) -> None:
    define_item(db)
    created, updated = stamps(run("ItemCreateNode", {"sku": "a"}))
    assert created.tzinfo is not None and updated.tzinfo is not None
    record = run("ItemListNode")["id"][0]
    paths = [
        ("ItemUpdateNode", {"id": record, "qty": 1}),
        ("ItemUpsertNode", {"sku": "a", "qty": 2}),
        ("ItemDeleteNode", {"id": record}),
        ("ItemRestoreNode", {"id": record}),
    ]
    for node, params in paths:
        now_created, now_updated = stamps(run(node, params))
        assert now_created == created, node
        assert now_updated > updated, node
        updated = now_updated


def test_created_at_cannot_be_changed_by_update(db: Any, run: Any) -> None:
    define_item(db)
    record = run("ItemCreateNode", {"sku": "a"})["id"][0]
    with pytest.raises(ValidationError, match="created_at is set once"):
        run("ItemUpdateNode", {"id": record, "created_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)})


def test_an_upsert_that_updates_keeps_created_at_even_when_given(db: Any, run: Any) -> None:
    define_item(db)
    created, _ = stamps(run("ItemCreateNode", {"sku": "a"}))
    later = run("ItemUpsertNode", {"sku": "a", "created_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)})
    assert later["created_at"][0] == created


# Far from UTC, with a 45-minute part and daylight saving: a value read in the wrong zone is visibly off.
SESSION_ZONE = "Pacific/Chatham"


@pytest.fixture
def zoned_db(backend_url: str | None) -> Iterator[Any]:
    """On PostgreSQL, a session whose time zone is not UTC (DuckDB's sessions are always UTC)."""
    from dataflow_nb import DataFlow

    url = None if backend_url is None else f"{backend_url}%20-cTimeZone%3D{SESSION_ZONE}"
    flow = DataFlow(url)
    yield flow
    flow.close()


def test_a_datetime_keeps_its_instant_whatever_the_session_time_zone(zoned_db: Any) -> None:
    """The backend binds a timestamp as its UTC wall-clock time and says so in the SQL (issue 24:
    ADBC's own zoned binds cost three more round trips); every path must still store, compare and
    return the very instant given, in any zone the value or the session is in."""
    db, run = zoned_db, runner(zoned_db)

    @db.model
    class Event:
        name: str
        at: dt.datetime
        __dataflow__ = {"unique": [["name"]]}

    new_york, chatham = ZoneInfo("America/New_York"), ZoneInfo(SESSION_ZONE)
    given = {
        "utc": dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
        "dst_gap": dt.datetime(2024, 3, 10, 1, 59, 59, 999999, tzinfo=new_york),  # just before 2:00 -> 3:00
        "session_zone": dt.datetime(2024, 9, 29, 4, 0, tzinfo=chatham),  # the session's zone, after its DST change
        "naive": dt.datetime(2024, 6, 1, 23, 30),  # naive values are read as UTC
    }
    for name, at in given.items():
        run("EventCreateNode", {"name": name, "at": at})
    instant = {name: at if at.tzinfo else at.replace(tzinfo=dt.UTC) for name, at in given.items()}
    frame = run("EventListNode", {"order_by": ["id"]})
    assert dict(zip(frame["name"], frame["at"], strict=True)) == instant

    def names(condition: dict[str, Any]) -> list[str]:
        return sorted(run("EventListNode", {"filter": {"at": condition}})["name"].to_list())

    noon_utc = instant["utc"]
    assert names({"$eq": noon_utc.astimezone(new_york)}) == ["utc"]
    assert names({"$gt": noon_utc}) == ["dst_gap", "naive", "session_zone"]
    assert names({"$lte": instant["dst_gap"].astimezone(chatham)}) == ["dst_gap", "utc"]
    assert names({"$in": [instant["naive"], instant["session_zone"].astimezone(dt.UTC)]}) == ["naive", "session_zone"]
    assert run("EventCountNode", {"filter": {"at": {"$lt": instant["naive"]}}}) == 2

    moved = dt.datetime(2030, 12, 31, 23, 59, tzinfo=new_york)
    record = int(frame["id"][0])
    assert run("EventUpdateNode", {"id": record, "at": moved})["at"][0] == moved
    assert run("EventReadNode", {"id": record})["at"][0] == moved
    assert run("EventUpsertNode", {"name": "utc", "at": noon_utc, "conflict_on": ["name"]})["at"][0] == noon_utc
    assert names({"$eq": noon_utc}) == ["utc"]

    # The run's session keeps its own zone after a statement bound a timestamp (ADBC's own zoned
    # binds set UTC and back around each statement).
    workflow = WorkflowBuilder()
    workflow.add_node("EventCreateNode", "create", {"name": "later", "at": moved})
    workflow.add_node("SQLQueryNode", "zone", {"sql": "SELECT current_setting('TimeZone') AS zone", "db": db})
    # ... and a statement with a datetime parameter is read in it too: noon UTC is the next day in Chatham.
    day = {"sql": "SELECT CAST(:at AS date) AS day", "params": {"at": noon_utc}, "db": db}
    workflow.add_node("SQLQueryNode", "day", day)
    results, _ = LocalRuntime().execute(workflow.build())
    on_postgres = db.backend.capabilities.name == "postgresql"
    assert results["zone"]["zone"][0] == (SESSION_ZONE if on_postgres else "Etc/UTC")
    assert results["day"]["day"][0] == (dt.date(2024, 1, 2) if on_postgres else dt.date(2024, 1, 1))
