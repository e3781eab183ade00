"""The error hierarchy: one root, a few specific subclasses, each message says how to fix it.

Every error dataflow_nb raises on purpose is defined here, so ``except`` clauses need one import.
"""

from __future__ import annotations


class DataflowError(Exception):
    """Root of every error dataflow_nb raises on purpose.

    Attributes:
        retryable: True when running the whole run again is safe and may succeed: nothing reached
            the database (connecting failed), or the database itself rolled the transaction back
            for a serialization failure or a deadlock (SQLSTATE 40001, 40P01).
    """

    retryable: bool = False


class DataflowWarning(UserWarning):
    """Something worked, but perhaps not as meant (a node name two live DataFlows define, say)."""


class ValidationError(DataflowError):
    """Bad parameters: unknown fields, wrong types, values that do not fit a column."""


class NotFoundError(DataflowError):
    """A record asked for by id does not exist."""


class ConflictError(DataflowError):
    """A unique key or a stale version stood in the way of a write."""


class UniqueViolation(ConflictError):
    """A unique key was violated; what the database told about it (either may leave some out).

    Attributes:
        constraint: the constraint's name (PostgreSQL names it; DuckDB does not).
        columns: the key's columns, when the database names them.
        values: the offending value(s), as the database printed them.
    """

    def __init__(self, message: str, *, constraint: str | None, columns: list[str] | None, values: str | None):
        super().__init__(message)
        self.constraint = constraint
        self.columns = columns
        self.values = values


class TenantError(DataflowError):
    """A tenant was missing or not allowed."""


class ReadOnlyError(DataflowError):
    """A write was refused before it ran: a read-only DataFlow, or SQL not allowed to write."""


class SchemaError(DataflowError):
    """A model change that needs a decision before it is applied."""


class DatabaseError(DataflowError):
    """The database could not be reached or refused a statement."""


class DatabaseFileError(DatabaseError):
    """A database file could not be opened or written: locked by another process, a full disk,
    a read-only file system.

    Attributes:
        path: the file.
        reason: what stood in the way, in a few words ("locked by another process", ...).
    """

    def __init__(self, message: str, *, path: str, reason: str):
        super().__init__(message)
        self.path = path
        self.reason = reason


class CacheError(DataflowError):
    """The query cache is misconfigured, unreachable or misused."""


class WorkflowError(DataflowError):
    """A node of a workflow run failed, or its commit did; what was not committed was rolled back.

    Attributes:
        node_id: the id of the node that failed (None when the workflow itself was invalid, or
            when the commit failed).
        run_id: the id of the run.
        committed: the databases (DataFlow names) that committed before the failure: only a run
            over several databases whose commit failed part way has any.
        rolled_back: the databases the run touched whose writes were rolled back.
        retries: how many times the run was tried again before this error (see LocalRuntime).
    """

    def __init__(
        self,
        message: str,
        *,
        node_id: str | None = None,
        run_id: str | None = None,
        committed: tuple[str, ...] = (),
        rolled_back: tuple[str, ...] = (),
        retries: int = 0,
    ):
        super().__init__(message)
        self.node_id = node_id
        self.run_id = run_id
        self.committed = committed
        self.rolled_back = rolled_back
        self.retries = retries
