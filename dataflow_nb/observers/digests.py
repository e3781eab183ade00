"""The running digests of what each node streams into a database: kept by the audit
(``security/audit.py``), fed by a bulk load (``bulk/load.py``), which finds them through the run
(``run.observer(InputDigests, db)``) without naming the audit."""

from __future__ import annotations

from dataflow_nb.core.digest import InputDigest
from dataflow_nb.protocols import RunObserver


class InputDigests(RunObserver):
    """One run's digests on one database, by node id, keyed with the database's audit key."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.digests: dict[str, InputDigest] = {}  # a bulk node's input, digested as it streams

    def running(self, node_id: str) -> InputDigest:
        """The digest of what ``node_id`` streams in, begun on its first batch."""
        return self.digests.setdefault(node_id, InputDigest(self.key))
