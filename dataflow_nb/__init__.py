"""dataflow_nb: typed models, generated workflow nodes and frames, on DuckDB or PostgreSQL.

Importing this package imports no database driver, and none of its own modules either: each
name loads its module when first used, so ``dataflow-nb --help`` starts without pyarrow or SQLAlchemy.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataflow_nb.cache import create_query_cache
    from dataflow_nb.core.types import Precision
    from dataflow_nb.dataflow import DataFlow
    from dataflow_nb.exceptions import (
        CacheError,
        ConflictError,
        DatabaseError,
        DatabaseFileError,
        DataflowError,
        DataflowWarning,
        NotFoundError,
        ReadOnlyError,
        SchemaError,
        TenantError,
        UniqueViolation,
        ValidationError,
        WorkflowError,
    )
    from dataflow_nb.explain import Explanation, explain
    from dataflow_nb.options import DataFlowOptions
    from dataflow_nb.query.builder import create_query_builder
    from dataflow_nb.workflow import LocalRuntime, RunResults, Workflow, WorkflowBuilder

_EXCEPTIONS = (
    "CacheError",
    "ConflictError",
    "DatabaseError",
    "DatabaseFileError",
    "DataflowError",
    "DataflowWarning",
    "NotFoundError",
    "ReadOnlyError",
    "SchemaError",
    "TenantError",
    "UniqueViolation",
    "ValidationError",
    "WorkflowError",
)
_HOMES = {
    **dict.fromkeys(_EXCEPTIONS, "dataflow_nb.exceptions"),
    "DataFlow": "dataflow_nb.dataflow",
    "DataFlowOptions": "dataflow_nb.options",
    "Explanation": "dataflow_nb.explain",
    "LocalRuntime": "dataflow_nb.workflow",
    "Precision": "dataflow_nb.core.types",
    "RunResults": "dataflow_nb.workflow",
    "Workflow": "dataflow_nb.workflow",
    "WorkflowBuilder": "dataflow_nb.workflow",
    "create_query_builder": "dataflow_nb.query.builder",
    "create_query_cache": "dataflow_nb.cache",
    "explain": "dataflow_nb.explain",
}

__all__ = [
    "CacheError",
    "ConflictError",
    "DataFlow",
    "DataFlowOptions",
    "DatabaseError",
    "DatabaseFileError",
    "DataflowError",
    "DataflowWarning",
    "Explanation",
    "LocalRuntime",
    "NotFoundError",
    "Precision",
    "ReadOnlyError",
    "RunResults",
    "SchemaError",
    "TenantError",
    "UniqueViolation",
    "ValidationError",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowError",
    "create_query_builder",
    "create_query_cache",
    "explain",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use (PEP 562) and keep the name here."""
    home = _HOMES.get(name)
    if home is None:
        message = f"module 'dataflow_nb' has no attribute {name!r}"
        raise AttributeError(message)
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """The package, whose public names stay what ``__all__`` says once their modules load."""

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the submodule dataflow_nb.explain binds it here; the public name is the function.
        if not (name in _HOMES and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
