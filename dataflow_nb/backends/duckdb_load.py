"""DuckDB's load job: an INSERT ... SELECT over the Arrow stream, which casts text to UUID and JSON."""

from __future__ import annotations

from dataflow_nb.backends.load_job import LoadJob


class DuckDBLoadJob(LoadJob):
    """Every field as its own Arrow type (UUID and JSON as text, cast by DuckDB); no row-level
    security, so nothing is staged."""
