"""A bad value or a malformed line deep in a large file is named exactly, on every load path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dataflow_nb.exceptions import WorkflowError


@pytest.fixture
def items(db: Any) -> Any:
    @db.model
    class Item:
        k: int
        name: str
        amount: float

    return Item


def test_a_bad_value_past_the_first_batches_names_row_column_and_value(items: Any, run: Any, tmp_path: Path) -> None:
    """20,000 rows: DuckDB's typed read fails after its first batch (the old path lost the row)."""
    path = tmp_path / "items.csv"
    lines = [f"{'twelve' if i == 12_346 else i},n{i},{i * 0.5}" for i in range(1, 20_001)]
    path.write_text("k,name,amount\n" + "\n".join(lines) + "\n")
    with pytest.raises(WorkflowError) as raised:
        run("ItemBulkCreateNode", {"source": str(path), "progress": False})
    assert "row 12346, column 'k': value 'twelve' does not fit int" in str(raised.value)
    assert run("ItemCountNode") == 0


def test_a_line_with_too_many_fields_is_counted_in_full(items: Any, run: Any, tmp_path: Path) -> None:
    """DuckDB stops counting one past the expected number; the message counts every field."""
    path = tmp_path / "wide.csv"
    rows = ["k,name,amount", *(f"{i},n{i},1.5" for i in range(1, 3_000)), "1,2,3,4,5,6,7,8,9,10,11,12"]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(WorkflowError, match=r"line 3001: Expected Number of Columns: 3 Found: 12"):
        run("ItemBulkCreateNode", {"source": str(path), "progress": False})
