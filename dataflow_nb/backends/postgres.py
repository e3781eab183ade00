"""PostgreSQL through ADBC: parametrised statements with Arrow in and out, and a checked pool."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, TypeVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import QueuePool

from dataflow_nb.backends.base import Capabilities, CompiledSQL, ResultSeen, compile_statement
from dataflow_nb.backends.bookkeeping import ensure_tables
from dataflow_nb.backends.deadline import DeadlineExceeded, call_with_deadline
from dataflow_nb.backends.load_job import LoadJob, Statements
from dataflow_nb.backends.postgres_binds import param_batch
from dataflow_nb.backends.postgres_dialect import postgres_dialect
from dataflow_nb.backends.postgres_errors import interruption, is_disconnect, translate_error
from dataflow_nb.backends.postgres_load import PostgresLoadRules
from dataflow_nb.backends.postgres_partitions import PostgresPartitions
from dataflow_nb.backends.postgres_pool import (
    Connector,
    checkout_check,
    discard_session,
    note_return,
    return_late,
    roll_back,
)
from dataflow_nb.backends.postgres_results import normalize_result
from dataflow_nb.backends.postgres_sql import PostgresSQLReader
from dataflow_nb.backends.postgres_url import mask_url, parse_postgres_url, url_secrets
from dataflow_nb.backends.row_security import (
    BEGIN_TENANT,
    BEGIN_TENANT_FUNCTION,
    exposed_sessions,
    isolate_table,
    protect_bookkeeping_table,
    protect_secret_table,
)
from dataflow_nb.backends.sql import SQL_VALUE_FUNCTIONS
from dataflow_nb.core.load_plan import LoadPlan
from dataflow_nb.exceptions import DatabaseError, DataflowError, ReadOnlyError

T = TypeVar("T")
log = logging.getLogger("dataflow_nb")
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds; libpq's own default is to wait forever
CLIENT_GRACE = 1.0  # the client gives up this long after the server's statement_timeout should have fired

READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction

CAPABILITIES = Capabilities(
    name="postgresql",
    label="PostgreSQL",
    # NAMEDATALEN - 1: https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS
    max_identifier_length=63,
    # https://www.postgresql.org/docs/current/functions-sequence.html
    supports_sequence_setval=True,
    # https://www.postgresql.org/docs/current/ddl-rowsecurity.html (see backends/row_security.py)
    supports_row_level_security=True,
    # A server: every kernel and the CLI share it, so a long run's "running" row is committed while it runs.
    supports_concurrent_processes=True,
    # Hot standbys answer reads: https://www.postgresql.org/docs/current/hot-standby.html
    supports_replicas=True,
    # Citus is a PostgreSQL extension: https://docs.citusdata.com/en/stable/develop/api_udf.html
    supports_distribution=True,
    drops_constraints=True,
    alters_indexed_tables=True,
)


def _query(cursor: Any, sql: str, params: Any, returns_rows: bool, seen: ResultSeen | None) -> pa.Table | None:
    """Run a statement; its rows (if it returns any) as a table, evened out (``postgres_results.py``)."""
    cursor.execute(sql, params)
    if returns_rows or cursor.description:
        table = cursor.fetch_arrow_table()
        if seen is not None and seen.evened is False:  # its results never needed it (``ResultSeen``)
            return table
        evened = normalize_result(table)
        if seen is not None:
            seen.evened = evened is not table
        return evened
    return None


def _query_into(cursor: Any, sql: str, params: Any, into: Callable[[Any], T]) -> T:
    """Run a statement; ``into`` of ADBC's own stream of its rows."""
    cursor.execute(sql, params)
    return into(cursor.fetch_arrow())


def _update(cursor: Any, sql: str, params: Any) -> int:
    """Run a write; the rows it changed (executemany runs ADBC's execute_update, which reports them)."""
    cursor.executemany(sql, params)
    return int(cursor.rowcount)


class PostgresConnection:
    """A pooled ADBC connection holding one transaction (ADBC leaves autocommit off)."""

    def __init__(
        self,
        pooled: Any,
        safe_url: str,
        dialect: Dialect,
        *,
        statement_timeout: float | None = None,
        replace_lost: Callable[[], Any] | None = None,
    ):
        self._pooled = pooled
        # The pool checks a connection at checkout only after it sat idle a while: one found lost
        # by the first statement it is given is replaced (``replace_lost``) and the statement sent again.
        self._replace_lost = replace_lost
        self._fresh = replace_lost is not None
        self._dialect = dialect
        self._safe_url = safe_url
        self._cursor: Any = None
        self._broken = False  # the connection is gone or in an unknown state: discard, never pool it
        # The server enforces statement_timeout itself; this client-side limit, a little longer,
        # is for a server that does not answer at all (paused, or cut off by the network).
        self._deadline = None if statement_timeout is None else statement_timeout + CLIENT_GRACE
        self._abandoned = False  # a call outlived the limit: its thread closes the connection
        # SQL text (a SQLQueryNode's) or a temporary table may have left something in the session
        # for the next run to find: then ``close`` discards the session. dataflow_nb's own
        # statements change nothing that outlives their transaction.
        self._session_changed = False
        self._open = True  # a transaction may be open: every driver call but a commit or rollback may begin one

    def _call(self, call: Callable[..., T], *args: Any, at_commit: bool = False) -> T:
        """Make a driver call, ``call(*args)``, within the client-side limit when there is one;
        errors translated."""
        if self._abandoned:
            raise DatabaseError(f"postgresql: the connection to {self._safe_url} was given up after a timeout")
        self._open = True
        try:
            if self._deadline is None:
                return call(*args)
            return call_with_deadline(
                functools.partial(call, *args),
                self._deadline,
                on_timeout=self._abandon,
                abandon=self._close_late,
                on_interrupt=self.interrupt,
            )
        except DeadlineExceeded:
            raise DatabaseError(
                f"postgresql: the server at {self._safe_url} did not answer within statement_timeout "
                f"({self._deadline:g} s with the client's grace); it may be hung or unreachable. The "
                "connection was discarded" + ("; whether the commit happened is unknown" if at_commit else "")
            ) from None
        except Exception as exc:
            if at_commit:
                self._broken = True  # whatever happened, the session's state is not worth trusting again
            raise self._failed(exc, at_commit=at_commit) from exc

    def interrupt(self) -> None:
        """Ask the server to cancel the running statement (the connection stays usable)."""
        self._pooled.dbapi_connection.adbc_cancel()

    def _abandon(self) -> None:
        """Out of the pool at once (its slot is free again); the busy connection is left alone."""
        self._abandoned = self._broken = True
        self._pooled.detach()

    def _close_late(self, _: Any) -> None:
        with contextlib.suppress(Exception):
            if self._cursor is not None:
                self._cursor.close()
        with contextlib.suppress(Exception):
            self._pooled.close()  # detached: this closes the DBAPI connection itself

    @property
    def cursor(self) -> Any:
        if self._cursor is None:
            self._cursor = self._pooled.dbapi_connection.cursor()
        return self._cursor

    def _run(
        self, sql: str, params: pa.RecordBatch | None, returns_rows: bool, seen: ResultSeen | None = None
    ) -> pa.Table | None:
        return self._statement(_query, sql, params, returns_rows, seen)

    def _statement(self, run: Callable[..., T], *args: Any) -> T:
        """``run(cursor, *args)``; a connection found lost by the first statement it is given
        (nothing of the run reached the server) is replaced once, and the statement sent again on
        the new one. (Functions and arguments, not closures: every statement of a run comes here.)"""
        fresh, self._fresh = self._fresh, False
        try:
            return self._call(run, self.cursor, *args)
        except DataflowError:
            if not (fresh and self._broken and not self._abandoned and self._replace_lost is not None):
                raise
        with contextlib.suppress(Exception):
            self._cursor.close()
        self._cursor = None
        lost, self._pooled = self._pooled, None
        lost.invalidate()
        self._pooled = self._replace_lost()  # raises "cannot connect" when the server is not back
        self._broken = False
        return self._call(run, self.cursor, *args)

    def _ensure_live(self) -> None:
        """Before a stream of rows that cannot be sent twice (an ingest reads its batches once), a
        connection handed out without the checkout check is checked here: one round trip, once."""
        if self._fresh:
            self._statement(lambda cursor: cursor.execute("SELECT 1") or cursor.fetchall())

    def _failed(self, exc: Exception, *, at_commit: bool = False) -> BaseException:
        """The error to raise (Ctrl-C stays a KeyboardInterrupt); a lost connection is also marked
        so that ``close`` discards it."""
        if is_disconnect(exc):
            self._broken = True
        return interruption(exc) or translate_error(exc, at_commit=at_commit)

    def _note_session(self, compiled: CompiledSQL) -> None:
        self._session_changed |= compiled.may_change_session

    def _bound(self, compiled: CompiledSQL, params: Mapping[str, Any] | None) -> pa.RecordBatch | None:
        self._note_session(compiled)
        values = compiled.bind(params)
        return param_batch(values, compiled.types) if values else None

    def execute(self, compiled: CompiledSQL, params: Mapping[str, Any] | None = None) -> pa.Table | None:
        return self._run(compiled.sql, self._bound(compiled, params), compiled.returns_rows, compiled.seen)

    def execute_into(self, compiled: CompiledSQL, params: Mapping[str, Any] | None, into: Callable[[Any], T]) -> T:
        # A statement whose results needed nothing evened out hands ADBC's own stream over: no
        # pyarrow reader and table between (~80 us of a one-row result's ~100 us, issue 24).
        if compiled.seen.evened is not False:
            return into(self.execute(compiled, params))
        rows: T = self._statement(_query_into, compiled.sql, self._bound(compiled, params), into)
        return rows

    def execute_sql(self, sql: str, params: Sequence[Any] = ()) -> pa.Table | None:
        batch = param_batch(params, [None] * len(params)) if params else None
        return self._run(sql, batch, False)

    def execute_count(self, compiled: CompiledSQL, params: Mapping[str, Any] | None = None) -> int:
        return self._statement(_update, compiled.sql, self._bound(compiled, params))

    def stream(self, compiled: CompiledSQL, *, batch_rows: int) -> Generator[pa.RecordBatch, None, None]:
        # ADBC reads the result as a COPY TO in binary and hands it on chunk by chunk; each chunk
        # is evened out alone, then cut to at most ``batch_rows``.
        self._note_session(compiled)
        self._ensure_live()
        values = compiled.bind()
        params = param_batch(values, compiled.types) if values else None
        cursor = self.cursor

        def start() -> pa.RecordBatchReader:
            cursor.execute(compiled.sql, params)
            return cursor.fetch_record_batch()

        def next_chunk() -> pa.RecordBatch | None:
            try:
                return reader.read_next_batch()
            except StopIteration:
                return None

        reader = self._call(start)
        try:
            while (chunk := self._call(next_chunk)) is not None:
                yield from normalize_result(pa.Table.from_batches([chunk])).to_batches(max_chunksize=batch_rows)
        finally:
            reader.close()

    def ingest(self, table: str, data: pa.RecordBatchReader, *, temporary: bool = False) -> int:
        # COPY in binary through ADBC: it coerces nothing, so callers send the table's exact types
        # (JSON as the arrow.json extension, UUID through a text staging table).
        self._ensure_live()
        cursor = self.cursor
        self._session_changed |= temporary
        return int(self._call(lambda: cursor.adbc_ingest(table, data, mode="append", temporary=temporary)))

    def ensure_tables(self, tables: Sequence[sa.Table]) -> set[str]:
        return ensure_tables(self, self._dialect, tables)

    def commit(self, *, flush: bool = True) -> None:
        """Commit; a conflict at commit (40001, 40P01, 23505) is a ConflictError, never retried."""
        if not flush:  # this transaction only: the WAL writer flushes it within moments
            self.execute_sql("SET LOCAL synchronous_commit TO off")
        self._call(self._pooled.dbapi_connection.commit, at_commit=True)
        self._open = False

    def rollback(self) -> None:
        if self._broken:
            return  # nothing to roll back on a lost connection: the server already did
        try:
            self._call(self._pooled.dbapi_connection.rollback)
        except DataflowError:
            self._broken = True
            raise
        self._open = False

    def close(self) -> None:
        """Back to the pool rolled back, its session cleaned where a statement may have changed it
        (see ``discard_session``); a broken connection, or one that cannot be cleaned, is discarded
        instead (invalidated: closed and its pool slot freed, with nothing logged at collection)."""
        if self._pooled is None or self._abandoned:
            return  # an abandoned connection is closed by the thread still waiting on it
        if self._cursor is not None:
            with contextlib.suppress(Exception):  # a lost connection may refuse even this
                self._cursor.close()
            self._cursor = None
        if not self._broken and (self._open or self._session_changed):  # after a commit: nothing to end
            dbapi_connection = self._pooled.dbapi_connection
            clean = discard_session if self._session_changed else roll_back
            try:
                self._call(lambda: clean(dbapi_connection))
            except DataflowError:
                self._broken = True
            if self._abandoned:
                return
        pooled, self._pooled = self._pooled, None
        if self._broken:
            pooled.invalidate()  # closes it and gives the slot back: the pool opens a new one when needed
        else:
            pooled.close()


class PostgresBackend:
    """PostgreSQL at one URL (or several hosts, for failover), with a QueuePool of ADBC connections
    checked at checkout: one round trip that also begins the run's transaction."""

    capabilities = CAPABILITIES
    load_rules = PostgresLoadRules()

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        pool_max_overflow: int = 10,
        pool_timeout: float = 30.0,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        statement_timeout: float | None = None,
    ):
        target = parse_postgres_url(url)
        parsed = target.url
        self.safe_url = mask_url(parsed.render_as_string(hide_password=False))
        self._where = target.where
        self.dialect = postgres_dialect(utc_timestamp_binds=True)
        self.sql_reader = PostgresSQLReader()
        self.partitions = PostgresPartitions(self.dialect)
        libpq_url = target.libpq(connect_timeout=connect_timeout, statement_timeout=statement_timeout)
        self._secrets = url_secrets(parsed)
        self._statement_timeout = statement_timeout
        self._connect_timeout = connect_timeout
        self._sessions_checked = False
        # A checkout waits for a new connection (connect_timeout) or for the check's answer.
        limits = [t for t in (connect_timeout, statement_timeout) if t is not None]
        self._checkout_deadline = max(limits) + CLIENT_GRACE if statement_timeout is not None else None

        create = Connector(libpq_url)
        self._pool_limit = pool_size + max(pool_max_overflow, 0)
        self._pool = QueuePool(
            create,
            pool_size=pool_size,
            max_overflow=pool_max_overflow,
            timeout=pool_timeout,
            reset_on_return="rollback",
        )
        self._lost_at = -math.inf  # when a pooled connection was last found lost (time.monotonic)
        # With target_session_attrs every checkout is checked: a server may turn standby at any time.
        always = target.target_session_attrs is not None
        check = checkout_check(target.checkout_check, always=always, lost_at=lambda: self._lost_at)
        sa.event.listen(self._pool, "checkout", check)
        sa.event.listen(self._pool, "checkin", note_return)
        self.connect().close()  # fail now, with a clear message, if the server is not there

    def reflection_dialect(self) -> Any:
        from dataflow_nb.backends.postgres_catalog import reflection_dialect  # Alembic loads with the first model

        return reflection_dialect()

    def connect(self) -> PostgresConnection:
        return PostgresConnection(
            self._checkout(),
            self.safe_url,
            self.dialect,
            statement_timeout=self._statement_timeout,
            replace_lost=self._replace_lost,
        )

    def _replace_lost(self) -> Any:
        """A pooled connection was found lost: every other pooled one is checked at its next
        checkout (a restarted server dropped them all), and a new one is had."""
        self._lost_at = time.monotonic()
        return self._checkout()

    def _checkout(self) -> Any:
        try:
            return call_with_deadline(self._pool.connect, self._checkout_deadline, abandon=return_late)
        except DeadlineExceeded:
            raise DatabaseError(
                f"cannot connect to PostgreSQL {self._where} ({self.safe_url}): no answer within "
                f"{self._checkout_deadline:g} s (the longer of connect_timeout={self._connect_timeout} s and "
                f"statement_timeout={self._statement_timeout} s, plus {CLIENT_GRACE:g} s); the server may be "
                "hung or unreachable"
            ) from None
        except sa.exc.TimeoutError:
            raise DatabaseError(
                f"cannot connect to PostgreSQL {self._where}: all {self._pool.size() + self._pool.overflow()} "
                f"pooled connections are in use (pool_size={self._pool.size()}); raise pool_size or "
                "pool_max_overflow, or finish the runs that hold connections"
            ) from None
        except Exception as exc:
            reason = str(getattr(exc, "orig", None) or exc)
            for secret in self._secrets:
                reason = reason.replace(secret, "***")
            error = DatabaseError(
                f"cannot connect to PostgreSQL {self._where} ({self.safe_url}): {reason.strip()}. "
                "Check that the server runs and that the URL's user, password and database are right."
            )
            error.retryable = True  # nothing was sent: running again is safe
            raise error from None

    def connect_snapshot(self) -> PostgresConnection:
        """REPEATABLE READ: set before the first statement of a transaction of its own
        (the checkout's check began the pooled one, so it is ended first)."""
        connection = self.connect()
        try:
            connection.commit()
            connection.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        except BaseException:
            connection.close()
            raise
        return connection

    def advance_sequence(self, connection: Any, table: sa.Table) -> None:
        """``setval`` past the highest id (rows that arrived with their ids)."""
        sequence = table.c.id.default
        assert isinstance(sequence, sa.Sequence)
        highest = sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0)).scalar_subquery()
        connection.execute(
            compile_statement(
                sa.select(sa.func.setval(sequence.name, sa.func.greatest(highest, sequence.next_value()))), self.dialect
            )
        )

    def bypasses_tenant_scope(self, connection: Any) -> bool:
        """A superuser or BYPASSRLS role: row-level security does not bind it."""
        found = connection.execute_sql("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
        return found is not None and bool(found.column(0)[0].as_py())

    def isolate_tenant_table(self, connection: Any, table: str) -> None:
        isolate_table(connection, table)
        if not self._sessions_checked:  # once per DataFlow: the role is the same for every table
            self._sessions_checked = True
            exposed = exposed_sessions(connection)
            if exposed:
                log.warning(
                    "postgresql %s: the role that runs tenants' workflows may use %s, so one tenant's SQL "
                    "can read another's statements and end its run (every tenant's runs share this role); "
                    "as an administrator, REVOKE them FROM PUBLIC in this database (docs/security.md)",
                    self._where,
                    ", ".join(exposed),
                )

    def protect_bookkeeping_table(self, connection: Any, table: str) -> None:
        protect_bookkeeping_table(connection, table)

    def protect_secret_table(self, connection: Any, table: str) -> None:
        protect_secret_table(connection, table)

    def create_load_job(self, plan: LoadPlan, statements: Statements) -> LoadJob:
        return LoadJob(plan, statements, self.load_rules, self.dialect, self.capabilities)

    def begin_tenant(self, connection: Any, tenant: str, *, known: bool = True) -> None:
        if not known:  # another DataFlow's multi-tenant tables may be here: bind wherever they are
            found = connection.execute_sql(f"SELECT to_regproc('{BEGIN_TENANT_FUNCTION}') IS NOT NULL AS bound")
            if found is None or not found.column(0)[0].as_py():
                return
        connection.execute_sql(BEGIN_TENANT, [tenant])

    def unisolated_tables(self, connection: Any, compiled: CompiledSQL, tables: set[str]) -> set[str]:
        return set()  # row-level security scopes every statement on them

    def refused_sql(self, connection: Any, compiled: CompiledSQL) -> str | None:
        return None  # the read-only savepoint, row-level security and the login role's grants refuse it

    def execute_read_only(self, connection: Any, compiled: CompiledSQL) -> pa.Table | None:
        """PostgreSQL itself refuses the writes: the statement runs in a read-only savepoint.

        ``ROLLBACK TO SAVEPOINT`` restores the transaction's read-write mode afterwards, so
        later nodes of the run still write.
        """
        connection.execute_sql("SAVEPOINT dataflow_nb_read_only")
        connection.execute_sql("SET LOCAL transaction_read_only = on")
        try:
            result = connection.execute(compiled)
        except DatabaseError as exc:  # the run fails: ADBC allows nothing but a rollback now
            if getattr(exc.__cause__, "sqlstate", None) == READ_ONLY_SQLSTATE:
                raise ReadOnlyError(f"postgresql refused a write in read-only SQL: {exc}") from exc
            raise
        connection.execute_sql("ROLLBACK TO SAVEPOINT dataflow_nb_read_only")
        connection.execute_sql("RELEASE SAVEPOINT dataflow_nb_read_only")
        return result

    def has_spare_connection(self) -> bool:
        """Fewer connections are checked out than the pool may hold (pool_size + pool_max_overflow)."""
        return bool(self._pool.checkedout() < self._pool_limit)

    def identity(self) -> str:
        """The cluster's system identifier, the database and the schema in use, asked of the server:
        two URLs naming the same database (host alias, IP, another port forward) agree.
        """
        row = self._ask(
            "SELECT (SELECT system_identifier FROM pg_control_system())::text, current_database(), current_schema()"
        )
        return "postgresql:" + "/".join(str(v) for v in row.to_pylist()[0].values())

    def _ask(self, sql: str) -> pa.Table:
        """One query on a connection of its own, for what is asked of the server once."""
        connection = self.connect()
        try:
            rows = connection.execute_sql(sql)
        finally:
            connection.close()
        assert rows is not None
        return rows

    @functools.cached_property
    def _role(self) -> str:
        return str(self._ask("SELECT current_user::text AS role").column(0)[0].as_py())

    def role(self) -> str:
        """``current_user``, asked of the server once: it decides the privileges (the URL may name none)."""
        return self._role

    @functools.cached_property
    def _varying_functions(self) -> frozenset[str]:
        rows = self._ask("SELECT DISTINCT proname::text FROM pg_proc WHERE provolatile <> 'i'")
        return frozenset(str(name) for name in rows.column(0).to_pylist()) | SQL_VALUE_FUNCTIONS

    def varying_functions(self) -> frozenset[str]:
        """Functions PostgreSQL does not mark IMMUTABLE (``pg_proc.provolatile``), asked once."""
        return self._varying_functions

    def close(self) -> None:
        self._pool.dispose()
