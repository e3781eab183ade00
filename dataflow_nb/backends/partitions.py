"""Declarative partitions, as each backend keeps them: the shared part is doing nothing.

A model with ``partition_by`` (``core/partitions.py``) gets a partitioned table where the
database has them (``postgres_partitions.py``); elsewhere (DuckDB) its table is a plain one and
every method here is a no-op, so the same notebook runs on both.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


class Partitions:
    """No declarative partitioning: one plain table, nothing to create or move."""

    supported = False

    def create_statements(self, table: sa.Table) -> list[str]:
        """DDL that follows the model's CREATE TABLE (a partitioned table's first partitions)."""
        return []

    def is_partitioned(self, connection: Any, table: str) -> bool:
        """Whether the live table is a partitioned one."""
        return False

    def settle(self, connection: Any, table: sa.Table) -> int:
        """Before a run that wrote ``table`` commits: give the rows that landed in no partition of
        their own one (created inside the run's transaction); returns how many rows moved."""
        return 0
