"""The small real data sets that ship with dataflow_nb (penguins, NYC flights, Seattle weather).

They live inside the package (``dataflow_nb/data/``, with their licences in its README), so the
notebooks, the docs and the CLI find them from an installed package as from a checkout.

Examples:
    >>> from dataflow_nb import datasets
    >>> datasets.path("penguins").name
    'penguins.csv'
    >>> datasets.path("flights").name, datasets.path("flights.csv").name
    ('flights.parquet', 'flights.csv')
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dataflow_nb.exceptions import NotFoundError

_SUFFIXES = (".parquet", ".csv")  # a bare name picks the first that exists: typed Parquet before CSV


def folder() -> Path:
    """The folder holding the data files and their README."""
    return Path(str(resources.files("dataflow_nb") / "data"))


def names() -> list[str]:
    """File names of every data set, sorted: ``['airlines.csv', 'flights.csv', ...]``."""
    return sorted(p.name for p in folder().iterdir() if p.suffix in _SUFFIXES)


def path(name: str) -> Path:
    """The path of a data set: a file name (``"flights.csv"``) or a bare name (``"flights"``).

    A bare name means the Parquet file when there is one, else the CSV.

    Raises:
        NotFoundError: no such data set; the message lists the ones there are.
    """
    base = folder()
    candidates = [name] if name.endswith(_SUFFIXES) else [name + suffix for suffix in _SUFFIXES]
    for candidate in candidates:
        if candidate in names():
            return base / candidate
    raise NotFoundError(f"no data set named {name!r}; the data sets are {names()} (see {base / 'README.md'})")


__all__ = ["folder", "names", "path"]
