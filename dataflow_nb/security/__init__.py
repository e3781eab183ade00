"""``security_enabled=True``: the audit log, sensitive-field masking and the write guards."""

from __future__ import annotations

from dataflow_nb.core.masking import Sensitive

__all__ = ["Sensitive"]
