"""Which node type a name means: built-in nodes plus the nodes of every live DataFlow.

A notebook re-runs cells: ``db = DataFlow()`` again makes a second DataFlow with the same
models. The registry holds DataFlows weakly (and so do their node classes), so one that no
code references any more is simply gone, without a garbage collection. When two are alive
(the old one still shown in an ``Out[n]``, say), a bare node name means the newest, with one
warning per name that says how to reach the other. ``DataFlow.close()`` withdraws its nodes.
"""

from __future__ import annotations

import difflib
import functools
import warnings

from dataflow_nb.exceptions import DataflowWarning, WorkflowError
from dataflow_nb.nodes.base import Node
from dataflow_nb.nodes.live import creation_order, live_databases, register_database, unregister_database
from dataflow_nb.nodes.readers import CSVReaderNode, ParquetReaderNode
from dataflow_nb.nodes.sql import SQLQueryNode
from dataflow_nb.protocols import RunDatabase

__all__ = ["live_databases", "register_database", "resolve_node_type", "unregister_database"]

_warned: set[tuple[str, int]] = set()  # (node name, the winner's order): warn once per name and winner


@functools.cache
def builtin_nodes() -> dict[str, type[Node]]:
    """Reader, SQL and other nodes that belong to no model, by node type."""
    return {node.node_type: node for node in (CSVReaderNode, ParquetReaderNode, SQLQueryNode)}


def _owners(name: str) -> list[RunDatabase]:
    """The live DataFlows defining ``name`` (bare or ``db_name.Node``), oldest first."""
    if "." in name:
        db_name, node_name = name.split(".", 1)
        return [db for db in live_databases() if db.name == db_name and node_name in db.nodes]
    return [db for db in live_databases() if name in db.nodes]


def known_node_names() -> list[str]:
    names = set(builtin_nodes())
    for db in live_databases():
        names.update(db.nodes)
    return sorted(names)


def resolve_node_type(name: str, node_id: str) -> type[Node]:
    """The node class for ``name`` (``"UserCreateNode"`` or ``"db_name.UserCreateNode"``).

    When several live DataFlows define it, the newest wins and a ``DataflowWarning`` (once per
    name) names the others and how to address them.
    """
    builtin = builtin_nodes().get(name)
    if builtin is not None:
        return builtin
    owners = _owners(name)
    node_name = name.split(".", 1)[1] if "." in name else name
    if not owners:
        close = difflib.get_close_matches(name, known_node_names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; define the model with @db.model first"
        raise WorkflowError(f"node {node_id!r}: unknown node type {name!r}{hint}", node_id=node_id)
    newest = owners[-1]
    key = (name, creation_order(newest))
    if len(owners) > 1 and key not in _warned:
        _warned.add(key)
        others = "; ".join(
            f"{db.name!r} ({db.backend.safe_url}): write {db.name + '.' + node_name!r} or pass "
            f"<that DataFlow>.nodes[{node_name!r}]"
            for db in owners[:-1]
        )
        warnings.warn(
            f"node type {name!r} is defined by {len(owners)} live DataFlow objects; using the newest, "
            f"{newest.name!r} ({newest.backend.safe_url}). To use an older one instead: {others}. "
            "db.close() withdraws a DataFlow's nodes.",
            DataflowWarning,
            stacklevel=4,  # the caller of WorkflowBuilder.build()
        )
    return newest.nodes[node_name]
