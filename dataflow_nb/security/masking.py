"""The masking of sensitive values in what a run shows: an observer of the whole run.

Values of sensitive fields a node was given (filters included) and, when the run fails, those
it read that the error repeats (a row in a user function's exception) read ``***`` in the
error, the monitor's failed statements and the run history.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dataflow_nb.core.masking import mask_exception, mask_values
from dataflow_nb.protocols import RunObserver
from dataflow_nb.security.sensitive import chain_text, values_named, values_read

if TYPE_CHECKING:
    from dataflow_nb.protocols import NodeEnd, Run, RunNode


class Secrets(RunObserver):
    """The sensitive values of one attempt of a run, and each node's sensitive output columns."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.columns: dict[str, set[str]] = {}  # node id -> the sensitive columns of its output (where it has any)
        self._read: list[tuple[Any, set[str]]] = []  # outputs with sensitive columns

    def on_node_start(self, run: Run, node_id: str, node: RunNode, params: Mapping[str, Any]) -> None:
        names = node.sensitive_fields(params)
        if names:
            self.values.update(values_named(names, params))

    def on_node_end(self, run: Run, end: NodeEnd) -> None:
        if end.status != "ok" or end.node is None:
            return
        columns = end.node.sensitive_columns(end.params)
        if columns:
            self.columns[end.node_id] = columns
            self._read.append((end.output, columns))

    def note_error(self, exc: BaseException) -> None:
        """Sensitive values the run read, repeated by the error (a row in a user function's exception)."""
        if self._read:
            self.values.update(values_read(chain_text(exc), self._read))

    def mask(self, text: str) -> str:
        return mask_values(text, self.values) if self.values else text

    def mask_exception(self, exc: BaseException) -> None:
        """A traceback shows the whole chain: mask it all."""
        mask_exception(exc, self.values)
