"""Which observers a DataFlow's runs have: one per feature it has on, built once in ``DataFlow()``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataflow_nb.cache.observer import CacheObserver
from dataflow_nb.monitor.monitor import MonitorObserver
from dataflow_nb.observers import RunObserver
from dataflow_nb.security.audit import AuditObserver

if TYPE_CHECKING:
    from dataflow_nb.dataflow import DataFlow


def run_observers(db: DataFlow) -> tuple[RunObserver, ...]:
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
