"""Which observers a DataFlow's runs have: one per feature it has on, built once in ``DataFlow()``."""

from __future__ import annotations

from dataflow_nb.observers.cache import CacheObserver
from dataflow_nb.observers.monitor import MonitorObserver
from dataflow_nb.protocols import RunDatabase, RunObserver
from dataflow_nb.security.audit import AuditObserver


def run_observers(db: RunDatabase) -> tuple[RunObserver, ...]:
    """The observers of ``db``'s runs: its result cache, monitor and audit log, when on. (The run
    history and the masking of sensitive values span every database of a run: the runtime adds them.)"""
    observers: list[RunObserver] = []
    if db.result_cache is not None:
        observers.append(CacheObserver(db.result_cache))
    if db.monitor is not None:
        observers.append(MonitorObserver(db.monitor))
    if db.security_enabled:
        observers.append(AuditObserver(db.audit_key))
    return tuple(observers)
