"""WorkflowBuilder: nodes and connections, checked by ``build()`` before anything runs."""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dataflow_nb.exceptions import DataflowError, WorkflowError
from dataflow_nb.nodes.base import CallableNode, Node
from dataflow_nb.registry import resolve_node_type


@dataclass(frozen=True)
class Edge:
    """A connection between nodes: output ``output`` of node ``source`` feeds parameter ``input`` of ``target``."""

    source: str
    output: str
    target: str
    input: str


@dataclass
class NodeSpec:
    node_id: str
    node: Node
    params: dict[str, Any]

    @property
    def node_type(self) -> str:
        return self.node.node_type


@dataclass
class Workflow:
    """A checked workflow: nodes in the order they run, and their connections."""

    nodes: dict[str, NodeSpec]
    connections: list[Edge]
    order: list[str] = field(default_factory=list)

    def inputs_of(self, node_id: str) -> list[Edge]:
        return self._inputs.get(node_id, [])

    @functools.cached_property
    def _inputs(self) -> dict[str, list[Edge]]:
        """The connections by the node they feed: a run asks for every node's (once each, not a
        pass over every connection each time)."""
        inputs: dict[str, list[Edge]] = {}
        for edge in self.connections:
            inputs.setdefault(edge.target, []).append(edge)
        return inputs

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(n)}</td><td>{html.escape(self.nodes[n].node_type)}</td>"
            f"<td>{html.escape(', '.join(f'{c.source}.{c.output}→{c.input}' for c in self.inputs_of(n)))}</td></tr>"
            for n in self.order
        )
        header = "<tr><th>node</th><th>type</th><th>inputs</th></tr>"
        return f"<b>Workflow</b> ({len(self.order)} nodes)<table>{header}{rows}</table>"


class WorkflowBuilder:
    """Collects nodes and connections; ``build()`` checks them all and returns a Workflow.

    Examples:
        >>> workflow = WorkflowBuilder()
        >>> workflow.add_node(lambda: 42, "answer")
        'answer'
        >>> workflow.build().order
        ['answer']
    """

    def __init__(self) -> None:
        self._nodes: list[tuple[Any, str, dict[str, Any]]] = []
        self._connections: list[Edge] = []

    def add_node(
        self, node_type: str | type[Node] | Callable[..., Any], node_id: str, params: dict[str, Any] | None = None
    ) -> str:
        """Add a node: a type name (``"UserCreateNode"``), a node class, or a Python callable."""
        if not isinstance(node_id, str) or not node_id:
            raise DataflowError(f"node id must be a non-empty string, got {node_id!r}")
        if params is not None and not isinstance(params, dict):
            raise DataflowError(f"node {node_id!r}: params must be a dict, got {type(params).__name__}")
        self._nodes.append((node_type, node_id, dict(params or {})))
        return node_id

    def add_connection(self, source: str, output: str, target: str, input: str) -> WorkflowBuilder:
        """Feed ``source``'s ``output`` into ``target``'s parameter ``input``."""
        self._connections.append(Edge(source, output, target, input))
        return self

    def build(self) -> Workflow:
        """Check node types, ids, parameters and connections; raise before anything runs."""
        nodes: dict[str, NodeSpec] = {}
        for node_type, node_id, params in self._nodes:
            if node_id in nodes:
                raise WorkflowError(f"duplicate node id {node_id!r}: every node needs its own id", node_id=node_id)
            nodes[node_id] = NodeSpec(node_id, _instantiate(node_type, node_id), params)
        for c in self._connections:
            for end in (c.source, c.target):
                if end not in nodes:
                    raise WorkflowError(
                        f"connection {c.source}.{c.output} -> {c.target}.{c.input} names unknown node {end!r}; "
                        f"nodes are {list(nodes)}",
                        node_id=end,
                    )
        for spec in nodes.values():
            if isinstance(spec.node, CallableNode):
                continue
            try:
                spec.node.check_params(spec.params, complete=False)
            except DataflowError as exc:
                raise type(exc)(f"node {spec.node_id!r}: {exc}") from None
        return Workflow(nodes, list(self._connections), _topological_order(nodes, self._connections))


def _instantiate(node_type: Any, node_id: str) -> Node:
    if isinstance(node_type, str):
        return resolve_node_type(node_type, node_id)()
    if isinstance(node_type, type) and issubclass(node_type, Node):
        return node_type()
    if callable(node_type):
        return CallableNode(node_type)
    raise WorkflowError(
        f"node {node_id!r}: a node type is a name, a node class or a callable, got {node_type!r}", node_id=node_id
    )


def _topological_order(nodes: dict[str, NodeSpec], connections: list[Edge]) -> list[str]:
    """The first node (in the order added) whose inputs are ready runs next; a cycle is an error."""
    waiting = {n: {c.source for c in connections if c.target == n} for n in nodes}
    order: list[str] = []
    while len(order) < len(nodes):
        done = set(order)
        ready = next((n for n in nodes if n not in done and not waiting[n] - done), None)
        if ready is None:
            stuck = [n for n in nodes if n not in order]
            raise WorkflowError(
                f"the workflow has a cycle among nodes {stuck}; connections must not loop", node_id=stuck[0]
            )
        order.append(ready)
    return order
