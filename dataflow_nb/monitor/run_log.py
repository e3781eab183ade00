"""A run as it happens: the runtime fills its ``RunLog`` (one ``NodeRecord`` a node), the
history writes it (``runs.py``), and the views read it live until it is written."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class NodeRecord:
    """One node of a run: what it did, how long it took, how it ended."""

    node_id: str
    node_type: str
    started: float  # seconds after the run started
    status: str = "running"
    seconds: float = 0.0
    rows_read: int = 0
    rows_written: int = 0
    error: str | None = None
    loaded: str | None = None  # a BulkCreate's "table|mode|source fingerprint" (``bulk/reload.py``)


@dataclass
class RunLog:
    """A run as it happens: the runtime fills it, the history writes it, views read it live."""

    run_id: str
    tenant_id: str | None
    nodes_planned: int
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    clock: float = field(default_factory=time.perf_counter)
    nodes: list[NodeRecord] = field(default_factory=list)
    status: str = "running"
    seconds: float | None = None
    finished_at: datetime | None = None
    error_node: str | None = None
    error: str | None = None
    # Database identity -> whether the run's row may be in its table yet (a ``running`` row was
    # written: the end updates it); absent where the run is not recorded.
    rows: dict[str, bool] = field(default_factory=dict)
    # Primary's masked URL -> where the run went there: "primary" or a replica's masked URL.
    served_by: dict[str, str] = field(default_factory=dict)

    def start_node(self, node_id: str, node_type: str) -> NodeRecord:
        record = NodeRecord(node_id, node_type, time.perf_counter() - self.clock)
        self.nodes.append(record)
        return record

    def finish(self, status: str, *, error_node: str | None = None, error: str | None = None) -> None:
        self.seconds = time.perf_counter() - self.clock
        self.finished_at = datetime.now(UTC)
        self.status = status
        self.error_node = error_node
        self.error = error

    def row(self, database: str) -> dict[str, Any]:
        """The run as a row of ``db.runs()``."""
        return {
            "run_id": self.run_id,
            "database": database,
            "tenant_id": self.tenant_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": self.seconds,
            "status": self.status,
            "nodes": self.nodes_planned,
            "error_node": self.error_node,
            "error": self.error,
            "rows_read": sum(n.rows_read for n in self.nodes),
            "rows_written": sum(n.rows_written for n in self.nodes),
            "served_by": self.served_by.get(database),
        }

    def node_rows(self) -> list[dict[str, Any]]:
        """The nodes as rows of ``db.run(run_id)``; a running node's seconds count up."""
        now = time.perf_counter() - self.clock
        return [
            {
                "position": i,
                **vars(n),
                "seconds": (now - n.started) if n.status == "running" else n.seconds,
            }
            for i, n in enumerate(list(self.nodes))
        ]
