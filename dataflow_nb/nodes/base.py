"""What every workflow node is: a type name, a parameter check, and a ``run``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from dataflow_nb.exceptions import ValidationError

if TYPE_CHECKING:
    from dataflow_nb.protocols import Run, RunDatabase


class NodeType(type):
    """The class of node classes: ``help()`` and tab completion show a node's docstring (its
    parameters, with examples) and ``node_type``, not the methods the runtime calls."""

    def __dir__(cls) -> list[str]:
        return [n for n in super().__dir__() if n in ("node_type", "__doc__", "__module__")]


class Node(metaclass=NodeType):
    """Base class of every node; a subclass names its parameters and implements ``run``."""

    node_type: str = "Node"
    parameters: ClassVar[tuple[str, ...]] = ()
    db: ClassVar[RunDatabase | None] = None
    cacheable: ClassVar[bool] = False  # reads whose results DataFlow(cache_enabled=True) may keep
    writes: ClassVar[bool] = False  # a read-only DataFlow refuses the node; security_enabled audits it

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        """Validate parameters; ``complete=False`` at build time, when connections may add more."""
        check_parameter_names(cls.node_type, params, cls.parameters)

    def database_written(self, params: Mapping[str, Any]) -> RunDatabase | None:
        """The DataFlow this node may write with ``params`` (None: it only reads, or touches none).

        Asked before a run starts: a database no node of the run writes is read from a replica.
        """
        return self.db if self.writes else None

    def run(self, ctx: Run, params: dict[str, Any]) -> Any:
        raise NotImplementedError


def check_parameter_names(node_type: str, given: Iterable[str], valid: Iterable[str]) -> None:
    valid = list(valid)
    unknown = [p for p in given if p not in valid]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(str(name), valid, n=1)
            hints.append(repr(name) + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValidationError(f"{node_type}: unknown parameter(s) {', '.join(hints)}; valid parameters are {valid}")


class CallableNode(Node):
    """A Python function as a node: called with its parameters and connected inputs as keywords."""

    node_type = "PythonCallable"

    def __init__(self, func: Any):
        self.func = func
        self.node_type = getattr(func, "__name__", type(func).__name__)

    def run(self, ctx: Run, params: dict[str, Any]) -> Any:
        return self.func(**params)
