"""Managed timestamps: created_at once, updated_at on every update path, both tz-aware."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dataflow_nb import ValidationError


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
