"""Bulk nodes take a list of dicts holding Enum members, as Create does."""

from __future__ import annotations

import enum
from typing import Any, Literal

import pytest

from dataflow_nb import DataFlow, WorkflowError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def test_bulk_create_takes_enum_members_and_literal_text(db: DataFlow, run: Any) -> None:
    @db.model
    class Paint:
        color: Color
        finish: Literal["matte", "gloss"]

    rows = [{"color": Color.RED, "finish": "matte"}, {"color": "blue", "finish": "gloss"}]
    report = run("PaintBulkCreateNode", {"data": rows, "progress": False})
    assert report.inserted == 2
    listed = run("PaintListNode", {"order_by": ["id"]})
    assert listed["color"].to_list() == ["red", "blue"]

    with pytest.raises(WorkflowError, match=r"row 1, column 'color': value 'green' is not one of \['red', 'blue'\]"):
        run("PaintBulkCreateNode", {"data": [{"color": "green", "finish": "matte"}], "progress": False})
