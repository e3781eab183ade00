"""DuckDB's errors as dataflow_nb errors: how its messages name a unique key, what to advise, and what
stops it from using its file (a lock, a read-only file system, a full disk)."""

from __future__ import annotations

import re

from dataflow_nb.backends import errors
from dataflow_nb.exceptions import DatabaseFileError, DataflowError, UniqueViolation

# Against an existing row: Duplicate key "email: a@x.io" violates unique constraint.
_KEY = re.compile(r'Duplicate key "(?P<pairs>.*)" violates unique constraint', re.S)
# Two rows of one statement: PRIMARY KEY or UNIQUE constraint violation: duplicate key "a@x.io"
_BATCH_KEY = re.compile(r'UNIQUE constraint violation: duplicate key "(?P<values>.*)"', re.S)


def _unique_violation(exc: Exception, message: str) -> UniqueViolation:
    """DuckDB names no constraint: the values ("col: value, ...") are matched to the model's keys later."""
    values = None
    if match := _KEY.search(message):
        values = match.group("pairs")
    elif match := _BATCH_KEY.search(message):
        values = match.group("values")
    return UniqueViolation(
        f"duckdb: a unique constraint was violated: {message}", constraint=None, columns=None, values=values
    )


def _advice(lowered: str) -> str:
    if "disabled by configuration" in lowered:
        return (
            ". A security_enabled, read_only or multi_tenant DataFlow reaches no file and no other database "
            "from SQL; DataFlow(..., allow_files=True) opens files to a session that owns the data (not to tenants)"
        )
    if "conflict target" in lowered:
        return (
            ". A multi-tenant table an older dataflow_nb made on DuckDB keeps PRIMARY KEY (id) (DuckDB cannot "
            "change a primary key), so it has no (tenant_id, id) key to upsert on: upsert on a unique key, or "
            "move the rows into a new table (a new __dataflow__['table'], or db.copy_to a new database)"
        )
    if "depend" not in lowered:
        return ""
    return (
        ". DuckDB cannot drop or alter a column that an index or a unique key depends on, nor a column "
        "that comes before a unique key's column; keep the field, or copy the rows into a new table"
    )


def interruption(exc: BaseException) -> KeyboardInterrupt | None:
    """Ctrl-C as DuckDB reports it, else None. While a statement runs, DuckDB's Python API checks
    for signals and raises ``RuntimeError("Query interrupted")`` in place of the KeyboardInterrupt
    (``InterruptException`` when ``interrupt()`` stopped it, which only ``deadline.py`` calls, and
    then says why itself)."""
    import duckdb

    if isinstance(exc, duckdb.InterruptException) or (
        type(exc) is RuntimeError and str(exc).strip() == "Query interrupted"
    ):
        return KeyboardInterrupt("duckdb: the statement was interrupted by Ctrl-C")
    return None


def translate_error(exc: Exception, *, at_commit: bool = False) -> DataflowError:
    """A DuckDB exception as ConflictError or DatabaseError (``at_commit``: raised by COMMIT)."""
    return errors.translate_error(
        exc, "duckdb", unique_violation=_unique_violation, advice=_advice, at_commit=at_commit
    )


# What stops DuckDB from using its file, as its errors (or the OS's) say it: reason, and the fix.
_FILE_PROBLEMS = (
    ("could not set lock on file", "it is locked by another process", "close the DataFlow (or the kernel) that "
     "has it open, or use another file; DuckDB lets one process write a file at a time"),
    ("read-only file system", "the file system is read-only", "put the file on a writable disk"),
    ("no space left on device", "the disk is full", "free some space and run again; the failed run wrote nothing"),
    ("permission denied", "permission was denied", "check the permissions of the file and its folder"),
)  # fmt: skip


def file_error(exc: BaseException, path: str, doing: str) -> DatabaseFileError | None:
    """A DatabaseFileError naming the file, the cause and the fix; None for any other error."""
    lowered = str(exc).lower()
    for marker, reason, fix in _FILE_PROBLEMS:
        if marker in lowered:
            return DatabaseFileError(
                f"duckdb: cannot {doing} the database file {path!r}: {reason} ({exc}). To fix it: {fix}.",
                path=path,
                reason=reason,
            )
    return None
