"""What a bulk node returns: the load job's report (``core/load_report.py``)."""

from dataflow_nb.core.load_report import MEANINGS, BulkReport, Rejection

__all__ = ["MEANINGS", "BulkReport", "Rejection"]
