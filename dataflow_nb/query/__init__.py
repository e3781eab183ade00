"""Filters, ordering, aggregation, scope and the query builder, compiled to SQLAlchemy Core.

``explain`` (which runs nodes and workflows) sits above this package: ``dataflow_nb.explain``.
"""

from __future__ import annotations

from dataflow_nb.query.aggregate import AGGREGATES
from dataflow_nb.query.builder import QueryBuilder, create_query_builder
from dataflow_nb.query.filters import OPERATORS, compile_filter, model_target, order_clauses

__all__ = [
    "AGGREGATES",
    "OPERATORS",
    "QueryBuilder",
    "compile_filter",
    "create_query_builder",
    "model_target",
    "order_clauses",
]
