"""SQLQueryNode: one SQL statement of your own, with named parameters, in the run's transaction.

``{"sql": "SELECT * FROM flights WHERE dep_delay > :min", "params": {"min": 3}}`` returns a
frame. Values are always bound, never formatted into the SQL; a second statement is refused
before anything runs, so a stray ``; DROP TABLE ...`` never reaches the database
(``query/user_sql.py``, with the database's own parser).

Which database: ``"db"`` names a DataFlow (its ``name``) or is the DataFlow itself; without
it, the one DataFlow that is open. With several open and no ``"db"``, the node refuses to guess.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataflow_nb.backends.base import CompiledSQL, compile_statement
from dataflow_nb.cache.results import CACHE_PARAMETERS
from dataflow_nb.exceptions import ReadOnlyError, TenantError, ValidationError
from dataflow_nb.frames import Frame, to_frame
from dataflow_nb.monitor.runs import RUNS_TABLE
from dataflow_nb.nodes.base import Node, check_parameter_names
from dataflow_nb.nodes.live import live_databases
from dataflow_nb.protocols import RunDatabase, Written
from dataflow_nb.query.builder import QueryBuilder
from dataflow_nb.query.user_sql import NODE, bound_text, check_statement, check_values, prepare
from dataflow_nb.security.audit import AUDIT_KEY_TABLE, AUDIT_TABLE

if TYPE_CHECKING:
    from dataflow_nb.protocols import Run

log = logging.getLogger("dataflow_nb")


def resolve_database(choice: Any) -> RunDatabase:
    """The DataFlow a SQLQueryNode runs on: ``db`` by object or name, else the only one open."""
    if isinstance(choice, RunDatabase):
        return choice
    live = live_databases()
    if choice is not None and not isinstance(choice, str):
        raise ValidationError(f"{NODE}: db takes a DataFlow or its name, got {choice!r}")
    matches = [d for d in live if choice is None or d.name == choice]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(f"{d.name!r} ({d.backend.safe_url})" for d in live) or "none"
    if choice is not None:
        raise ValidationError(f"{NODE}: no open DataFlow is named {choice!r}; open ones: {listed}")
    if not live:
        raise ValidationError(f"{NODE}: no DataFlow is open; create one with DataFlow(...) first")
    raise ValidationError(
        f"{NODE}: {len(live)} DataFlow objects are open ({listed}); say which with "
        "params {'db': '<name>'} or {'db': db}"
    )


class SQLQueryNode(Node):
    """One SQL statement with named parameters, run in the run's transaction; returns a frame."""

    node_type = NODE
    parameters = ("sql", "params", "db", "unscoped", "allow_writes", *CACHE_PARAMETERS)
    cacheable = True

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        check_parameter_names(cls.node_type, params, cls.parameters)
        for flag in ("unscoped", "allow_writes"):
            if not isinstance(params.get(flag, False), bool):
                raise ValidationError(f"{NODE}: {flag} takes True or False, got {params[flag]!r}")
        db = resolve_database(params.get("db"))  # an ambiguous database fails at build time, not mid-run
        if isinstance(params.get("sql"), QueryBuilder):
            cls.compiled(db, params)
            return
        if "sql" not in params and not complete:
            return  # it may arrive through a connection
        if params.get("params") is None and not complete:
            prepare(params.get("sql"), db.backend.sql_reader)
            return  # the values may arrive through a connection; ``IN :ids`` needs them to compile
        cls.compiled(db, params)

    @staticmethod
    def compiled(db: RunDatabase, params: Mapping[str, Any]) -> CompiledSQL:
        """The statement, checked by the database's own parser and compiled with its values bound."""
        if isinstance(params.get("sql"), QueryBuilder):
            return compiled_builder(db, params)
        prepared = prepare(params.get("sql"), db.backend.sql_reader)
        values = params.get("params")
        values = {} if values is None else values
        check_values(prepared, values)
        compiled = compile_statement(bound_text(prepared, values), db.backend.dialect)
        binds_tenants = db.backend.capabilities.supports_row_level_security
        returns_rows = check_statement(compiled, db.backend.sql_reader, binds_tenants=binds_tenants)
        # What it reads is unknown (views, functions): a cached result depends on every write.
        writes: frozenset[str] | None = frozenset() if prepared.read_only else None
        # returns_rows None: the driver (PostgreSQL's) tells by itself whether rows came back.
        return dataclasses.replace(compiled, returns_rows=returns_rows is not False, reads=None, writes=writes)

    def database(self, params: Mapping[str, Any]) -> RunDatabase:
        return resolve_database(params.get("db"))

    def databases(self, params: Mapping[str, Any]) -> tuple[RunDatabase, ...]:
        return (self.database(params),)

    def writes_to(self, params: Mapping[str, Any]) -> RunDatabase | None:
        """Its database with ``allow_writes=True`` (SQL without it is run read-only where the
        DataFlow is read-only or ``security_enabled``)."""
        return self.database(params) if params.get("allow_writes") else None

    def written(self, params: Mapping[str, Any], output: Any) -> Written | None:
        """Rows it returned (else unknown), and a digest of the SQL with its values."""
        rows = len(output) if len(output.columns) else None
        return Written("sql", rows, digest_of=[params["sql"], params.get("params")])

    def sensitive_columns(self, params: Mapping[str, Any]) -> set[str]:
        """Any model's sensitive fields of its database, by name: SQL may return them under it."""
        models = self.database(params).models.values()
        return {n for m in models for n, f in m.fields.items() if f.sensitive}

    def database_written(self, params: Mapping[str, Any]) -> RunDatabase | None:
        """Its database, unless the SQL is known before the run and only reads (a query builder,
        or SQL the read-only allow-list accepts); SQL that arrives through a connection may write."""
        sql = params.get("sql")
        if isinstance(sql, QueryBuilder):
            return None
        db = self.database(params)
        if isinstance(sql, str) and not params.get("allow_writes") and prepare(sql, db.backend.sql_reader).read_only:
            return None
        return db

    def sql_for(self, ctx: Run, params: Mapping[str, Any]) -> CompiledSQL:
        """The statement ``run`` would execute, compiled (what ``dataflow_nb.explain`` shows)."""
        check_parameter_names(self.node_type, params, self.parameters)
        return self.compiled(self.database(params), params)

    def run(self, ctx: Run, params: dict[str, Any]) -> Frame:
        db = self.database(params)
        compiled = self.sql_for(ctx, params)
        cacheable = True
        if params.get("cache", True) and db.result_cache is not None and not isinstance(params["sql"], QueryBuilder):
            # random(), now(), nextval(): another answer each time
            cacheable = not db.backend.sql_reader.calls(compiled.sql) & db.backend.varying_functions()
        if ctx.scope.tenant_id:
            check_tenant_scope(ctx, db, compiled, unscoped=params.get("unscoped", False))
        allow_writes = params.get("allow_writes", False)
        if allow_writes and db.read_only:
            raise ReadOnlyError(
                f"{NODE} {ctx.node_id!r}: allow_writes=True, but DataFlow {db.name!r} is read-only "
                "(DataFlow(read_only=True)); nothing was run"
            )
        read_only = db.read_only or (db.security_enabled and not allow_writes)
        try:
            result = ctx.execute(db, compiled, read_only=read_only, cacheable=cacheable)
        except ReadOnlyError as exc:
            why = "the DataFlow is read-only" if db.read_only else "security_enabled=True makes SQL read-only"
            raise ReadOnlyError(
                f"{NODE} {ctx.node_id!r}: {why}, and this statement is refused ({exc}); nothing was changed. "
                + ("" if db.read_only else "Pass allow_writes=True to the node if it should write.")
            ) from exc
        return to_frame(pa.table({}) if result is None else result, {}, db.frame)


def compiled_builder(db: RunDatabase, params: Mapping[str, Any]) -> CompiledSQL:
    """A query builder's SELECT compiled for the node's database, whatever dialect it was made for."""
    if params.get("params") is not None:
        raise ValidationError(f"{NODE}: a query builder binds its own values; leave out params")
    compiled = compile_statement(params["sql"].select_statement(), db.backend.dialect)
    return dataclasses.replace(compiled, returns_rows=True)


def bookkeeping_tables() -> set[str]:
    """dataflow_nb's own tables that name every tenant's runs (the audit log and its key, the run
    history): raw SQL in a tenant's run may not reach them where the database cannot scope it."""
    return {AUDIT_TABLE, AUDIT_KEY_TABLE, RUNS_TABLE}


def check_tenant_scope(ctx: Run, db: RunDatabase, compiled: CompiledSQL, *, unscoped: bool) -> None:
    """Raw SQL in a tenant's run must not reach other tenants' rows.

    Where the database enforces tenancy itself (PostgreSQL row-level security) nothing is left
    to check. Elsewhere a statement touching a multi-tenant table, or calling a table function
    off the allow-list (DuckDB's ``pragma_storage_info`` shows any column's min and max), is
    refused, unless the node says ``unscoped=True``, which is logged as a warning each time.
    """
    tenant_tables = {m.table_name for m in db.models.values() if m.multi_tenant} | bookkeeping_tables()
    # Whichever DataFlow runs it: the backend also finds the database's own tenant tables.
    exposed = db.backend.unisolated_tables(ctx.connection(db), compiled, tenant_tables)
    if unscoped:
        log.warning(
            "%s %r runs unscoped in run %s of tenant %r%s",
            NODE,
            ctx.node_id,
            ctx.run_id,
            ctx.scope.tenant_id,
            f": it reads or writes every tenant's rows of {sorted(exposed)}" if exposed else "",
        )
        return
    if exposed:
        raise TenantError(
            f"{NODE} {ctx.node_id!r}: the SQL touches multi-tenant table(s) {sorted(exposed)} in tenant "
            f"{ctx.scope.tenant_id!r}'s run, and {db.backend.capabilities.name} cannot scope raw SQL to one "
            "tenant. Use the generated nodes (they are scoped), or pass unscoped=True to the node to read "
            "every tenant's rows on purpose (it is logged)."
        )
    refused = db.backend.refused_sql(ctx.connection(db), compiled)
    if refused is not None:
        raise TenantError(
            f"{NODE} {ctx.node_id!r}: in tenant {ctx.scope.tenant_id!r}'s run, {refused}; nothing was run. "
            "Use the generated nodes, or unscoped=True on the node to run it on purpose (it is logged)."
        )
