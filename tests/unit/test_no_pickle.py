"""No pickle anywhere: a cache entry (or anything else read back) can never run code."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dataflow_nb"
# An import of a code-running serializer, or a call of one (pandas' read_pickle included).
USES = re.compile(
    r"^\s*(import|from)\s+(c?pickle|marshal|dill|cloudpickle|shelve)\b|\b(pickle|marshal)\.|_pickle\(", re.M
)


def test_the_package_never_uses_pickle() -> None:
    users = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if USES.search(path.read_text())]
    assert users == []
