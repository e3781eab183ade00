"""``model_from`` infers a file's types from its first rows and says so; a later value that does
not fit fails the load naming its row, column, value and the fix (``sample=None``)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dataflow_nb import ValidationError, WorkflowError
from tests.backends.test_bulk_real_files import load, rows


def _lines(count: int, bad_at: int | None = None) -> list[str]:
    return [f"{i},{'twelve' if i == bad_at else i * 2}" for i in range(1, count + 1)]


def _write(tmp_path: Path, kind: str, bad_at: int | None) -> Path:
    """300 rows ``n,twice``; ``twice`` is text at row ``bad_at``."""
    lines = _lines(300, bad_at)
    if kind == "glob":
        (tmp_path / "a.csv").write_text("n,twice\n" + "\n".join(lines[:150]) + "\n")
        (tmp_path / "b.csv").write_text("n,twice\n" + "\n".join(lines[150:]) + "\n")
        return tmp_path / "*.csv"
    text = "n,twice\n" + "\n".join(lines) + "\n"
    if kind == "csv.gz":
        path = tmp_path / "late.csv.gz"
        path.write_bytes(gzip.compress(text.encode()))
        return path
    path = tmp_path / "late.csv"
    path.write_text(text)
    return path


def _labels(db: Any, model: str) -> dict[str, str]:
    return {n: f.label for n, f in db.models[model].fields.items() if not f.managed}


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "glob"])
def test_a_value_past_the_sample_fails_the_load_naming_it_and_the_fix(
    db: Any, tmp_path: Path, kind: str, capsys: Any
) -> None:
    path = _write(tmp_path, kind, bad_at=250)
    db.model_from(str(path), name="Late", sample=100)
    assert f"Late: types inferred from the first 100 rows of {path}; pass sample=None to scan all" in (
        capsys.readouterr().out
    )
    assert _labels(db, "Late") == {"n": "int", "twice": "int"}  # row 250 was not read
    with pytest.raises(WorkflowError) as info:
        load("Late", source=str(path))
    message = str(info.value)
    assert "row 250, column 'twice': value 'twelve'" in message
    assert "inferred from the first 100 rows of its file" in message
    assert "model_from(..., sample=None)" in message
    assert rows("Late") == []


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "glob"])
def test_sample_none_reads_every_row(db: Any, tmp_path: Path, kind: str, capsys: Any) -> None:
    path = _write(tmp_path, kind, bad_at=250)
    db.model_from(str(path), name="Whole", sample=None)
    assert "types inferred from the first" not in capsys.readouterr().out
    assert _labels(db, "Whole") == {"n": "int", "twice": "str"}
    assert load("Whole", source=str(path)).inserted == 300


def test_a_file_within_the_sample_and_a_frame_say_nothing(db: Any, tmp_path: Path, capsys: Any) -> None:
    path = _write(tmp_path, "csv", bad_at=None)
    db.model_from(str(path), name="Short", sample=300)
    frame = pl.DataFrame({"n": list(range(500)), "note": [None] * 499 + ["x"]})
    db.model_from(frame, name="Framed", sample=10)  # a frame in memory is read whole
    assert "types inferred from the first" not in capsys.readouterr().out
    assert _labels(db, "Framed") == {"n": "int", "note": "Optional[str]"}
    assert "sampled_rows" not in db.models["Short"].options


def test_a_parquet_file_without_statistics_is_sampled(db: Any, tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "plain.parquet"
    pl.DataFrame({"n": list(range(300)), "note": ["x"] * 299 + [None]}).write_parquet(path, statistics=False)
    db.model_from(str(path), name="Plain", sample=100)
    assert "types inferred from the first 100 rows" in capsys.readouterr().out
    assert _labels(db, "Plain") == {"n": "int", "note": "str"}
    with pytest.raises(WorkflowError, match=r"row 300, column 'note': value None .*sample=None"):
        load("Plain", source=str(path))


@pytest.mark.parametrize("sample", [0, -5, True, "all"])
def test_sample_is_checked(db: Any, tmp_path: Path, sample: Any) -> None:
    with pytest.raises(ValidationError, match="sample takes a positive number of rows or None"):
        db.model_from(str(_write(tmp_path, "csv", None)), name="Bad", sample=sample)
