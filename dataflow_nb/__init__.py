"""dataflow_nb: typed models, generated workflow nodes and frames, on DuckDB or PostgreSQL.

Importing this package imports no database driver; backends load them when first used.
"""

from __future__ import annotations

from dataflow_nb.cache import create_query_cache
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
from dataflow_nb.model.types import Precision
from dataflow_nb.query.builder import create_query_builder
from dataflow_nb.workflow import LocalRuntime, RunResults, Workflow, WorkflowBuilder

__all__ = [
    "CacheError",
    "ConflictError",
    "DataFlow",
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
