"""The shipped data sets: found by name, listed in the error, inside the wheel, licensed in the README."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import polars as pl
import pytest

from dataflow_nb import NotFoundError, datasets

ROOT = Path(__file__).resolve().parents[2]
FILES = ["airlines.csv", "flights.csv", "flights.parquet", "penguins.csv", "seattle-weather.csv"]


def test_names_and_paths() -> None:
    assert datasets.names() == FILES
    assert datasets.path("flights") == datasets.folder() / "flights.parquet"  # a bare name prefers Parquet
    assert datasets.path("penguins") == datasets.folder() / "penguins.csv"
    for name in FILES:
        assert datasets.path(name).is_file()


def test_the_files_hold_what_the_readme_says() -> None:
    assert pl.read_csv(datasets.path("penguins.csv"), null_values="NA").height == 344
    csv = pl.read_csv(datasets.path("flights.csv"), null_values="NA", try_parse_dates=True)
    parquet = pl.read_parquet(datasets.path("flights.parquet"))
    assert parquet.height == 27_004 and parquet.equals(csv)
    assert parquet.select(pl.col("year").unique(), pl.col("month").unique()).rows() == [(2013, 1)]
    assert pl.read_csv(datasets.path("airlines.csv")).height == 16
    assert pl.read_csv(datasets.path("seattle-weather.csv"))["date"][0] == "2012/01/01"
    readme = (datasets.folder() / "README.md").read_text()
    for name in FILES:
        assert f"`{name}`" in readme
    assert readme.count("CC0 1.0") >= 3 and "public domain (NOAA" in readme


def test_an_unknown_name_lists_the_data_sets() -> None:
    with pytest.raises(NotFoundError, match=r"no data set named 'flight'; the data sets are \['airlines.csv'"):
        datasets.path("flight")


def test_the_top_level_datasets_folder_is_the_package_data() -> None:
    assert (ROOT / "datasets").resolve() == datasets.folder().resolve()


@pytest.mark.slow  # builds and installs a wheel
def test_an_installed_wheel_carries_the_data(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("dataflow_nb-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    # -S: no site hooks, so the editable install's finder cannot answer instead of the wheel's files.
    site = f"{tmp_path / 'site'}:{sysconfig.get_paths()['purelib']}"
    code = "import dataflow_nb.datasets as d; print(d.__file__); print(d.path('flights.csv').stat().st_size)"
    shown = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": site, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,  # not the checkout, whose dataflow_nb/ would be found first
    ).stdout.split()
    assert shown[0].startswith(str(tmp_path / "site"))
    assert int(shown[1]) == datasets.path("flights.csv").stat().st_size
