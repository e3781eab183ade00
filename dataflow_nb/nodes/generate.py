"""Generate the node classes of a model, named ``{Model}{Operation}Node``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataflow_nb.core.spec import ModelSpec
from dataflow_nb.nodes.bulk import BULK_OPERATIONS
from dataflow_nb.nodes.model_node import ModelNode, node_class
from dataflow_nb.nodes.read import CountNode, ListNode, ReadNode
from dataflow_nb.nodes.write import CreateNode, DeleteNode, UpdateNode, UpsertNode

if TYPE_CHECKING:
    from dataflow_nb.protocols import RunDatabase


OPERATIONS: dict[str, type[ModelNode]] = {
    "Create": CreateNode,
    "Read": ReadNode,
    "Update": UpdateNode,
    "Delete": DeleteNode,
    "List": ListNode,
    "Count": CountNode,
    "Upsert": UpsertNode,
    **BULK_OPERATIONS,
}


def make_nodes(db: RunDatabase, model: ModelSpec) -> dict[str, type[ModelNode]]:
    """The node classes for one model, named ``{Model}{Operation}Node``."""
    nodes: dict[str, type[ModelNode]] = {}
    for operation, base in OPERATIONS.items():
        name = f"{model.name}{operation}Node"
        nodes[name] = node_class(name, base, db, model)
    return nodes
