"""SQLQueryNode: one SQL statement of your own, with named parameters, in the run's transaction.

``{"sql": "SELECT * FROM flights WHERE dep_delay > :min", "params": {"min": 3}}`` returns a
frame. Values are always bound (``sqlalchemy.text`` compiled per dialect to ``$n``), never
formatted into the SQL; a second statement is refused before anything runs, so a stray
``; DROP TABLE ...`` never reaches the database.

Which database: ``"db"`` names a DataFlow (its ``name``) or is the DataFlow itself; without
it, the one DataFlow that exists. With several and no ``"db"``, the node refuses to guess.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from dataflow_nb.backends.base import CompiledSQL, compile_statement
from dataflow_nb.cache.results import CACHE_PARAMETERS
from dataflow_nb.exceptions import ReadOnlyError, TenantError, ValidationError
from dataflow_nb.frames import to_frame, uuid_text
from dataflow_nb.model.types import field_type_for
from dataflow_nb.nodes.base import Node, check_parameter_names
from dataflow_nb.registry import BUILTIN_NODES, live_databases

if TYPE_CHECKING:
    from dataflow_nb.dataflow import DataFlow
    from dataflow_nb.workflow.context import RunContext

NODE = "SQLQueryNode"
log = logging.getLogger("dataflow_nb")
# Literals and comments, where ';', ':name' and '$1' are text, not SQL. Dollar tags cannot
# start with a digit, so "$1" is never mistaken for one.
_QUOTED = re.compile(
    r"""
      --[^\n]*
    | /\*.*?\*/
    | (?<![\w$])[eE]'(?:[^'\\]|\\.|'')*'
    | '(?:[^']|'')*'
    | "(?:[^"]|"")*"
    | \$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$
    | (?P<open>'|"|/\*|\$(?:[A-Za-z_]\w*)?\$)
    """,
    re.S | re.X,
)
_NAMED = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")  # how sqlalchemy.text finds :name
_POSITIONAL = re.compile(r"\$\d+")
_TRANSACTION = {"begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release"}
# A read-only query starts like one and names nothing that writes or locks; one the result
# cache may keep also calls no volatile function (another answer each time). Any other
# statement counts as a write of anything: the run's commit invalidates the whole database.
_QUERY_START = {"select", "with", "values", "table"}
_WRITES = re.compile(
    r"\b(insert|update|delete|merge|truncate|into|copy|call|do|lock|for|nextval|setval|setseed)\b", re.I
)
_VOLATILE = re.compile(
    r"""\b(random|now|clock_timestamp|statement_timestamp|transaction_timestamp|timeofday|current_timestamp
    |current_time|current_date|localtime|localtimestamp|currval|lastval|gen_random_uuid|uuid\w*|pg_\w+|txid_\w+)\b""",
    re.I | re.X,
)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """User SQL made ready for ``sqlalchemy.text``: colons in literals escaped, binds named."""

    text: str
    names: tuple[str, ...]
    returning: bool
    read_only: bool
    cacheable: bool  # read-only and deterministic


def prepare(sql: Any) -> Prepared:
    """Check that ``sql`` is one statement with named parameters only."""
    if not isinstance(sql, str) or not sql.strip():
        raise ValidationError(f"{NODE}: sql takes the text of one SQL statement, got {sql!r}")
    code, text, last = [], [], 0
    for match in _QUOTED.finditer(sql):
        if match.group("open"):
            raise ValidationError(
                f"{NODE}: the SQL has an unterminated {match.group('open')!r} at character {match.start()}"
            )
        code.append(sql[last : match.start()])
        text.append(sql[last : match.start()])
        code.append(" ")
        text.append(match.group(0).replace(":", "\\:"))  # sqlalchemy.text reads \: as a plain colon
        last = match.end()
    code.append(sql[last:])
    text.append(sql[last:])
    masked = "".join(code)
    statements = [s for s in masked.split(";") if s.strip()]
    if len(statements) != 1:
        raise ValidationError(
            f"{NODE}: runs one statement, found {len(statements)}; "
            "use one SQLQueryNode per statement (they share the run's transaction)"
        )
    first = statements[0].split(None, 1)[0].lower()
    if first in _TRANSACTION:
        raise ValidationError(f"{NODE}: {first.upper()} is refused: the run owns the transaction")
    positional = _POSITIONAL.search(masked)
    if positional:
        raise ValidationError(
            f"{NODE}: positional parameter {positional.group(0)} is not supported; "
            "name it, like 'WHERE x > :min' with params={'min': 3}"
        )
    names = tuple(dict.fromkeys(_NAMED.findall(masked)))
    read_only = first in _QUERY_START and _WRITES.search(masked) is None
    cacheable = read_only and _VOLATILE.search(masked) is None
    returning = re.search(r"\breturning\b", masked, re.I) is not None
    return Prepared("".join(text), names, returning, read_only, cacheable)


def _bind_type(name: str, value: Any) -> tuple[Any, sa.types.TypeEngine[Any]]:
    """A parameter value as drivers bind it, with the SQL type both databases agree on."""
    for checked in (int, Decimal, dt.datetime):  # checked like model values: range, scale, UTC
        if isinstance(value, checked) and not isinstance(value, bool):
            ftype = field_type_for(checked)
            assert ftype is not None
            try:
                return ftype.to_wire(value), ftype.sa_type()
            except ValueError as exc:
                raise ValidationError(f"{NODE}: parameter {name!r}: {value!r} {exc}") from None
    if isinstance(value, uuid.UUID):
        return str(value), sa.Uuid(as_uuid=False)
    simple: list[tuple[type, sa.types.TypeEngine[Any]]] = [
        (bool, sa.Boolean()),
        (float, sa.Double()),
        (str, sa.String()),
        (bytes, sa.LargeBinary()),
        (dt.date, sa.Date()),
        (dt.time, sa.Time()),
    ]
    for kind, sa_type in simple:
        if isinstance(value, kind):
            return value, sa_type
    raise ValidationError(
        f"{NODE}: parameter {name!r} has type {type(value).__name__}; give None, bool, int, float, str, "
        "bytes, Decimal, date, datetime, time, UUID or a list of those (pass JSON as a json.dumps string)"
    )


def _bindparam(name: str, value: Any) -> sa.BindParameter[Any]:
    if isinstance(value, list | tuple):  # ``x IN :ids``: one parameter per item
        if not value:
            raise ValidationError(f"{NODE}: parameter {name!r} is an empty list; IN () is not valid SQL")
        typed = [_bind_type(name, v) for v in value if v is not None]
        sa_type = typed[0][1] if typed else sa.types.NullType()
        items = [None if v is None else _bind_type(name, v)[0] for v in value]
        return sa.bindparam(name, items, type_=sa_type, expanding=True)
    if value is None:
        return sa.bindparam(name, None, type_=sa.types.NullType())
    wired, sa_type = _bind_type(name, value)
    return sa.bindparam(name, wired, type_=sa_type)


def resolve_database(choice: Any) -> DataFlow:
    """The DataFlow a SQLQueryNode runs on: ``db`` by object or name, else the only one open."""
    from dataflow_nb.dataflow import DataFlow

    if isinstance(choice, DataFlow):
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


def _numeric(field: pa.Field, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """PostgreSQL numeric arrives as text: a decimal of its declared (or widest needed) scale."""
    typmod = int((field.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
    if typmod >= 4:
        precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
        return pc.cast(column, pa.decimal128(precision, scale)) if precision <= 38 else column
    texts = [t for t in column.to_pylist() if t is not None]
    if any(not re.fullmatch(r"-?\d+(\.\d+)?", t) for t in texts):
        return column  # NaN or Infinity: keep the text rather than lose them
    scale = max((len(t.partition(".")[2]) for t in texts), default=0)
    digits = max((len(t.lstrip("-").partition(".")[0]) for t in texts), default=1)
    # DuckDB types such results DECIMAL(38, s) (its sum of BIGINT is DECIMAL(38, 0)): do the same.
    return pc.cast(column, pa.decimal128(38, scale)) if digits + scale <= 38 else column


def normalize_result(table: pa.Table) -> pa.Table:
    """Driver differences evened out: numeric as decimal, UUID and JSON as text, UTC named UTC."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = column.type
        if hasattr(kind, "storage_type"):  # an extension type: PostgreSQL's numeric, uuid, json
            column = pa.chunked_array([chunk.storage for chunk in column.chunks], type=kind.storage_type)
            if pa.types.is_fixed_size_binary(column.type):
                column = uuid_text(column)
            elif (field.metadata or {}).get(b"POSTGRESQL:type") == b"numeric":
                column = _numeric(field, column)
        elif pa.types.is_timestamp(kind) and kind.tz in ("Etc/UTC", "UTC", "+00:00"):
            utc = pa.timestamp(kind.unit, "UTC")
            column = pa.chunked_array([chunk.view(utc) for chunk in column.chunks], type=utc)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


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
        resolve_database(params.get("db"))  # an ambiguous database fails at build time, not mid-run
        if "sql" not in params and not complete:
            return  # it may arrive through a connection
        prepared = prepare(params.get("sql"))
        values = params.get("params")
        if values is None and not complete:
            return
        values = {} if values is None else values
        if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
            raise ValidationError(f"{NODE}: params takes a dict of named values like {{'min': 3}}, got {values!r}")
        problems = []
        missing = [n for n in prepared.names if n not in values]
        if missing:
            problems.append(f"missing {missing}")
        unused = [n for n in values if n not in prepared.names]
        if unused:
            problems.append(f"not in the SQL {unused}")
        if problems:
            raise ValidationError(
                f"{NODE}: the SQL names parameters {list(prepared.names)} (as :name); " + "; ".join(problems)
            )
        for name in prepared.names:
            _bindparam(name, values[name])

    def database(self, params: Mapping[str, Any]) -> DataFlow:
        return resolve_database(params.get("db"))

    def sql_for(self, ctx: RunContext, params: Mapping[str, Any]) -> CompiledSQL:
        """The statement ``run`` would execute, compiled (what ``dataflow_nb.explain`` shows)."""
        self.check_params(params, complete=True)
        prepared = prepare(params["sql"])
        values = params.get("params") or {}
        clause = sa.text(prepared.text).bindparams(*(_bindparam(n, values[n]) for n in prepared.names))
        db = self.database(params)
        compiled = compile_statement(clause, db.backend.dialect)
        returns_rows = True  # PostgreSQL's driver tells by itself whether rows came back
        if db.backend.capabilities.name == "duckdb":
            returns_rows = _check_with_duckdb(compiled, prepared)
        # What it reads is unknown (views, functions): a cached result depends on every write.
        writes: frozenset[str] | None = frozenset() if prepared.read_only else None
        return dataclasses.replace(compiled, returns_rows=returns_rows, reads=None, writes=writes)

    def run(self, ctx: RunContext, params: dict[str, Any]) -> Any:
        db = self.database(params)
        if not prepare(params["sql"]).cacheable:
            ctx.cache_policy = None  # a volatile query gives another answer each time
        compiled = self.sql_for(ctx, params)
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
            result = ctx.execute(db, compiled, read_only=read_only)
        except ReadOnlyError as exc:
            why = "the DataFlow is read-only" if db.read_only else "security_enabled=True makes SQL read-only"
            raise ReadOnlyError(
                f"{NODE} {ctx.node_id!r}: {why}, and this statement writes ({exc}); nothing was changed. "
                + ("" if db.read_only else "Pass allow_writes=True to the node if it should write.")
            ) from exc
        return to_frame(pa.table({}) if result is None else normalize_result(result), {}, db.frame)


def check_tenant_scope(ctx: RunContext, db: DataFlow, compiled: CompiledSQL, *, unscoped: bool) -> None:
    """Raw SQL in a tenant's run must not reach other tenants' rows.

    Where the database enforces tenancy itself (PostgreSQL row-level security) nothing is left
    to check. Elsewhere a statement touching a multi-tenant table is refused, unless the node
    says ``unscoped=True``, which is logged as a warning each time.
    """
    tenant_tables = {m.table_name for m in db.models.values() if m.multi_tenant}
    if not tenant_tables:
        return
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


def _check_with_duckdb(compiled: CompiledSQL, prepared: Prepared) -> bool:
    """DuckDB's own parser has the last word on DuckDB: one statement, our parameters only.

    Returns whether the statement gives rows: DuckDB answers an INSERT without RETURNING with
    a ``Count`` row that PostgreSQL does not send, so only queries and RETURNING are read.
    """
    import duckdb

    try:
        statements = duckdb.extract_statements(compiled.sql)
    except duckdb.Error as exc:
        raise ValidationError(f"{NODE}: DuckDB cannot parse the SQL: {exc}") from None
    if len(statements) != 1:
        raise ValidationError(f"{NODE}: runs one statement; DuckDB found {len(statements)}")
    if len(statements[0].named_parameters) != len(compiled.names):
        raise ValidationError(f"{NODE}: the SQL uses a positional parameter (? or $n); name it, like :min")
    kind = statements[0].type
    queries = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN, duckdb.StatementType.PRAGMA)
    return kind in queries or kind == duckdb.StatementType.CALL or prepared.returning


BUILTIN_NODES[NODE] = SQLQueryNode
