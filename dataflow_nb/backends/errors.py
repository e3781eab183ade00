"""Driver exceptions become dataflow_nb errors that say what happened and how to fix it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from dataflow_nb.core.masking import MASK, mask_exception
from dataflow_nb.exceptions import ConflictError, DatabaseError, DataflowError, UniqueViolation

if TYPE_CHECKING:
    from dataflow_nb.core.spec import ModelSpec

_UNIQUE_MARKERS = ("duplicate key", "unique constraint", "violates unique", "primary key or unique constraint")
# Two transactions wrote the same row: DuckDB says so at once, PostgreSQL under SERIALIZABLE.
_WRITE_CONFLICT_MARKERS = (
    "conflict on update",
    "conflict on tuple",
    "could not serialize access",
    "write-write conflict",
)
# The database rolled the transaction back and says running it again may work:
# https://www.postgresql.org/docs/current/mvcc-serialization-failure-handling.html
_RETRYABLE_SQLSTATES = {"40001": "a serialization failure", "40P01": "a deadlock"}
_UNIQUE_SQLSTATE = "23505"
_TIMEOUT_SQLSTATE = "57014"  # query_canceled: statement_timeout, lock_timeout, or a cancel request
# DuckDB, against an existing row: Duplicate key "email: a@x.io" violates unique constraint.
_DUCKDB_KEY = re.compile(r'Duplicate key "(?P<pairs>.*)" violates unique constraint', re.S)
_DUCKDB_KEY_COLUMN = re.compile(r"(?:^|, )(\w+): ")
# Where the databases quote row values in a message; the log keeps what is around them.
_ROW_VALUES = [
    (re.compile(r"(Failed to execute query) '.*?'(?=: ERROR:)", re.S), r"\1"),  # the log's sql column has it
    (re.compile(r"(Key \([^)]*\))=\(.*\)(?= already exists| is not present| is still referenced)", re.S), r"\1"),
    (re.compile(r"(Failing row contains )\(.*\)", re.S), r"\1(...)"),
    (re.compile(r'(duplicate key )"(?P<values>.*)"', re.S), r'\1"..."'),
    (re.compile(r'(invalid input syntax for type [\w ]+: )".*?"'), r'\1"..."'),
    (re.compile(r"(Could not convert string )'.*?'"), r"\1'...'"),
]


def translate_error(
    exc: Exception,
    backend: str,
    *,
    unique_violation: Callable[[Exception, str], UniqueViolation],
    advice: Callable[[str], str] = lambda lowered: "",
    at_commit: bool = False,
) -> DataflowError:
    """Map a driver error to ConflictError (unique keys, write conflicts) or DatabaseError.

    A serialization failure, a deadlock or a DuckDB write conflict raised by a statement is
    ``retryable`` (the database rolled the transaction back); at the commit (``at_commit``) it
    is not, since a run is never sent twice once its commit was. What differs is each backend's
    (``duckdb_errors.py``, ``postgres_errors.py``): how its unique violations name the key, and
    the advice its messages need.

    Args:
        exc: the driver's exception.
        backend: how messages name the database.
        unique_violation: reads the key out of a unique violation's message and diagnostics.
        advice: a sentence to add to a DatabaseError, from the lowered message (``""`` for none).
        at_commit: the error came from COMMIT.
    """
    if isinstance(exc, DataflowError):
        return exc
    message = str(exc).strip()
    # ADBC appends the query text; the values are bound, so it holds no data, but it is noise.
    message = re.split(r"\n\s*Query was:", message)[0].strip()
    lowered = message.lower()
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    if sqlstate == _UNIQUE_SQLSTATE or any(marker in lowered for marker in _UNIQUE_MARKERS):
        return unique_violation(exc, message)
    if sqlstate in _RETRYABLE_SQLSTATES or any(marker in lowered for marker in _WRITE_CONFLICT_MARKERS):
        what = _RETRYABLE_SQLSTATES.get(sqlstate, "another run changed the same row at the same time")
        conflict = ConflictError(
            f"{backend}: {what} ({message}); the database rolled this run back: run it again"
            + (" (its commit failed, so it was not retried)" if at_commit else "")
        )
        conflict.retryable = not at_commit
        return conflict
    if sqlstate == _TIMEOUT_SQLSTATE and "statement timeout" in lowered:
        return DatabaseError(
            f"{backend}: the statement ran longer than statement_timeout and was cancelled ({message}); "
            "raise DataFlow(statement_timeout=...) or make the statement faster"
        )
    if sqlstate == _TIMEOUT_SQLSTATE:  # a cancel request from elsewhere (pg_cancel_backend), or a lock_timeout
        return DatabaseError(f"{backend}: the statement was cancelled ({message}); run it again when that is right")
    return DatabaseError(f"{backend}: {message}{advice(lowered)}")


def loggable_error(exc: BaseException) -> str:
    """An error as the slow-query log keeps it: the constraint and columns, not the row's values.

    Anyone who can read the metrics can read the log; the values belong to the tables' readers.
    """
    if isinstance(exc, UniqueViolation) and (exc.constraint or exc.columns):
        return f"UniqueViolation: unique constraint {exc.constraint!r} on {exc.columns} was violated"
    message = _DUCKDB_KEY.sub(  # "col: value, col: value": keep the column names
        lambda m: f"Duplicate key on {_DUCKDB_KEY_COLUMN.findall(m.group('pairs'))} violates unique constraint",
        str(exc),
    )
    for pattern, replacement in _ROW_VALUES:
        message = pattern.sub(replacement, message)
    return f"{type(exc).__name__}: {message}"


def _unique_keys(model: ModelSpec) -> list[tuple[str, list[str]]]:
    return [
        (str(c.name), [col.name for col in c.columns])
        for c in model.table.constraints
        if isinstance(c, sa.UniqueConstraint)
    ]


def _match_key(model: ModelSpec, error: UniqueViolation) -> tuple[str | None, list[str] | None, str | None]:
    """Fill in what the database left out (DuckDB names no constraint) from the model's keys."""
    keys = _unique_keys(model)
    if error.constraint or error.columns:
        columns = error.columns or dict(keys).get(error.constraint or "")
        name = error.constraint or next((n for n, c in keys if c == columns), None)
        if columns and error.values is not None:
            if len(columns) == 1:
                return name, columns, f"{columns[0]}={error.values!r}"
            return name, columns, f"({', '.join(columns)})=({error.values})"
        return name, columns, error.values
    for name, columns in keys:
        # DuckDB prints "col: value, col: value" in key order: the one key whose names fit is it.
        pattern = ", ".join(f"{re.escape(c)}: (.*)" for c in columns)
        match = re.fullmatch(pattern, error.values or "", re.S)
        if match:
            shown = ", ".join(f"{c}={v!r}" for c, v in zip(columns, match.groups(), strict=True))
            return name, columns, shown
    if len(keys) == 1:
        return keys[0][0], keys[0][1], error.values
    return None, None, error.values


def sensitive_pieces(model: ModelSpec, error: UniqueViolation) -> list[str]:
    """The parts of a unique violation's values that belong to sensitive fields (to mask)."""
    secret = {n for n, f in model.fields.items() if f.sensitive}
    if not secret or error.values is None:
        return []
    if error.columns:  # PostgreSQL: "(tenant_id, email)=(acme, a@x.io)"
        parts = error.values.split(", ")
        if len(parts) == len(error.columns):
            return [v for c, v in zip(error.columns, parts, strict=True) if c in secret]
    pairs = [p.split(": ", 1) for p in error.values.split(", ")]  # DuckDB: "email: a@x.io"
    if all(len(p) == 2 for p in pairs) and {p[0] for p in pairs} <= set(model.fields):
        return [v for c, v in pairs if c in secret]
    return [error.values]  # cannot tell the columns apart: hide it all


def describe_conflict(model: ModelSpec, node: str, error: UniqueViolation) -> ConflictError:
    """A ConflictError naming the model's constraint, its columns and the offending value."""
    name, columns, values = _match_key(model, error)
    shown = [c for c in columns or [] if c != "tenant_id"]
    hidden = sensitive_pieces(model, error)
    if hidden:  # the key holds a sensitive field: its value is shown nowhere
        values = MASK
        mask_exception(error, hidden)
    key = f"unique constraint {name!r} on {shown}" if name else f"one of the unique keys {_unique_keys(model)}"
    # Generated nodes are named {Model}{Operation}Node: a bulk load's way out is the bulk upsert.
    bulk = node.startswith(f"{model.name}Bulk")
    upsert = f"{model.name}BulkUpsertNode" if bulk else f"{model.name}UpsertNode"
    return UniqueViolation(
        f"{node}: {model.name} violates {key} with value {values}: a {model.name} with that value already "
        f"exists (or two rows of the input share it). Give another value, or use {upsert} "
        f"to update the existing {'rows' if bulk else 'record'}. Database said: {error}",
        constraint=name,
        columns=columns,
        values=values,
    )


class naming_conflicts:  # lower case: used as a function, ``with naming_conflicts(model, node):``
    """Turn a bare unique violation raised inside the block into one that names the model's key.

    A class, not ``@contextmanager``: every write enters it, and a generator per write costs more."""

    __slots__ = ("model", "node")

    def __init__(self, model: ModelSpec, node: str) -> None:
        self.model = model
        self.node = node

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, UniqueViolation):
            raise describe_conflict(self.model, self.node, exc) from exc
