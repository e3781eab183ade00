"""Real-world CSV and Parquet: the formats and markers files carry, reader options, nothing altered silently."""

from __future__ import annotations

import datetime as dt
import gzip
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dataflow_nb import ValidationError, WorkflowError
from tests.backends.test_bulk_files import run
from tests.conftest import model_fixtures, shared


def load(model: str, **params: Any) -> Any:
    return run((f"{model}BulkCreateNode", "load", {"progress": False, **params}))["load"]


def rows(model: str) -> list[dict[str, Any]]:
    listed = run((f"{model}ListNode", "all", {"order_by": "id", "limit": 1000}))["all"]
    return [{k: v for k, v in r.items() if k not in ("id", "created_at", "updated_at")} for r in listed.to_dicts()]


# -- nothing altered silently (each of these stored altered data with 0 rejected rows before) -----


def test_a_byte_order_mark_is_dropped_so_the_first_column_keeps_its_type(db: Any, tmp_path: Path) -> None:
    @db.model
    class Zip:
        code: str
        n: int

    path = tmp_path / "zips.csv"
    path.write_bytes(b"\xef\xbb\xbfcode,n\n02134,1\n00501,2\n")
    assert load("Zip", source=str(path)).inserted == 2
    assert rows("Zip") == [{"code": "02134", "n": 1}, {"code": "00501", "n": 2}]


def test_an_unterminated_quote_is_an_error_with_its_line(db: Any, tmp_path: Path) -> None:
    @db.model
    class Note:
        a: int
        b: str

    path = tmp_path / "notes.csv"
    path.write_text('a,b\n1,x\n2,"y\n3,z\n')
    with pytest.raises(WorkflowError, match=r"notes.csv: malformed CSV at line 3: a quoted field is never closed"):
        load("Note", source=str(path))
    assert rows("Note") == []


def test_a_row_with_too_few_fields_is_an_error_with_its_line(db: Any, tmp_path: Path) -> None:
    @db.model
    class Note:
        a: int
        b: str | None

    path = tmp_path / "notes.csv"
    path.write_text("a,b\n1,x\n2\n")
    with pytest.raises(WorkflowError, match=r"notes.csv: malformed CSV at line 3"):
        load("Note", source=str(path))


def add_reading(db: Any) -> Any:
    @db.model
    class Reading:
        station: str
        value: int

    return Reading


reading, class_reading = model_fixtures("reading", add_reading)


def test_a_parquet_file_with_an_extra_column_is_refused_naming_it(reading: Any, tmp_path: Path) -> None:
    pl.DataFrame({"station": ["a"], "value": [1]}).write_parquet(tmp_path / "part1.parquet")
    pl.DataFrame({"station": ["b"], "value": [2], "flag": [True]}).write_parquet(tmp_path / "part2.parquet")
    pattern = str(tmp_path / "part*.parquet")
    with pytest.raises(WorkflowError, match=r"part2.parquet has column\(s\) \['flag'\].*extra='ignore'"):
        load("Reading", source=pattern)
    assert load("Reading", source=pattern, extra="ignore").inserted == 2
    assert rows("Reading") == [{"station": "a", "value": 1}, {"station": "b", "value": 2}]


def test_a_parquet_file_lacking_a_column_is_refused_naming_it(reading: Any, tmp_path: Path) -> None:
    pl.DataFrame({"station": ["a"], "value": [1]}).write_parquet(tmp_path / "part1.parquet")
    pl.DataFrame({"station": ["b"]}).write_parquet(tmp_path / "part2.parquet")
    with pytest.raises(WorkflowError, match=r"part2.parquet has no column\(s\) \['value'\]"):
        load("Reading", source=str(tmp_path / "part*.parquet"))


def test_an_extra_column_the_model_lacks_is_refused_unless_ignored(reading: Any, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("station,value,comment\na,1,fine\n")
    with pytest.raises(WorkflowError, match=r"column\(s\) \['comment'\] that Reading does not have.*extra='ignore'"):
        load("Reading", source=str(path))
    assert load("Reading", source=str(path), extra="ignore").inserted == 1


class TestBadIntegerText:
    """One Reading table per database for the class, emptied after each test."""

    reading = shared("reading", empty=("Reading",))

    @pytest.mark.parametrize("value", ["0x10", "1e3", "12abc", "4.5", "١٢"])
    def test_text_that_is_not_a_plain_decimal_int_is_a_bad_row(self, reading: Any, tmp_path: Path, value: str) -> None:
        path = tmp_path / "r.csv"
        path.write_text(f"station,value\na,1\nb,{value}\n")
        report = load("Reading", source=str(path), on_error="quarantine")
        assert (report.inserted, report.rows_rejected) == (1, 1)
        bad = report.rejected.select("row", "column", "value").to_dicts()
        assert bad == [{"row": 2, "column": "value", "value": value}]


# -- what files carry: dates, times, null markers, booleans, numbers --------------------------------


def test_formats_and_markers_of_real_files(db: Any, tmp_path: Path) -> None:
    @db.model
    class Day:
        slash: dt.date
        us: dt.date
        month_name: dt.date
        minutes: dt.datetime
        mixed: dt.datetime
        at: dt.time | None
        rain: float | None
        flag: bool
        count: int
        price: Decimal | None

    path = tmp_path / "days.csv"
    path.write_text(
        "slash,us,month_name,minutes,mixed,at,rain,flag,count,price\n"
        "2012/01/01,01/31/2012,Jan 1 2000,2012/01/31 08:00,2012-01-31 08:00:00,08:00:00,NA,t, 42,1.50\n"
        "2012/01/02,12/01/2012,Feb 10 2001,2012/01/31 09:30,2012-01-31T09:00:00Z,23:59:59.5,N/A,yes,+5,NULL\n"
        "2012/12/31,02/28/2012,Mar 3 2002,2012/02/01 00:00,2012-01-31T10:00:00+01:00,,,F,2009.0,\n"
    )
    report = load("Day", source=str(path))
    assert (report.inserted, report.rows_rejected) == (3, 0)
    utc = dt.UTC
    assert rows("Day") == [
        {
            "slash": dt.date(2012, 1, 1),
            "us": dt.date(2012, 1, 31),
            "month_name": dt.date(2000, 1, 1),
            "minutes": dt.datetime(2012, 1, 31, 8, tzinfo=utc),
            "mixed": dt.datetime(2012, 1, 31, 8, tzinfo=utc),
            "at": dt.time(8),
            "rain": None,
            "flag": True,
            "count": 42,
            "price": Decimal("1.5"),
        },
        {
            "slash": dt.date(2012, 1, 2),
            "us": dt.date(2012, 12, 1),
            "month_name": dt.date(2001, 2, 10),
            "minutes": dt.datetime(2012, 1, 31, 9, 30, tzinfo=utc),
            "mixed": dt.datetime(2012, 1, 31, 9, tzinfo=utc),
            "at": dt.time(23, 59, 59, 500000),
            "rain": None,
            "flag": True,
            "count": 5,
            "price": None,
        },
        {
            "slash": dt.date(2012, 12, 31),
            "us": dt.date(2012, 2, 28),
            "month_name": dt.date(2002, 3, 3),
            "minutes": dt.datetime(2012, 2, 1, tzinfo=utc),
            "mixed": dt.datetime(2012, 1, 31, 9, tzinfo=utc),
            "at": None,
            "rain": None,
            "flag": False,
            "count": 2009,
            "price": None,
        },
    ]


def test_a_date_in_another_format_than_its_column_is_a_bad_row_naming_the_format(db: Any, tmp_path: Path) -> None:
    @db.model
    class Day:
        day: dt.date

    path = tmp_path / "days.csv"
    path.write_text("day\n2012-01-01\n2012-01-02\n01/03/2012\n")
    report = load("Day", source=str(path), on_error="quarantine")
    assert (report.inserted, report.rows_rejected) == (2, 1)
    [bad] = report.rejected.to_dicts()
    assert (bad["row"], bad["value"]) == (3, "01/03/2012")
    assert "format '%Y-%m-%d'" in bad["reason"] and "date_format=" in bad["reason"]


def test_ambiguous_day_and_month_need_a_date_format(db: Any, tmp_path: Path) -> None:
    @db.model
    class Day:
        day: dt.date

    path = tmp_path / "days.csv"
    path.write_text("day\n01/02/2012\n03/04/2012\n")
    with pytest.raises(WorkflowError, match=r"fit both '%m/%d/%Y' and '%d/%m/%Y'.*pass date_format="):
        load("Day", source=str(path))
    assert load("Day", source=str(path), date_format="%d/%m/%Y").inserted == 2
    assert [r["day"] for r in rows("Day")] == [dt.date(2012, 2, 1), dt.date(2012, 4, 3)]


# -- reader options, the same on bulk nodes, CSVReaderNode and model_from ---------------------------


@pytest.fixture
def city(db: Any) -> Any:
    @db.model
    class City:
        name: str
        founded: dt.date | None
        big: bool

    return City


def test_reader_options_on_a_bulk_node(city: Any, tmp_path: Path) -> None:
    path = tmp_path / "cities.txt"
    text = "# exported 2024\nskip me\nname;founded;big;note\n# a comment\n'Köln';31.12.0050;ja;x\n'Zürich';-;nein;y\n"
    path.write_bytes(text.encode("latin-1"))
    report = load(
        "City",
        source=str(path),
        skip_rows=2,
        comment_prefix="#",
        delimiter=";",
        quote_char="'",
        encoding="latin-1",
        null_values=["-"],
        true_values=["ja"],
        false_values=["nein"],
        date_format="%d.%m.%Y",
        columns=["name", "founded", "big"],
    )
    assert (report.inserted, report.rows_rejected) == (2, 0)
    assert rows("City") == [
        {"name": "Köln", "founded": dt.date(50, 12, 31), "big": True},
        {"name": "Zürich", "founded": None, "big": False},
    ]


@pytest.mark.parametrize("suffix", ["csv.gz", "csv.zst", "tsv"])
def test_compressed_and_tab_separated_files_with_rename(city: Any, tmp_path: Path, suffix: str) -> None:
    text = "Name,Founded,Big\nBonn,1949-01-01,false\n"
    path = tmp_path / f"cities.{suffix}"
    if suffix == "csv.gz":
        path.write_bytes(gzip.compress(text.encode()))
    elif suffix == "csv.zst":
        import pyarrow as pa

        with pa.CompressedOutputStream(str(path), "zstd") as out:
            out.write(text.encode())
    else:
        path.write_text(text.replace(",", "\t"))
    rename = {"Name": "name", "Founded": "founded", "Big": "big"}
    assert load("City", source=str(path), rename=rename).inserted == 1
    assert rows("City") == [{"name": "Bonn", "founded": dt.date(1949, 1, 1), "big": False}]


def test_utf8_sig_and_a_csv_reader_node_with_options(city: Any, tmp_path: Path) -> None:
    path = tmp_path / "cities.csv"
    path.write_bytes(b"\xef\xbb\xbfname|founded|big\nRome|21/04/0753|Y\n")
    results = run(
        (
            "CSVReaderNode",
            "read",
            {"path": str(path), "delimiter": "|", "encoding": "utf-8-sig", "date_format": "%d/%m/%Y"},
        ),
        ("CityBulkCreateNode", "load", {"progress": False}),
        connect=[("read", "data", "load", "data")],
    )
    assert results["load"].inserted == 1
    assert rows("City") == [{"name": "Rome", "founded": dt.date(753, 4, 21), "big": True}]


def test_reader_options_are_checked(city: Any, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="encoding='utf-16'"):
        load("City", source=str(tmp_path / "x.csv"), encoding="utf-16")
    with pytest.raises(ValidationError, match="delimiter takes a single character"):
        load("City", source=str(tmp_path / "x.csv"), delimiter=";;")
    with pytest.raises(ValidationError, match="extra takes 'error' or 'ignore'"):
        load("City", source=str(tmp_path / "x.csv"), extra="drop")


# -- model_from ------------------------------------------------------------------------------------


def test_model_from_names_columns_and_loads_the_same_file(db: Any, tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "samples.csv"
    path.write_text(
        "Sample Number,Date Egg,Body Mass (g),Clutch Completion,sex,studyName\n"
        "1,2007-11-11,3750,Yes,MALE,PAL0708\n"
        "2,2007-11-16,NA,No,NA,PAL0708\n"
    )
    db.model_from(str(path), name="Sample", rename={"Clutch Completion": "clutch"})
    assert "'Sample Number' -> sample_number" in capsys.readouterr().out
    fields = db.models["Sample"].fields
    assert {n: f.label for n, f in fields.items() if not f.managed} == {
        "sample_number": "int",
        "date_egg": "date",
        "body_mass_g": "Optional[int]",
        "clutch": "str",
        "sex": "Optional[str]",
        "studyName": "str",
    }
    report = load("Sample", source=str(path))
    assert (report.inserted, report.rows_rejected) == (2, 0)
    assert rows("Sample")[1] == {
        "sample_number": 2,
        "date_egg": dt.date(2007, 11, 16),
        "body_mass_g": None,
        "clutch": "No",
        "sex": None,
        "studyName": "PAL0708",
    }


def test_model_from_keeps_unique_integer_ids_as_the_key(db: Any, tmp_path: Path) -> None:
    path = tmp_path / "keyed.csv"
    path.write_text("id,name\n10,a\n20,b\n")
    db.model_from(str(path), name="Keyed")
    assert "id" not in {n for n, f in db.models["Keyed"].fields.items() if not f.managed}
    assert load("Keyed", source=str(path)).inserted == 2
    listed = run(("KeyedListNode", "all", {"order_by": "id"}))["all"]
    assert listed.select("id", "name").to_dicts() == [{"id": 10, "name": "a"}, {"id": 20, "name": "b"}]
    created = run(("KeyedCreateNode", "new", {"name": "c"}))["new"]
    assert created["id"][0] > 20  # the id sequence moved past the loaded ids


@pytest.mark.parametrize("ids", ["a1,b2", "1,1"])
def test_model_from_stores_other_ids_as_source_id(db: Any, tmp_path: Path, ids: str) -> None:
    first, second = ids.split(",")
    path = tmp_path / "other.csv"
    path.write_text(f"id,name\n{first},a\n{second},b\n")
    db.model_from(str(path), name="Other")
    assert "source_id" in db.models["Other"].fields
    assert load("Other", source=str(path)).inserted == 2
    assert [r["source_id"] for r in rows("Other")] == [
        int(first) if first.isdigit() else first,
        int(second) if second.isdigit() else second,
    ]


def test_model_from_reads_with_reader_options(db: Any, tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("when;level\n01.02.2012;-\n03.04.2012;3\n")
    options = {"delimiter": ";", "null_values": ["-"], "date_format": "%d.%m.%Y"}
    db.model_from(str(path), name="Semi", **options)
    assert {n: f.label for n, f in db.models["Semi"].fields.items() if not f.managed} == {
        "when": "date",
        "level": "Optional[int]",
    }
    assert load("Semi", source=str(path), **options).inserted == 2
    assert rows("Semi") == [{"when": dt.date(2012, 2, 1), "level": None}, {"when": dt.date(2012, 4, 3), "level": 3}]
