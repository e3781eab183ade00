"""DuckDB through its Python API: Arrow results, one cursor (connection) per run."""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import uuid
import warnings
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles

from dataflow_nb.backends.base import Capabilities, CompiledSQL, compile_statement
from dataflow_nb.backends.bookkeeping import ensure_tables
from dataflow_nb.backends.deadline import DeadlineExceeded, call_with_deadline
from dataflow_nb.backends.duckdb_access import allowed_table_functions, refused_functions, refused_table_functions
from dataflow_nb.backends.duckdb_errors import file_error, interruption, translate_error
from dataflow_nb.backends.duckdb_load import DuckDBLoadJob, DuckDBLoadRules
from dataflow_nb.backends.duckdb_results import normalize_result
from dataflow_nb.backends.duckdb_sql import DuckDBSQLReader
from dataflow_nb.backends.load_job import Statements
from dataflow_nb.backends.partitions import Partitions
from dataflow_nb.backends.sql import JSONB, SQL_VALUE_FUNCTIONS, InArray, RegexMatch, quoted
from dataflow_nb.core.load_plan import LoadPlan
from dataflow_nb.exceptions import DatabaseError, DataflowError, ReadOnlyError

T = TypeVar("T")

# A statement that writes and returns rows runs through the DB-API ``execute`` and its result is
# read as Arrow: for a generated node's one-row RETURNING, ``cursor.sql(...)`` (the relation API,
# which DuckDB's warning points to) costs twice as much (1.35-1.8 ms against 0.86-1.03 ms a row
# here, benchmarks/README.md), and the copy the warning is about is one row. The filter names
# this module alone.
_RETURNING_COPY = "Arrow output on a DB-API result makes an extra copy"
warnings.filterwarnings("ignore", message=_RETURNING_COPY, category=UserWarning, module=re.escape(__name__) + "$")
# The column types a RETURNING's rows are read in as Python values (``fetchall``, about half the
# CPU of reading them as Arrow); a result with any other type is read as Arrow.
_PLAIN_TYPES = {
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "SMALLINT": pa.int16(),
    "TINYINT": pa.int8(),
    "DOUBLE": pa.float64(),
    "FLOAT": pa.float32(),
    "BOOLEAN": pa.bool_(),
    "VARCHAR": pa.string(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", "UTC"),
}


def _returned(cursor: Any) -> pa.Table:
    """The rows of a DML statement's RETURNING (a generated node's: one row): through ``fetchall``
    when every column is of a plain type, else as Arrow (see _RETURNING_COPY)."""
    columns = cursor.description or []
    types = [_PLAIN_TYPES.get(str(column[1])) for column in columns]
    if not columns or any(t is None for t in types):
        return cursor.to_arrow_table()
    rows = cursor.fetchall()
    arrays = [pa.array([row[i] for row in rows], type=t) for i, t in enumerate(types)]
    return pa.Table.from_arrays(arrays, names=[column[0] for column in columns])


INTERRUPT_GRACE = 10.0  # seconds DuckDB gets to stop an interrupted statement before the run stops waiting

CAPABILITIES = Capabilities(
    name="duckdb",
    label="DuckDB",
    # No documented identifier limit; keep PostgreSQL's so a notebook moves between them unchanged.
    max_identifier_length=63,
    # No setval: https://duckdb.org/docs/stable/sql/statements/create_sequence (only nextval/currval)
    supports_sequence_setval=False,
    # ALTER TABLE ... DROP CONSTRAINT is not implemented, and most ALTER TABLE fails on a table
    # with an index: https://duckdb.org/docs/stable/sql/statements/alter_table
    drops_constraints=False,
    alters_indexed_tables=False,
    # No row-level security in DuckDB: SQLQueryNode refuses raw SQL on tenant tables instead.
    supports_row_level_security=False,
    # One process at a time opens a database file for writing (https://duckdb.org/docs/connect/concurrency):
    # other kernels cannot watch a run, so its history row is written once, after it ends.
    supports_concurrent_processes=False,
)


# The target of INSERT INTO [schema.]table, possibly quoted; a WITH before it is not matched.
_INSERT_TARGET = re.compile(
    r'\s*insert\s+(?:or\s+\w+\s+)?into\s+((?:"(?:[^"]|"")+"|\w+)(?:\.(?:"(?:[^"]|"")+"|\w+))*)', re.I
)


class DuckDBDialect(PGDialect):
    """DuckDB speaks PostgreSQL's SQL closely enough; the few differences are compiled here."""

    name = "duckdb"
    supports_statement_cache = True

    def __init__(self, **kwargs: Any):
        super().__init__(paramstyle="numeric_dollar", **kwargs)  # type: ignore[no-untyped-call]
        preparer = self.identifier_preparer
        preparer.reserved_words = preparer.reserved_words | duckdb_reserved_words()


@functools.cache
def duckdb_reserved_words() -> frozenset[str]:
    """What DuckDB reserves beyond PostgreSQL (``by`` is one), asked of DuckDB itself."""
    import duckdb

    with duckdb.connect() as connection:
        rows = connection.sql(
            "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category <> 'unreserved'"
        ).fetchall()
    return frozenset(k for (k,) in rows)


@compiles(JSONB, "duckdb")
def _compile_jsonb(type_: JSONB, compiler: Any, **kw: Any) -> str:
    return "JSON"


@compiles(RegexMatch, "duckdb")
def _compile_regex_match(element: RegexMatch, compiler: Any, **kw: Any) -> str:
    column, pattern = list(element.clauses)
    return f"regexp_matches({compiler.process(column, **kw)}, {compiler.process(pattern, **kw)}, 's')"


@compiles(InArray, "duckdb")
def _compile_in_array(element: InArray, compiler: Any, **kw: Any) -> str:
    """DuckDB's binds carry no cast: the array is cast to the column's type (text to UUID, say)."""
    column, array = list(element.clauses)
    bound = compiler.process(array, **kw)
    if not isinstance(array.type, sa.ARRAY) or isinstance(array.type.item_type, sa.types.NullType):
        return f"({compiler.process(column, **kw)} = ANY({bound}))"
    kind = compiler.dialect.type_compiler_instance.process(array.type)
    return f"({compiler.process(column, **kw)} = ANY(CAST({bound} AS {kind})))"


class DuckDBConnection:
    """A DuckDB cursor (its own connection to the same database) holding one transaction."""

    def __init__(
        self, cursor: Any, dialect: Dialect, *, path: str = ":memory:", statement_timeout: float | None = None
    ):
        self._cursor = cursor
        self._dialect = dialect
        self._cursor.execute("BEGIN TRANSACTION")
        self._open = True
        self._path = path
        self._statement_timeout = statement_timeout

    def _translate(self, exc: Exception, *, at_commit: bool = False) -> DataflowError | KeyboardInterrupt:
        """Ctrl-C stays a KeyboardInterrupt; a full disk or a read-only file system names the file;
        anything else as every backend maps it."""
        return interruption(exc) or file_error(exc, self._path, "write") or translate_error(exc, at_commit=at_commit)

    def _limited(self, call: Callable[[], T]) -> T:
        """Run a statement; past ``statement_timeout``, or on Ctrl-C, DuckDB is told to stop it."""
        try:
            return call_with_deadline(
                call,
                self._statement_timeout,
                on_timeout=self._cursor.interrupt,
                grace=INTERRUPT_GRACE,
                on_interrupt=self._cursor.interrupt,
                interrupt_grace=INTERRUPT_GRACE,
            )
        except DeadlineExceeded:
            raise DatabaseError(
                f"duckdb: the statement ran longer than statement_timeout ({self._statement_timeout:g} s) and "
                "was interrupted; raise DataFlow(statement_timeout=...) or make the statement faster"
            ) from None

    def _run(self, sql: str, values: Sequence[Any], returns_rows: bool, *, writes: bool = False) -> pa.Table | None:
        def run() -> pa.Table | None:
            if returns_rows and writes:  # INSERT/UPDATE/DELETE ... RETURNING: see _RETURNING_COPY
                return normalize_result(_returned(self._cursor.execute(sql, list(values))))
            if returns_rows:
                relation = self._cursor.sql(sql, params=list(values) or None)
                return None if relation is None else normalize_result(relation.to_arrow_table())
            self._cursor.execute(sql, list(values))
            return None

        try:
            return self._limited(run)
        except DataflowError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc

    def execute(self, compiled: CompiledSQL, params: Mapping[str, Any] | None = None) -> pa.Table | None:
        writes = bool(compiled.writes) and not compiled.may_change_session  # Core DML, not SQL text
        return self._run(compiled.sql, compiled.bind(params), compiled.returns_rows, writes=writes)

    def execute_into(self, compiled: CompiledSQL, params: Mapping[str, Any] | None, into: Callable[[Any], T]) -> T:
        return into(self.execute(compiled, params))

    def execute_sql(self, sql: str, params: Sequence[Any] = ()) -> pa.Table | None:
        return self._run(sql, params, True)

    def execute_count(self, compiled: CompiledSQL, params: Mapping[str, Any] | None = None) -> int:
        try:
            # DuckDB answers a DML statement with one row: the number of rows it changed.
            row = self._limited(lambda: self._cursor.execute(compiled.sql, compiled.bind(params)).fetchone())
        except DataflowError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc
        return int(row[0]) if row else 0

    def stream(self, compiled: CompiledSQL, *, batch_rows: int) -> Generator[pa.RecordBatch, None, None]:
        try:
            reader = self._limited(
                lambda: self._cursor.sql(compiled.sql, params=compiled.bind() or None).to_arrow_reader(batch_rows)
            )
        except DataflowError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc
        try:
            for batch in reader:
                yield from normalize_result(pa.Table.from_batches([batch])).to_batches()
        finally:
            reader.close()

    def ingest(self, table: str, data: pa.RecordBatchReader, *, temporary: bool = False) -> int:
        # DuckDB scans the Arrow stream itself; INSERT ... SELECT casts text to UUID and JSON.
        view = f"dataflow_ingest_{uuid.uuid4().hex}"
        columns = ", ".join(quoted(name) for name in data.schema.names)
        self._cursor.register(view, data)
        try:
            insert = f"INSERT INTO {quoted(table)} ({columns}) SELECT {columns} FROM {view}"
            row = self._limited(lambda: self._cursor.execute(insert).fetchone())
        except Exception as exc:
            with contextlib.suppress(Exception):  # an aborted transaction refuses this too; the cause matters
                self._cursor.unregister(view)
            raise self._translate(exc) from exc
        self._cursor.unregister(view)
        return int(row[0]) if row else 0

    def ensure_tables(self, tables: Sequence[sa.Table]) -> set[str]:
        return ensure_tables(self, self._dialect, tables)

    def read_plan(self, compiled: CompiledSQL) -> tuple[set[str], set[str]]:
        """The tables DuckDB's unoptimised plan scans (a view or ``query('...')`` resolved), and the
        names of its other operators (a table function's is its name in upper case)."""
        import json

        import duckdb

        self._cursor.execute("SET explain_output = 'optimized_only'")
        self._cursor.execute("PRAGMA disable_optimizer")  # the optimiser drops scans of empty tables
        try:
            rows = self._cursor.execute(f"EXPLAIN (FORMAT json) {compiled.sql}", compiled.bind()).fetchall()
        except Exception as exc:
            raise self._translate(exc) from exc
        finally:
            with contextlib.suppress(duckdb.Error):  # after a failed EXPLAIN the run ends: its error matters
                self._cursor.execute("PRAGMA enable_optimizer")
                self._cursor.execute("RESET explain_output")
        tables: set[str] = set()
        operators: set[str] = set()
        nodes = [node for _, plan in rows for node in json.loads(plan)]
        while nodes:
            node = nodes.pop()
            table = (node.get("extra_info") or {}).get("Table") if isinstance(node.get("extra_info"), dict) else None
            if table:
                tables.add(str(table).split(".")[-1])
            else:
                operators.add(str(node.get("name", "")))
            nodes.extend(node.get("children", []))
        return tables, operators

    def commit(self, *, flush: bool = True) -> None:
        """Commit; a conflict found at commit (a unique key another run just took) is a ConflictError.
        DuckDB has one writer process and no commit to defer: ``flush`` changes nothing."""
        self._open = False  # a failed COMMIT ends the transaction too: there is nothing to roll back
        try:
            self._cursor.execute("COMMIT")
        except Exception as exc:
            raise self._translate(exc, at_commit=True) from exc

    def interrupt(self) -> None:
        self._cursor.interrupt()

    def rollback(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            self._cursor.execute("ROLLBACK")
        except Exception as exc:
            raise self._translate(exc) from exc

    def close(self) -> None:
        if self._open:
            self.rollback()
        self._cursor.close()


class DuckDBBackend:
    """An embedded DuckDB database, in memory or in a file."""

    capabilities = CAPABILITIES
    partitions = Partitions()  # no declarative partitions: partition_by keeps one plain table

    def __init__(self, path: str | None = None, *, statement_timeout: float | None = None, files: bool = True):
        import duckdb

        self.path = path or ":memory:"
        try:
            if path and path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._database = duckdb.connect(self.path)
        except (OSError, duckdb.Error) as exc:
            raise file_error(exc, self.path, "open") or translate_error(exc) from exc
        self.safe_url = f"duckdb:///{self.path}"
        self.dialect = DuckDBDialect()
        self.sql_reader = DuckDBSQLReader()
        # Timestamps come back in UTC, the same instant PostgreSQL's ADBC driver returns.
        self._database.execute("SET TimeZone = 'UTC'")
        if not files:
            # DuckDB's own switch: no file, URL or other database is reachable from SQL any more. It is
            # the database instance's (every DataFlow on this file in this process) and cannot be turned
            # back on while it is open. lock_configuration is not set: it would also lock the session
            # settings read_plan uses, and the statements that could change settings are refused anyway.
            self._database.execute("SET enable_external_access = false")
        self._lock = threading.Lock()
        self._files_closed = not files
        self._memory_id = uuid.uuid4().hex
        self._statement_timeout = statement_timeout

    def reads_files(self) -> bool:
        """Whether SQL on this database may reach files (another DataFlow on the file may have closed
        them; once closed they stay closed, so that answer is kept)."""
        if self._files_closed:
            return False
        with self._lock:
            row = self._database.execute("SELECT current_setting('enable_external_access')").fetchone()
        self._files_closed = not (row and row[0])
        return not self._files_closed

    @property
    def load_rules(self) -> DuckDBLoadRules:
        """Files are read by the run's SQL only where it may reach them; else they are streamed in."""
        return DuckDBLoadRules(reads_files=self.reads_files())

    def create_load_job(self, plan: LoadPlan, statements: Statements) -> DuckDBLoadJob:
        return DuckDBLoadJob(plan, statements, self.load_rules, self.dialect, self.capabilities)

    def has_spare_connection(self) -> bool:
        """Always: a connection is a cursor of the one open database."""
        return True

    def identity(self) -> str:
        """The file's real path; an in-memory database is new each time, so a fresh id."""
        if self.path == ":memory:":
            return f"duckdb:memory:{self._memory_id}"
        return f"duckdb:{Path(self.path).expanduser().resolve()}"

    def role(self) -> str:
        """DuckDB has no roles: every connection may do everything."""
        return ""

    @functools.cached_property
    def _varying_functions(self) -> frozenset[str]:
        # A macro has no stability: what it calls is unknown, so it counts as varying.
        with self._lock:
            rows = self._database.execute(
                "SELECT DISTINCT lower(function_name) FROM duckdb_functions()"
                " WHERE function_type IN ('scalar', 'macro') AND coalesce(stability, '') <> 'CONSISTENT'"
            ).fetchall()
        return frozenset(name for (name,) in rows) | SQL_VALUE_FUNCTIONS

    def varying_functions(self) -> frozenset[str]:
        """Functions DuckDB does not mark CONSISTENT (same answer for the same arguments, always)."""
        return self._varying_functions

    def reflection_dialect(self) -> Any:
        from dataflow_nb.backends.duckdb_catalog import reflection_dialect  # Alembic loads with the first model

        return reflection_dialect()

    def connect(self) -> DuckDBConnection:
        with self._lock:
            return DuckDBConnection(
                self._database.cursor(), self.dialect, path=self.path, statement_timeout=self._statement_timeout
            )

    def connect_snapshot(self) -> DuckDBConnection:
        """A transaction of DuckDB's is already one snapshot (MVCC); nothing more to ask for."""
        return self.connect()

    def advance_sequence(self, connection: Any, table: sa.Table) -> None:
        """DuckDB has no setval: the values up to the highest id are drawn in one vectorised query."""
        sequence = table.c.id.default
        assert isinstance(sequence, sa.Sequence)
        found = connection.execute(
            compile_statement(
                sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0), sequence.next_value()), self.dialect
            )
        )
        assert found is not None
        highest, drawn = (int(found.column(i)[0].as_py()) for i in range(2))
        if highest > drawn:
            draw = sa.select(sa.func.max(sequence.next_value())).select_from(sa.func.range(highest - drawn))
            connection.execute(compile_statement(draw, self.dialect))

    def bypasses_tenant_scope(self, connection: Any) -> bool:
        """No row-level security: nothing binds a connection to one tenant."""
        return True

    def isolate_tenant_table(self, connection: Any, table: str) -> None:
        pass  # nothing to set up: see unisolated_tables

    def protect_bookkeeping_table(self, connection: Any, table: str) -> None:
        pass  # raw SQL in a tenant's run is refused the bookkeeping tables (nodes/sql.py)

    def protect_secret_table(self, connection: Any, table: str) -> None:
        pass  # likewise refused to a tenant's raw SQL; whoever holds the file holds the key

    def begin_tenant(self, connection: Any, tenant: str, *, known: bool = True) -> None:
        pass  # the generated nodes scope their statements; raw SQL is checked by unisolated_tables

    def unisolated_tables(self, connection: Any, compiled: CompiledSQL, tables: set[str]) -> set[str]:
        """Tables the statement reads or writes, from DuckDB's plan (views and ``query()`` resolved).

        DuckDB has no row-level security, so all of them are unscoped. Besides ``tables``, every
        table of the schema with a ``tenant_id`` column counts (a DataFlow without the models may be
        the one running the SQL). A statement other than a query, UPDATE, DELETE or an INSERT whose
        target can be read (DDL, COPY, ...) counts as touching every table.
        """
        import duckdb

        found = connection.execute_sql(
            "SELECT DISTINCT table_name FROM duckdb_columns() WHERE column_name = 'tenant_id'"
            " AND database_name = current_database()"
        )
        tables = tables | set(found.column(0).to_pylist() if found is not None else ())
        if not tables:
            return set()
        kinds = {s.type for s in duckdb.extract_statements(compiled.sql)}
        planned = {duckdb.StatementType.SELECT, duckdb.StatementType.UPDATE}
        planned |= {duckdb.StatementType.DELETE, duckdb.StatementType.INSERT}
        if not kinds <= planned:
            return set(tables)
        touched: set[str] = connection.read_plan(compiled)[0]
        if duckdb.StatementType.INSERT in kinds:  # the plan does not name an INSERT's target
            target = _INSERT_TARGET.match(compiled.sql)
            if target is None:
                return set(tables)
            touched.add(target.group(1).strip('"').replace('""', '"').split(".")[-1].strip('"'))
        return touched & tables

    @functools.cached_property
    def _table_functions(self) -> frozenset[str]:
        with self._lock:
            rows = self._database.execute(
                "SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE function_type LIKE 'table%'"
            ).fetchall()
        return frozenset(name for (name,) in rows)

    def refused_sql(self, connection: Any, compiled: CompiledSQL) -> str | None:
        """What a read-only or tenant session may not run here: table functions off the allow-list
        (found in the plan), functions that write (``duckdb_access.py``)."""
        files = self.reads_files()
        _, operators = connection.read_plan(compiled)
        tables = refused_table_functions(operators, self._table_functions, files=files)
        if tables:
            return (
                f"table function {', '.join(t + '()' for t in tables)} is not on the list such SQL may call "
                f"({allowed_table_functions(files=files)})"
            )
        writing = refused_functions(compiled.sql)
        if writing:
            return f"{', '.join(w + '()' for w in writing)} changes the database (a sequence, a seed)"
        return None

    def execute_read_only(self, connection: Any, compiled: CompiledSQL) -> pa.Table | None:
        """DuckDB has no read-only transaction on a writable database: only queries calling nothing
        off the allow-list are let through (``duckdb_access.py``)."""
        import duckdb

        kinds = {s.type for s in duckdb.extract_statements(compiled.sql)}
        if kinds != {duckdb.StatementType.SELECT}:
            shown = ", ".join(sorted(k.name for k in kinds))
            also = " (EXPLAIN ANALYZE runs the statement it explains)" if duckdb.StatementType.EXPLAIN in kinds else ""
            raise ReadOnlyError(
                f"duckdb: the statement is {shown}, and read-only SQL runs queries only (SELECT, WITH, "
                f"VALUES, TABLE, FROM){also}"
            )
        refused = self.refused_sql(connection, compiled)
        if refused is not None:
            raise ReadOnlyError(f"duckdb: {refused}")
        return connection.execute(compiled)

    def close(self) -> None:
        self._database.close()
