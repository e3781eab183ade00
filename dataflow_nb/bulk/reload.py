"""Re-running a load cell: a BulkCreate that appends a source an earlier run already loaded warns.

What each BulkCreate loaded is kept with its node in the run history (``NodeRecord.loaded``:
table, mode and a fingerprint of the source), so it is known across kernels and processes, and
only for runs that committed. A file's fingerprint is its path, size and modification time (a
glob: every file's), read without opening it; a frame's or Arrow table's is a hash of its rows.
Rows listed in code (a list of dicts) and Arrow streams (read once only) have none: they are
not checked. A ``mode="replace"`` load ends the story of
the loads before it: the table then holds that load's rows only.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from dataflow_nb.protocols import RunDatabase

MODES = ("append", "replace")


def files_fingerprint(paths: Sequence[Path]) -> str:
    """The files as they are now: path, size and modification time of each."""
    digest = hashlib.sha256()
    for path in paths:
        status = path.stat()
        digest.update(f"{os.path.abspath(path)}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def table_fingerprint(table: pa.Table) -> str | None:
    """A hash of a table's column names and rows (None for a type the row hash cannot read)."""
    import polars as pl

    try:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        hashes = frame.hash_rows(seed=0)
    except (pl.exceptions.PolarsError, pa.ArrowException, TypeError, ValueError):
        return None
    digest = hashlib.sha256("\0".join(frame.columns).encode())
    digest.update(hashes.to_numpy().tobytes())
    return digest.hexdigest()[:32]


def loaded_note(table: str, mode: str, fingerprint: str) -> str:
    """What the run history keeps of one load: ``table|mode|fingerprint``."""
    return f"{table}|{mode}|{fingerprint}"


def warn_if_loaded(db: RunDatabase, node: str, table: str, tenant_id: str | None, fingerprint: str, label: str) -> None:
    """Warn when a committed run already loaded this source into ``table`` and no ``replace``
    load came after it. A courtesy: with no history kept, or no connection to spare, no check."""
    history = db.history
    if not history.record or not db.backend.has_spare_connection():
        return
    earlier = _earlier_load(history.loads_of(table, tenant_id), fingerprint)
    if earlier is not None:
        run_id, started = earlier
        warnings.warn(
            f"{node}: {label} was already loaded into {table} by run {run_id} ({started:%Y-%m-%d %H:%M:%S %Z}); "
            f"appending it again adds its rows twice. Pass mode='replace' to replace the table's rows with it, "
            f"or load it with a BulkUpsert on a unique key (CLI: dataflow-nb load --mode replace|upsert)",
            UserWarning,
            stacklevel=2,
        )


def _earlier_load(loads: list[tuple[str, Any, str]], fingerprint: str) -> tuple[str, Any] | None:
    """The newest load of this source that no ``replace`` load followed."""
    for run_id, started, note in loads:  # newest first
        _, mode, loaded = note.split("|", 2)
        if loaded == fingerprint:
            return run_id, started
        if mode == "replace":
            return None
    return None
