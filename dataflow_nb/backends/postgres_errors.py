"""PostgreSQL's errors as dataflow_nb errors: its diagnostics name the constraint, columns and values."""

from __future__ import annotations

import re
import threading

from dataflow_nb.backends import errors
from dataflow_nb.exceptions import DataflowError, UniqueViolation

# libpq's words for a connection that is gone (the server died, or terminated the backend).
_DISCONNECT_MARKERS = (
    "no connection to the server",
    "server closed the connection",
    "terminating connection",
    "connection to server",
    "could not receive data from server",
    "could not send data to server",
    "ssl connection has been closed",
    "connection not open",
    "connection has been closed",
)
# DETAIL: Key (tenant_id, email)=(acme, a@x.io) already exists.
_KEY = re.compile(r"Key \((?P<columns>[^)]*)\)=\((?P<values>.*)\) already exists", re.S)


def _detail(exc: Exception, key: bytes) -> str | None:
    """One field of the error's diagnostics, as ADBC passes them on."""
    for name, value in getattr(exc, "details", None) or []:
        if name == key:
            return bytes(value).decode(errors="replace")
    return None


def _unique_violation(exc: Exception, message: str) -> UniqueViolation:
    constraint = _detail(exc, b"PG_DIAG_CONSTRAINT_NAME")
    columns = values = None
    match = _KEY.search(_detail(exc, b"PG_DIAG_MESSAGE_DETAIL") or message)
    if match:
        columns = [c.strip().strip('"') for c in match.group("columns").split(",")]
        values = match.group("values")
    return UniqueViolation(
        f"postgresql: a unique constraint was violated: {message}",
        constraint=constraint,
        columns=columns,
        values=values,
    )


def is_disconnect(exc: BaseException) -> bool:
    """Whether a driver error says the connection itself is gone (it must not go back to the pool)."""
    lowered = str(exc).lower()
    return str(getattr(exc, "sqlstate", "") or "").startswith("08") or any(m in lowered for m in _DISCONNECT_MARKERS)


def interruption(exc: BaseException) -> KeyboardInterrupt | None:
    """Ctrl-C as ADBC reports it, else None. During a blocking call on the main thread ADBC's own
    SIGINT handler cancels the statement, and the call raises the server's "canceling statement
    due to user request" (57014) instead of a KeyboardInterrupt: it is the user's word all the same.
    On another thread ADBC cancels nothing, so a cancel request there came from elsewhere."""
    cancelled = str(getattr(exc, "sqlstate", "") or "") == "57014" and "user request" in str(exc).lower()
    if cancelled and threading.current_thread() is threading.main_thread():
        return KeyboardInterrupt("postgresql: the statement was cancelled by Ctrl-C")
    return None


def translate_error(exc: Exception, *, at_commit: bool = False) -> DataflowError:
    """A PostgreSQL (ADBC) exception as ConflictError or DatabaseError (``at_commit``: raised by COMMIT)."""
    return errors.translate_error(exc, "postgresql", unique_violation=_unique_violation, at_commit=at_commit)
