"""Filters, ordering, aggregation, scope, explain and the query builder, compiled to SQLAlchemy Core."""

from __future__ import annotations

from dataflow_nb.query.aggregate import AGGREGATES
from dataflow_nb.query.builder import QueryBuilder, create_query_builder
from dataflow_nb.query.explain import Explanation, explain
from dataflow_nb.query.filters import OPERATORS, compile_filter, model_target, order_clauses

__all__ = [
    "AGGREGATES",
    "OPERATORS",
    "Explanation",
    "QueryBuilder",
    "compile_filter",
    "create_query_builder",
    "explain",
    "model_target",
    "order_clauses",
]
