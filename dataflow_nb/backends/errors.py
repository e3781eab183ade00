"""Driver exceptions become dataflow_nb errors that say what happened and how to fix it."""

from __future__ import annotations

import re

from dataflow_nb.exceptions import ConflictError, DatabaseError, DataflowError

_UNIQUE_MARKERS = ("duplicate key", "unique constraint", "violates unique", "primary key or unique constraint")


def translate_error(exc: Exception, backend: str) -> DataflowError:
    """Map a driver error to ConflictError (unique keys) or DatabaseError (everything else)."""
    if isinstance(exc, DataflowError):
        return exc
    message = str(exc).strip()
    # ADBC appends the query text; the values are bound, so it holds no data, but it is noise.
    message = re.split(r"\n\s*Query was:", message)[0].strip()
    if any(marker in message.lower() for marker in _UNIQUE_MARKERS):
        return ConflictError(f"{backend}: a unique constraint was violated: {message}")
    return DatabaseError(f"{backend}: {message}")
