"""DuckDB's errors as dataflow_nb errors: how its messages name a unique key, and what to advise."""

from __future__ import annotations

import re

from dataflow_nb.backends import errors
from dataflow_nb.exceptions import DataflowError, UniqueViolation

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
    if "depend" not in lowered:
        return ""
    return (
        ". DuckDB cannot drop or alter a column that an index or a unique key depends on, nor a column "
        "that comes before a unique key's column; keep the field, or copy the rows into a new table"
    )


def translate_error(exc: Exception, *, at_commit: bool = False) -> DataflowError:
    """A DuckDB exception as ConflictError or DatabaseError (``at_commit``: raised by COMMIT)."""
    return errors.translate_error(
        exc, "duckdb", unique_violation=_unique_violation, advice=_advice, at_commit=at_commit
    )
