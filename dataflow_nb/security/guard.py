"""Writes checked before a run starts: a read-only DataFlow refuses them before any SQL runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dataflow_nb.exceptions import ReadOnlyError

if TYPE_CHECKING:
    from dataflow_nb.protocols import RunNode


def refuse_writes(node_id: str, node: RunNode, params: Mapping[str, Any]) -> None:
    """Raise ReadOnlyError when ``node`` would write to a ``DataFlow(read_only=True)``."""
    db = node.writes_to(params)
    if db is not None and db.read_only:
        raise ReadOnlyError(
            f"node {node_id!r} ({node.node_type}) writes, and DataFlow {db.name!r} is read-only "
            "(DataFlow(read_only=True)); nothing was run. Open it without read_only=True to write."
        )
