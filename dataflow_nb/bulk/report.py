"""What a bulk node returns: the load job's report (``backends/load_report.py``)."""

from dataflow_nb.backends.load_report import MEANINGS, BulkReport, Rejection

__all__ = ["MEANINGS", "BulkReport", "Rejection"]
