"""The open DataFlows, held weakly: what a SQL node's ``db="name"`` and a bare node name resolve among.

Here, below both ``nodes/sql.py`` and ``registry.py``, so each asks it without importing the other.
A DataFlow registers itself when created and unregisters on ``close()``; one that no code
references any more is simply gone (see ``registry.py``).
"""

from __future__ import annotations

import itertools
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dataflow_nb.protocols import RunDatabase

_order = itertools.count(1)
_databases: weakref.WeakKeyDictionary[RunDatabase, int] = weakref.WeakKeyDictionary()  # DataFlow -> creation order


def register_database(db: RunDatabase) -> None:
    _databases[db] = next(_order)


def unregister_database(db: RunDatabase) -> None:
    _databases.pop(db, None)


def creation_order(db: RunDatabase) -> int:
    """When ``db`` registered (1 for the first DataFlow of the process); 0 if it never did."""
    return _databases.get(db, 0)


def live_databases() -> list[RunDatabase]:
    """Every open DataFlow that something still references, oldest first."""
    return [db for db, _ in sorted(_databases.items(), key=lambda item: item[1])]
