"""Bulk loading: lazy batch sources, casting to the model, reports, progress, set-based writes."""

from __future__ import annotations

from dataflow_nb.bulk.report import BulkReport
from dataflow_nb.bulk.sources import BatchSource, csv_source, open_input, parquet_source

__all__ = ["BatchSource", "BulkReport", "csv_source", "open_input", "parquet_source"]
