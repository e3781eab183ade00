"""Soft delete: Delete sets deleted_at, reads hide deleted rows unless asked; hard delete and restore."""

from __future__ import annotations

from typing import Any

import pytest

from dataflow_nb import NotFoundError, ValidationError, WorkflowError
from tests.helpers import rows_of


@pytest.fixture
def doc(db: Any) -> Any:
    @db.model
    class Doc:
        title: str
        __dataflow__ = {"soft_delete": True}

    return db


def cause(info: pytest.ExceptionInfo[WorkflowError]) -> BaseException | None:
    return info.value.__cause__


def test_delete_sets_deleted_at_and_reads_leave_the_row_out(doc: Any, run: Any) -> None:
    kept = run("DocCreateNode", {"title": "kept"})["id"][0]
    gone = run("DocCreateNode", {"title": "gone"})["id"][0]
    deleted = run("DocDeleteNode", {"id": gone})
    assert deleted["deleted_at"][0] is not None
    assert deleted["deleted_at"][0].tzinfo is not None
    assert rows_of(run("DocListNode"), ["id"]) == [{"id": kept}]
    assert run("DocCountNode") == 1
    assert run("DocCountNode", {"filter": {"title": "gone"}}) == 0
    with pytest.raises(WorkflowError) as info:
        run("DocReadNode", {"id": gone})
    assert isinstance(cause(info), NotFoundError)
    with pytest.raises(WorkflowError) as info:
        run("DocUpdateNode", {"id": gone, "title": "x"})
    assert isinstance(cause(info), NotFoundError)
    with pytest.raises(WorkflowError) as info:
        run("DocDeleteNode", {"id": gone})
    assert isinstance(cause(info), NotFoundError)


def test_include_deleted_shows_them(doc: Any, run: Any) -> None:
    run("DocCreateNode", {"title": "kept"})
    gone = run("DocCreateNode", {"title": "gone"})["id"][0]
    run("DocDeleteNode", {"id": gone})
    assert run("DocCountNode", {"include_deleted": True}) == 2
    listed = run("DocListNode", {"include_deleted": True, "filter": {"deleted_at": {"$exists": True}}})
    assert rows_of(listed, ["title"]) == [{"title": "gone"}]
    assert run("DocReadNode", {"id": gone, "include_deleted": True})["title"][0] == "gone"


def test_restore_brings_a_row_back(doc: Any, run: Any) -> None:
    gone = run("DocCreateNode", {"title": "back"})["id"][0]
    run("DocDeleteNode", {"id": gone})
    restored = run("DocRestoreNode", {"id": gone})
    assert restored["deleted_at"][0] is None
    assert run("DocCountNode") == 1
    with pytest.raises(WorkflowError) as info:
        run("DocRestoreNode", {"id": gone})  # not deleted any more
    assert "no deleted Doc" in str(cause(info))


def test_hard_delete_removes_the_row_even_when_soft_deleted(doc: Any, run: Any) -> None:
    first = run("DocCreateNode", {"title": "a"})["id"][0]
    second = run("DocCreateNode", {"title": "b"})["id"][0]
    run("DocDeleteNode", {"id": first})
    run("DocDeleteNode", {"id": first, "hard": True})
    run("DocDeleteNode", {"id": second, "hard": True})
    assert run("DocCountNode", {"include_deleted": True}) == 0


def test_upsert_of_a_deleted_record_brings_it_back(db: Any, run: Any) -> None:
    @db.model
    class Tag:
        name: str
        hits: int = 0
        __dataflow__ = {"soft_delete": True, "unique": [["name"]]}

    tag = run("TagCreateNode", {"name": "x"})["id"][0]
    run("TagDeleteNode", {"id": tag})
    upserted = run("TagUpsertNode", {"name": "x", "hits": 2})
    assert (upserted["id"][0], upserted["hits"][0], upserted["deleted_at"][0]) == (tag, 2, None)


def test_include_deleted_is_checked(doc: Any, db: Any, run: Any) -> None:
    @db.model
    class Plain:
        title: str

    with pytest.raises(WorkflowError, match="include_deleted=True needs soft delete on Plain"):
        run("PlainListNode", {"include_deleted": True})
    with pytest.raises(WorkflowError, match="include_deleted takes True or False"):
        run("DocCountNode", {"include_deleted": "yes"})
    with pytest.raises(ValidationError, match="unknown field 'deleted_at'"):
        run("DocCreateNode", {"title": "t", "deleted_at": None})
    assert "PlainRestoreNode" not in db.nodes


def test_turning_soft_delete_on_is_an_additive_migration(db: Any, run: Any) -> None:
    @db.model
    class Doc:
        title: str

    run("DocCreateNode", {"title": "a"})

    @db.model
    class Doc:  # type: ignore[no-redef]  # noqa: F811 (the re-run cell)
        title: str
        __dataflow__ = {"soft_delete": True}

    assert rows_of(run("DocListNode"), ["title", "deleted_at"]) == [{"title": "a", "deleted_at": None}]
    assert "DocRestoreNode" in db.nodes
