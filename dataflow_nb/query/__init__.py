"""Filters, ordering, scope and the query builder, compiled to SQLAlchemy Core."""

from __future__ import annotations

from dataflow_nb.query.builder import QueryBuilder, create_query_builder
from dataflow_nb.query.filters import OPERATORS, compile_filter, model_target, order_clauses

__all__ = ["OPERATORS", "QueryBuilder", "compile_filter", "create_query_builder", "model_target", "order_clauses"]
