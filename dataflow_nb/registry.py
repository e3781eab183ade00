"""Which node type a name means: built-in nodes plus the nodes of every live DataFlow.

Two DataFlow objects may define the same model; a name that is then ambiguous is an error
that says how to qualify it, never a silent pick.
"""

from __future__ import annotations

import difflib
import gc
import importlib
import weakref
from typing import TYPE_CHECKING

from dataflow_nb.exceptions import WorkflowError
from dataflow_nb.nodes.base import Node

if TYPE_CHECKING:
    from dataflow_nb.dataflow import DataFlow

_databases: weakref.WeakSet[DataFlow] = weakref.WeakSet()
BUILTIN_NODES: dict[str, type[Node]] = {}
# Modules that add non-model nodes to BUILTIN_NODES when imported (late, to avoid import cycles).
BUILTIN_MODULES = ["dataflow_nb.nodes.readers", "dataflow_nb.nodes.sql"]


def builtin_nodes() -> dict[str, type[Node]]:
    """Reader, SQL and other nodes that belong to no model."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return BUILTIN_NODES


def register_database(db: DataFlow) -> None:
    _databases.add(db)


def unregister_database(db: DataFlow) -> None:
    _databases.discard(db)


def live_databases() -> list[DataFlow]:
    """Every open DataFlow (after collecting ones a re-run notebook cell left unreferenced)."""
    if len(_databases) > 1:
        gc.collect()
    return list(_databases)


def _candidates(name: str) -> list[type[Node]]:
    if "." in name:
        db_name, node_name = name.split(".", 1)
        return [db.nodes[node_name] for db in list(_databases) if db.name == db_name and node_name in db.nodes]
    return [db.nodes[name] for db in list(_databases) if name in db.nodes]


def known_node_names() -> list[str]:
    names = set(builtin_nodes())
    for db in list(_databases):
        names.update(db.nodes)
    return sorted(names)


def resolve_node_type(name: str, node_id: str) -> type[Node]:
    """The node class for ``name`` (``"UserCreateNode"`` or ``"db_name.UserCreateNode"``)."""
    if name in builtin_nodes():
        return BUILTIN_NODES[name]
    found = _candidates(name)
    if len(found) > 1:
        gc.collect()  # a re-run notebook cell may leave an unreferenced DataFlow behind
        found = _candidates(name)
    if len(found) == 1:
        return found[0]
    if not found:
        close = difflib.get_close_matches(name, known_node_names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; define the model with @db.model first"
        raise WorkflowError(f"node {node_id!r}: unknown node type {name!r}{hint}", node_id=node_id)
    owners = ", ".join(f"{n.db.name!r} ({n.db.backend.safe_url})" for n in found if n.db is not None)
    raise WorkflowError(
        f"node {node_id!r}: node type {name!r} is defined by {len(found)} DataFlow objects: {owners}. "
        f"Qualify it as '<name>.{name}' (for example {found[0].db.name + '.' + name!r}) "  # type: ignore[union-attr]
        f"or pass the class itself: db.nodes[{name!r}]",
        node_id=node_id,
    )
