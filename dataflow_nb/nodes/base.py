"""What every workflow node is: a type name, a parameter check, and a ``run``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from dataflow_nb.exceptions import ValidationError
from dataflow_nb.protocols import Written

if TYPE_CHECKING:
    from dataflow_nb.core.spec import ModelSpec
    from dataflow_nb.protocols import Run, RunDatabase


class NodeType(type):
    """The class of node classes: ``help()`` and tab completion show a node's docstring (its
    parameters, with examples) and ``node_type``, not the methods the runtime calls."""

    def __dir__(cls) -> list[str]:
        return [n for n in super().__dir__() if n in ("node_type", "__doc__", "__module__")]


class Node(metaclass=NodeType):
    """Base class of every node; a subclass names its parameters and implements ``run``.

    A node also says what the run's observers and guards need to know about it with given
    parameters (the databases it touches, whether it writes, which columns are sensitive), so
    none of them has to know the kinds of node there are.
    """

    node_type: str = "Node"
    parameters: ClassVar[tuple[str, ...]] = ()
    db: ClassVar[RunDatabase | None] = None
    model: ClassVar[ModelSpec | None] = None  # a generated node's model
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

    def databases(self, params: Mapping[str, Any]) -> tuple[RunDatabase, ...]:
        """The DataFlows this node uses with ``params``: their observers hear of it as it starts."""
        return () if self.db is None else (self.db,)

    def writes_to(self, params: Mapping[str, Any]) -> RunDatabase | None:
        """The DataFlow this node says it writes with ``params``: a read-only one refuses it
        before the run, ``security_enabled`` audits it (``written``)."""
        return self.db if self.writes else None

    def tables_written(self, params: Mapping[str, Any]) -> frozenset[str]:
        """Tables of ``self.db`` the node may write, noted before it runs (so the result cache
        drops them even when a statement bypasses the run context): a model's, unless it only reads."""
        if self.model is None or self.cacheable:
            return frozenset()
        return frozenset({self.model.table_name})

    def written(self, params: Mapping[str, Any], output: Any) -> Written | None:
        """What the node wrote (its output: the records, with their ids), for the audit log."""
        if self.model is None:
            return None
        ids = [int(i) for i in output["id"]]
        return Written(self.operation, len(ids), self.model.name, keys=ids)

    @property
    def operation(self) -> str:
        """The node's kind without its model: ``UserCreateNode`` is ``Create``."""
        model = "" if self.model is None else self.model.name
        return self.node_type.removeprefix(model).removesuffix("Node")

    def sensitive_fields(self, params: Mapping[str, Any]) -> frozenset[str]:
        """Names whose values in ``params`` are sensitive (filters included): masked in errors."""
        if self.model is None:
            return frozenset()
        return self.model.sensitive

    def sensitive_columns(self, params: Mapping[str, Any]) -> set[str]:
        """Columns of the node's output that hold sensitive fields: masked wherever shown."""
        return set(self.sensitive_fields(params))

    def run(self, ctx: Run, params: dict[str, Any]) -> Any:
        raise NotImplementedError


def check_parameter_names(node_type: str, given: Iterable[str], valid: Iterable[str]) -> None:
    valid = valid if isinstance(valid, tuple | list) else list(valid)
    unknown = [p for p in given if p not in valid]
    if unknown:
        valid = list(valid)
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
