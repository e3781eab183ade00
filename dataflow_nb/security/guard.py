"""Writes checked before a run starts: a read-only DataFlow refuses them before any SQL runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dataflow_nb.exceptions import ReadOnlyError
from dataflow_nb.nodes.base import Node


def refuse_writes(node_id: str, node: Node, params: Mapping[str, Any]) -> None:
    """Raise ReadOnlyError when ``node`` would write to a ``DataFlow(read_only=True)``."""
    from dataflow_nb.nodes.sql import SQLQueryNode

    db = node.db
    if isinstance(node, SQLQueryNode) and params.get("allow_writes"):
        db = node.database(params)
    elif not node.writes:
        return
    if db is not None and db.read_only:
        raise ReadOnlyError(
            f"node {node_id!r} ({node.node_type}) writes, and DataFlow {db.name!r} is read-only "
            "(DataFlow(read_only=True)); nothing was run. Open it without read_only=True to write."
        )
