"""Headers as DuckDB's reader names them: empty, repeated and case-equal names load; non-ASCII
letters are transliterated, never dropped; a column named like a managed one is ``source_<name>``.

The files are written by pandas and polars, as users get them (pandas writes its index as an
empty first header name, and repeated column names as they are).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

from dataflow_nb.bulk.infer import column_names
from dataflow_nb.bulk.sources import distinct_names
from tests.backends.test_bulk_real_files import load, rows


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        [[1, "x", 2.5, 7, 8, "a", "2024-01-01"], [2, "y", 3.5, 9, 10, "b", "2024-01-02"]],
        index=["r1", "r2"],
        columns=["v_1", "V_1", "Größe", "n", "n", "ID", "created_at"],
    )


def _write(tmp_path: Path, kind: str) -> Path:
    """The same table as a pandas CSV (index as an empty first name), gzipped, or a glob of two files."""
    plain = tmp_path / "wide.csv"
    _frame().to_csv(plain)
    if kind == "csv":
        return plain
    if kind == "csv.gz":
        packed = tmp_path / "wide.csv.gz"
        with plain.open("rb") as source, gzip.open(packed, "wb") as target:
            shutil.copyfileobj(source, target)
        plain.unlink()
        return packed
    folder = tmp_path / "parts"
    folder.mkdir()
    shutil.copy(plain, folder / "a.csv")
    shutil.move(plain, folder / "b.csv")
    return folder / "*.csv"


EXPECTED = {
    "column0": "str",
    "v_1": "int",
    "V_1_1": "str",
    "grosse": "float",
    "n": "int",
    "n_1": "int",
    "source_id": "str",
    "source_created_at": "date",
}


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "glob"])
def test_model_from_a_pandas_csv_with_odd_headers_loads_it(db: Any, tmp_path: Path, kind: str, capsys: Any) -> None:
    path = _write(tmp_path, kind)
    db.model_from(str(path), name="Wide")
    out = capsys.readouterr().out
    for shown in ("'' (column 1) -> column0", "'V_1' (column 3) -> V_1_1", "'n' (column 6) -> n_1"):
        assert shown in out
    assert "'Größe' -> grosse" in out and "'ID' -> source_id" in out
    assert {n: f.label for n, f in db.models["Wide"].fields.items() if not f.managed} == EXPECTED
    copies = 2 if kind == "glob" else 1
    assert load("Wide", source=str(path)).inserted == 2 * copies
    first = rows("Wide")[0]
    assert first == {
        "column0": "r1",
        "v_1": 1,
        "V_1_1": "x",
        "grosse": 2.5,
        "n": 7,
        "n_1": 8,
        "source_id": "a",
        "source_created_at": pl.Series(["2024-01-01"]).str.to_date()[0],
    }


@pytest.mark.parametrize("kind", ["parquet", "frame"])
def test_model_from_parquet_and_frames_renames_the_same_way(db: Any, tmp_path: Path, kind: str) -> None:
    frame = pl.DataFrame({"": ["r1", "r2"], "v_1": [1, 2], "V_1": ["x", "y"], "Größe": [1.5, 2.5], "ID": ["a", "b"]})
    source: Any = frame
    if kind == "parquet":
        source = str(tmp_path / "wide.parquet")
        frame.write_parquet(source)
    db.model_from(source, name="Wide")
    fields = {n: f.label for n, f in db.models["Wide"].fields.items() if not f.managed}
    assert fields == {"column": "str", "v_1": "int", "V_1_2": "str", "grosse": "float", "source_id": "str"}
    params = {"source": source} if kind == "parquet" else {"data": frame}
    assert load("Wide", **params).inserted == 2
    assert rows("Wide")[1] == {"column": "r2", "v_1": 2, "V_1_2": "y", "grosse": 2.5, "source_id": "b"}


def test_a_hand_written_model_renames_an_empty_header(db: Any, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text('"","speed","dist"\n"1",4,2\n"2",4,10\n')  # R's write.csv: row names under ""

    @db.model
    class Car:
        row: str
        speed: int
        dist: int

    assert load("Car", source=str(path), rename={"": "row"}).inserted == 2
    assert rows("Car") == [{"row": "1", "speed": 4, "dist": 2}, {"row": "2", "speed": 4, "dist": 10}]
    db.model_from(str(path), name="CarRows", rename={"": "row"})
    assert "row" in db.models["CarRows"].fields


def test_a_repeated_header_loads_into_a_hand_written_model(db: Any, tmp_path: Path) -> None:
    path = tmp_path / "rep.csv"
    path.write_text("a,b,a\n1,2,3\n")

    @db.model
    class Rep:
        a: int
        b: int
        a_1: int

    assert load("Rep", source=str(path)).inserted == 1
    assert rows("Rep") == [{"a": 1, "b": 2, "a_1": 3}]


def test_names_are_made_distinct_as_duckdb_makes_them(tmp_path: Path) -> None:
    import duckdb

    header = ["", "a", "b", "a", "A", "id", "ID", "", "a"]
    path = tmp_path / "names.csv"
    path.write_text(",".join(header) + "\n" + ",".join("1" * len(header)) + "\n")
    assert distinct_names(header) == duckdb.sql(f"SELECT * FROM read_csv('{path}')").columns


def test_managed_names_in_any_case_become_source_names() -> None:
    names = ["ID", "Created_At", "updated_at", "tenant_id", "VERSION", "deleted_at", "Straße", "名前"]
    assert list(column_names(names, {}).values()) == [
        "source_id",
        "source_created_at",
        "source_updated_at",
        "source_tenant_id",
        "source_version",
        "source_deleted_at",
        "strasse",
        "u540d_u524d",
    ]
