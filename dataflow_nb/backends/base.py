"""The backend contract: a small protocol, limits as data, and the compile step both share."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateTable, DropTable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.util import find_tables

from dataflow_nb.backends.partitions import Partitions
from dataflow_nb.core.spec import ModelSpec
from dataflow_nb.core.types import arrow_bind_type

if TYPE_CHECKING:
    from dataflow_nb.backends.load_job import LoadJob, LoadRules, Statements
    from dataflow_nb.core.load_plan import LoadPlan

T = TypeVar("T")


@dataclass(frozen=True)
class Capabilities:
    """What differs between databases, as data rather than ``if backend == ...`` in nodes."""

    name: str
    label: str  # how messages name the database, e.g. "DuckDB"
    max_identifier_length: int  # model, table and field names longer than this are refused
    supports_sequence_setval: bool  # else a sequence is moved past explicit ids by drawing values
    drops_constraints: bool  # ALTER TABLE ... DROP CONSTRAINT works (a migration may drop a unique key)
    alters_indexed_tables: bool  # ALTER TABLE works on a table with indexes (else: drop them, recreate after)
    # The database itself keeps each run to its tenant's rows, whatever SQL the run sends.
    supports_row_level_security: bool
    # Other processes can use the database while this one does: a long run's history row is worth
    # committing while it executes (another kernel sees it running), and finished runs' rows are
    # written sooner (``monitor/run_writer.py``). Defaults to False.
    supports_concurrent_processes: bool = False
    # Streaming standbys that read-only runs can be sent to (``DataFlow(replicas=[...])``).
    supports_replicas: bool = False
    # Citus can spread its tables over servers by tenant (``db.distribution_plan()``, backends/citus.py).
    supports_distribution: bool = False


@dataclass
class ResultSeen:
    """What the results of one statement were seen to need (None: no result yet).

    A statement returns the same column types every time it runs on the same backend, so its
    first result decides for the next ones; copies made with ``dataclasses.replace`` share it.
    """

    evened: bool | None = None  # the backend changed the driver's Arrow (``*_results.py``)
    cast: bool | None = None  # a column was cast to its model type on the way to a frame (``frames.py``)


@dataclass(frozen=True)
class CompiledSQL:
    """A statement compiled for one dialect: SQL text plus the order and Arrow types of its binds."""

    sql: str
    names: tuple[str, ...]
    types: tuple[pa.DataType | None, ...]
    values: tuple[Any, ...]
    returns_rows: bool
    # The tables a statement reads and writes, for the result cache: ``reads`` None means
    # unknown (SQL text), ``writes`` None means it may write anything.
    reads: frozenset[str] | None = None
    writes: frozenset[str] | None = None
    # SQL text (a SQLQueryNode's) or DDL: it may leave something in the session (a setting, a
    # temporary table, a prepared statement) that outlives the transaction. Core DML and queries
    # never do, so a connection that ran only those goes back to the pool without a DISCARD.
    may_change_session: bool = True
    seen: ResultSeen = field(default_factory=ResultSeen, compare=False, repr=False)

    def bind(self, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Positional values: call-time ``params`` override values captured at compile time."""
        if not params:
            return list(self.values)
        return [params.get(n, v) for n, v in zip(self.names, self.values, strict=True)]

    def filled(self, params: Mapping[str, Any]) -> CompiledSQL:
        """The statement with ``params`` captured as its values (what ``explain`` shows); a run
        passes its values as it executes the statement instead, without the copy."""
        return replace(self, values=tuple(self.bind(params)))


@dataclass(frozen=True)
class SQLScan:
    """The user's SQL as the database's own scanner reads it (``:name`` is not SQL, so no parser takes it)."""

    code_colons: tuple[int, ...]  # offsets of ':' outside literals, quoted names and comments
    positional: str | None  # the first positional parameter ($1, ?), which SQLQueryNode refuses
    code: str  # the SQL with literals, quoted names and comments blanked out (same offsets)


@dataclass(frozen=True)
class SQLStatements:
    """Compiled SQL as the database's own parser reads it."""

    count: int
    first_word: str  # of the first statement, e.g. "SELECT" or "BEGIN"
    transaction: bool  # BEGIN, COMMIT, ROLLBACK, SAVEPOINT...: the run owns the transaction
    returns_rows: bool | None  # None: the driver tells after running it
    parameters: int  # how many bound parameters the statements use


class SQLReader(Protocol):
    """Reads SQL with the database's own scanner and parser (DuckDB's, or PostgreSQL's via pglast)."""

    def scan(self, sql: str) -> SQLScan:
        """Where the SQL's colons are code; raises ValidationError when it does not even tokenize."""

    def statements(self, sql: str) -> SQLStatements:
        """How many statements, and of what kind; raises ValidationError when it does not parse."""

    def calls(self, sql: str) -> frozenset[str]:
        """The functions one parsed statement calls, lower case (``CURRENT_DATE`` and its kin by their
        keyword); empty where the parser cannot tell (DuckDB's reads only queries)."""


class Connection(Protocol):
    """One database connection, inside one transaction, for the length of a run."""

    def execute(self, compiled: CompiledSQL, params: Mapping[str, Any] | None = None) -> pa.Table | None:
        """Run a compiled statement; return its rows as Arrow (None when it returns none)."""

    def execute_into(self, compiled: CompiledSQL, params: Mapping[str, Any] | None, into: Callable[[Any], T]) -> T:
        """Run a statement that returns rows; return ``into`` of them as an Arrow C stream
        (``__arrow_c_stream__``). Evened out as ``execute`` evens them; where nothing needed it
        (``compiled.seen.evened`` False) a backend may hand over its driver's own stream."""

    def execute_sql(self, sql: str, params: Sequence[Any] = ()) -> pa.Table | None:
        """Run SQL text with positional ``$n`` parameters."""

    def execute_count(self, compiled: CompiledSQL, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement that returns no rows; return how many rows it changed."""

    def stream(self, compiled: CompiledSQL, *, batch_rows: int) -> Generator[pa.RecordBatch, None, None]:
        """Run a query and yield its rows in batches of at most ``batch_rows``, evened out as
        ``execute`` evens them, without holding the whole result (nothing else may run on the
        connection until the iterator is exhausted or closed)."""

    def ingest(self, table: str, data: pa.RecordBatchReader, *, temporary: bool = False) -> int:
        """Append a stream of record batches (column names as in the table) inside the transaction.

        Returns the number of rows written.
        """

    def ensure_tables(self, tables: Sequence[sa.Table]) -> set[str]:
        """Create dataflow_nb's own ``tables`` where missing (with their id sequences) and add the
        nullable columns an older table lacks, asking the catalog first, inside the transaction;
        returns the names of the tables it created (``backends/bookkeeping.py``)."""

    def commit(self, *, flush: bool = True) -> None:
        """Commit. ``flush=False``: return before the commit reaches the disk (PostgreSQL's
        ``synchronous_commit = off`` for this transaction alone), for bookkeeping that a server
        crash may lose without harm (the run history's row); visible to others at once all the same."""

    def rollback(self) -> None: ...

    def interrupt(self) -> None:
        """Stop the running statement, from another thread (Ctrl-C); the transaction then rolls back."""

    def close(self) -> None:
        """Give the connection back (to the pool); an open transaction is rolled back."""


class Backend(Protocol):
    """A database: a dialect to compile for, capabilities, and connections."""

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def dialect(self) -> Dialect: ...

    @property
    def safe_url(self) -> str:
        """The URL with any password masked: safe for reprs, logs and errors."""

    @property
    def sql_reader(self) -> SQLReader: ...

    @property
    def load_rules(self) -> LoadRules:
        """What this database's bulk ingest accepts (``backends/load_job.py``)."""

    def create_load_job(self, plan: LoadPlan, statements: Statements) -> LoadJob:
        """The job that carries out a bulk node's plan on this database, its statements run
        through ``statements`` (``backends/load_job.py``)."""

    @property
    def partitions(self) -> Partitions:
        """How this database keeps a model's ``partition_by`` (``backends/partitions.py``)."""

    def reflection_dialect(self) -> Any:
        """A SQLAlchemy dialect whose Inspector reads this database's catalog (``backends/reflect.py``)."""

    def connect(self) -> Connection:
        """A connection with a transaction begun."""

    def connect_snapshot(self) -> Connection:
        """A connection whose statements all read one snapshot of the database
        (for a copy that must not mix rows from before and after a concurrent commit)."""

    def advance_sequence(self, connection: Connection, table: sa.Table) -> None:
        """Move ``table``'s id sequence past its highest id, so creates after a copy never collide."""

    def bypasses_tenant_scope(self, connection: Connection) -> bool:
        """Whether the connection's role may write every tenant's rows in one transaction."""

    def isolate_tenant_table(self, connection: Connection, table: str) -> None:
        """Make the database keep every run to its tenant's rows of ``table`` (where it can)."""

    def protect_bookkeeping_table(self, connection: Connection, table: str) -> None:
        """Let a tenant's run read only its own rows of ``table`` (it has ``tenant_id``) and change
        none, where the database can; dataflow_nb's own statements outside a tenant's run are not bound."""

    def protect_secret_table(self, connection: Connection, table: str) -> None:
        """Keep ``table`` (a secret of dataflow_nb's) from a tenant's run and from changes, where the
        database can."""

    def begin_tenant(self, connection: Connection, tenant: str, *, known: bool = True) -> None:
        """Bind the connection's transaction to ``tenant`` for the tables ``isolate_tenant_table`` set up.

        ``known=False``: the DataFlow defined no multi-tenant model, yet its database may hold some
        (another DataFlow's); the tenant is bound wherever the database is set up for it.
        """

    def unisolated_tables(self, connection: Connection, compiled: CompiledSQL, tables: set[str]) -> set[str]:
        """Which of ``tables`` the statement would read or write without the database scoping it."""

    def execute_read_only(self, connection: Connection, compiled: CompiledSQL) -> pa.Table | None:
        """Run a statement that must not write; one that would is refused and changes nothing."""

    def refused_sql(self, connection: Connection, compiled: CompiledSQL) -> str | None:
        """Why a read-only or tenant session may not run the statement (its files, the catalog's
        statistics...); None where nothing is refused or the database refuses it itself."""

    def identity(self) -> str:
        """What tells this database apart from every other (the result cache's namespace)."""

    def varying_functions(self) -> frozenset[str]:
        """Functions whose answer may change between two statements (``random``, ``now``, ``nextval``,
        the ``CURRENT_*`` keywords), from the database's own catalog: SQL calling one is never cached."""

    def role(self) -> str:
        """The database role whose privileges the runs have: two roles never share a cached result."""

    def has_spare_connection(self) -> bool:
        """A connection can be had now without waiting for a run to give one back."""

    def close(self) -> None: ...


@runtime_checkable
class Database(Protocol):
    """What the layers below ``dataflow.py`` need of a DataFlow (a DataFlow is one): its name,
    backend and models. A module that needs more states it in a protocol of its own extending this."""

    @property
    def name(self) -> str: ...
    @property
    def backend(self) -> Backend: ...
    @property
    def models(self) -> dict[str, ModelSpec]: ...
    @property
    def frame(self) -> Literal["polars", "pandas"]: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def security_enabled(self) -> bool: ...
    @property
    def audit_key(self) -> bytes: ...


def compile_statement(statement: sa.sql.ClauseElement, dialect: Dialect) -> CompiledSQL:
    """Compile with the dialect; no value is ever formatted into the SQL text. DDL binds nothing."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    if not isinstance(compiled, SQLCompiler):
        return CompiledSQL(str(compiled), (), (), (), returns_rows=False)
    names = tuple(compiled.positiontup or ())
    captured = compiled.construct_params(_check=False)
    types = []
    own_types: dict[str, pa.DataType] = getattr(compiled, "bind_arrow_types", {})  # the dialect's own way
    for name in names:
        # An expanded IN list binds ``b_1_1``, ``b_1_2``...; their type is the list's, ``b_1``.
        bind = compiled.binds.get(name)
        if bind is None:
            bind = compiled.binds.get(name.rsplit("_", 1)[0])
        own = own_types.get(name)
        types.append(own if own is not None else arrow_bind_type(bind.type) if bind is not None else None)
    values = [captured.get(name) for name in names] if captured else [None] * len(names)
    returns_rows = isinstance(statement, sa.Select) or bool(getattr(compiled, "effective_returning", None))
    reads, writes = _tables_of(statement)
    core = isinstance(statement, sa.Select | sa.Insert | sa.Update | sa.Delete)
    return CompiledSQL(
        str(compiled), names, tuple(types), tuple(values), returns_rows, reads, writes, may_change_session=not core
    )


def _tables_of(statement: sa.sql.ClauseElement) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    """What a Core statement reads and writes; SQL text and DDL count as unknown."""
    if isinstance(statement, sa.Select):
        found = find_tables(statement, include_joins=True, include_aliases=True, include_crud=True)
        return frozenset(t.name for t in found if isinstance(t, sa.TableClause)), frozenset()
    if isinstance(statement, CreateTable | DropTable):  # a bulk node's staging table
        return None, frozenset({statement.element.name})
    if isinstance(statement, sa.Insert | sa.Update | sa.Delete):
        target = statement.table
        return None, frozenset({target.name}) if isinstance(target, sa.TableClause) else None
    return None, None
