"""Filters, ordering and scope, compiled to SQLAlchemy Core."""

from __future__ import annotations

from dataflow_nb.query.filters import OPERATORS, compile_filter, order_clauses

__all__ = ["OPERATORS", "compile_filter", "order_clauses"]
