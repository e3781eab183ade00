"""DataFlow: a database, its models and their generated nodes."""

from __future__ import annotations

import functools
import html
import itertools
import logging
import os
import sys
import weakref
from collections.abc import Callable
from contextlib import closing
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pyarrow as pa

from dataflow_nb.backends import open_backend, open_replicas
from dataflow_nb.backends.base import Backend, Connection
from dataflow_nb.cache.redis import mask_url
from dataflow_nb.cache.results import ResultCache, open_result_cache
from dataflow_nb.exceptions import DataflowError, ReadOnlyError, SchemaError, ValidationError
from dataflow_nb.frames import Frame, JsonMode, check_json_mode, to_frame
from dataflow_nb.model import SAMPLE_ROWS
from dataflow_nb.model.spec import ModelSpec, spec_from_class
from dataflow_nb.monitor import Monitor
from dataflow_nb.monitor.runs import DEFAULT_KEEP, RunHistory
from dataflow_nb.nodes.describe import NodeTable, model_doc
from dataflow_nb.nodes.generate import make_nodes
from dataflow_nb.nodes.model_node import ModelNode
from dataflow_nb.nodes.write import make_restore_node
from dataflow_nb.registry import register_database, unregister_database
from dataflow_nb.workflow.subscribers import run_observers

if TYPE_CHECKING:
    from dataflow_nb.backends.replicas import Replicas
    from dataflow_nb.cache import QueryCache
    from dataflow_nb.transfer import CopyReport

log = logging.getLogger("dataflow_nb")
T = TypeVar("T", bound=type)
_counter = itertools.count(1)
_PLANNED: tuple[str, ...] = ()  # options refused until built: an ignored option misleads
_PLAN_COLUMNS = ("model", "table", "operation", "target", "safe", "reason", "ddl")


class DataFlow:
    """A database with models; each model gets a table and generated workflow nodes.

    Args:
        url: ``None`` (``DATABASE_URL`` or an in-memory DuckDB), ``duckdb:///path.duckdb`` or
            ``postgresql://user@host:5432/db``.
        database_url: the seed's spelling of ``url``.
        frame: ``"polars"`` (default) or ``"pandas"``: what every node returns.
        json: how polars frames give ``dict``/``list`` fields: ``"text"`` (default; a String of
            JSON text) or ``"decode"`` (Struct/List columns); a node's ``json`` parameter overrides it.
        pool_size: PostgreSQL connections kept open.
        pool_max_overflow: extra PostgreSQL connections allowed under load.
        pool_timeout: seconds to wait for a free connection before failing.
        connect_timeout: seconds to wait for a PostgreSQL server to accept a connection (default
            10; None: libpq's default; a ``connect_timeout`` in the URL wins). DuckDB opens a
            file and has nothing to wait for.
        statement_timeout: seconds a statement may run before it is cancelled and the run fails
            (default None: no limit). PostgreSQL enforces it, and the client gives up on a server
            that does not answer at all one second later; DuckDB's statement is interrupted.
        health_timeout: seconds ``get_health_status()`` waits for the database before it
            answers ``"unhealthy"`` (default 2).
        name: how workflows qualify this database's nodes when two DataFlows share a model name.
        multi_tenant: give every model a ``tenant_id``; runs must then name their tenant.
        monitoring: record every statement and run; see ``get_monitor()``.
        metrics_export: ``"prometheus"`` to keep Prometheus metrics (needs ``monitoring=True``).
        slow_query_threshold: seconds above which a statement goes into the slow-query log.
        security_enabled: audit every write in the run's own transaction (``audit_log()``), mask
            sensitive fields wherever they are shown, and keep SQLQueryNode read-only unless the
            node says ``allow_writes=True``. See docs/security.md.
        read_only: refuse every write before any SQL runs (for exploring a database safely).
        allow_files: on DuckDB, let SQL of a ``security_enabled`` or ``read_only`` session read files
            (``read_csv``, ``read_parquet``...). Such sessions and multi-tenant ones otherwise reach
            no file and no other database (DuckDB's ``enable_external_access``); a plain DataFlow
            does. Not with ``multi_tenant``: a tenant's SQL never reads files. See docs/security.md.
        cache_enabled: keep the results of Read, List, Count and read-only SQLQueryNode
            statements, invalidated after every committed write (see docs/cache.md).
        cache_url: ``"memory://"`` (default: an in-process LRU bounded by bytes) or
            ``"redis://host:6379/0"`` to share entries and invalidations between processes.
        cache_ttl: seconds an entry lives; it also bounds how long a write made outside
            dataflow_nb can go unseen.
        run_history: record every run in the database itself (``runs()``, ``run()``, the
            widgets and ``dataflow-nb runs``); ``False`` records nothing (what others recorded
            can still be read). A read-only DataFlow never records.
        keep_runs: how many of the newest runs the history keeps; older ones are pruned.
        replicas: URLs of PostgreSQL streaming standbys: a run whose nodes only read goes to one
            of them, a run that writes goes to the primary (see docs/scale.md). DuckDB refuses it.
        consistency: ``"read_your_writes"`` (default: after this DataFlow commits, its reads go
            to the primary until a replica has replayed that commit) or ``"eventual"``.
        max_replica_lag: seconds a replica may lag behind the primary before it is skipped
            (default 30).

    Examples:
        >>> db = DataFlow()
        >>> @db.model
        ... class Note:
        ...     text: str
        >>> len(db.nodes), sorted(db.nodes)[:2]
        (11, ['NoteBulkCreateNode', 'NoteBulkDeleteNode'])
        >>> db.close()
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        database_url: str | None = None,
        frame: Literal["polars", "pandas"] = "polars",
        json: JsonMode = "text",
        pool_size: int = 5,
        pool_max_overflow: int = 10,
        pool_timeout: float = 30.0,
        connect_timeout: float | None = 10.0,
        statement_timeout: float | None = None,
        health_timeout: float = 2.0,
        name: str | None = None,
        multi_tenant: bool = False,
        monitoring: bool = False,
        metrics_export: str | None = None,
        slow_query_threshold: float = 1.0,
        security_enabled: bool = False,
        read_only: bool = False,
        allow_files: bool = False,
        cache_enabled: bool = False,
        cache_url: str | None = None,
        cache_ttl: float = 300,
        run_history: bool = True,
        keep_runs: int = DEFAULT_KEEP,
        replicas: list[str] | tuple[str, ...] | None = None,
        consistency: Literal["read_your_writes", "eventual"] = "read_your_writes",
        max_replica_lag: float = 30.0,
        **planned: Any,
    ):
        unknown = set(planned) - set(_PLANNED)
        if unknown:
            raise TypeError(f"DataFlow() got unknown option(s) {sorted(unknown)}")
        enabled = sorted(k for k, v in planned.items() if v)
        if enabled:
            raise DataflowError(
                f"DataFlow option(s) {enabled} are not available in this version of dataflow_nb; "
                "remove them (they are planned, and an option that silently does nothing would mislead)"
            )
        if frame not in ("polars", "pandas"):
            raise DataflowError(f"frame={frame!r}: choose 'polars' or 'pandas'")
        if url and database_url and url != database_url:
            raise DataflowError("give the database URL once: url or database_url, not both")
        self._url = url or database_url or os.environ.get("DATABASE_URL") or None  # may hold a password
        if metrics_export and not monitoring:
            raise DataflowError(f"metrics_export={metrics_export!r} needs monitoring=True")
        if allow_files and multi_tenant:
            raise DataflowError(
                "allow_files=True lets SQL read the files of this machine, and a multi-tenant DataFlow runs "
                "its tenants' SQL: open a separate DataFlow without multi_tenant to read files"
            )
        if cache_url is not None and not cache_enabled:
            raise DataflowError(f"cache_url={mask_url(str(cache_url))!r} needs cache_enabled=True")
        for option, value in (
            ("connect_timeout", connect_timeout),
            ("statement_timeout", statement_timeout),
            ("health_timeout", health_timeout),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise DataflowError(f"{option}={value!r}: give a number of seconds > 0, e.g. 5 (or None for no limit)")
        self.health_timeout = float(health_timeout)
        self.frame = frame
        self.json: JsonMode = check_json_mode("DataFlow", json)
        self.multi_tenant = multi_tenant
        self.security_enabled = security_enabled
        self.read_only = read_only
        self.name = name or f"db{next(_counter)}"
        self.models: dict[str, ModelSpec] = {}
        self.nodes: dict[str, type[ModelNode]] = NodeTable()  # a table of models x nodes in a notebook
        self._pending: dict[str, ModelSpec] = {}  # changed models waiting for migrate()
        connecting = {
            "pool_size": pool_size,
            "pool_max_overflow": pool_max_overflow,
            "pool_timeout": pool_timeout,
            "connect_timeout": connect_timeout,
            "statement_timeout": statement_timeout,
        }
        self.backend: Backend = open_backend(
            self._url, files=allow_files or not (multi_tenant or security_enabled or read_only), **connecting
        )
        self.url = None if self._url is None else self.backend.safe_url
        """The database URL with any password masked (``None`` for the default in-memory DuckDB)."""
        self.replicas: Replicas | None = None
        """Read replicas (``replicas=[...]``): where read-only runs go; None without them."""
        if replicas:
            try:
                self.replicas = open_replicas(
                    replicas, self.backend, consistency=consistency, max_lag=max_replica_lag, **connecting
                )
            except DataflowError:
                self.backend.close()
                raise
        try:
            self.history = RunHistory(self.backend, keep=keep_runs, record=run_history and not read_only)
        except DataflowError:
            self.backend.close()
            raise
        self.result_cache: ResultCache | None = None
        if cache_enabled:
            try:
                self.result_cache = open_result_cache(self, cache_url or "memory://", cache_ttl)
            except DataflowError:
                self.backend.close()
                raise
        self.monitor: Monitor | None = None
        self._health_monitor: Monitor | None = None
        if monitoring:
            try:
                self.monitor = Monitor(
                    database=self.backend.safe_url,
                    slow_query_threshold=slow_query_threshold,
                    metrics_export=metrics_export,
                    ping=_weak_ping(self),
                    cache=None if self.result_cache is None else self.result_cache.cache,
                    health_timeout=self.health_timeout,
                    replica_health=self._replica_health(),
                )
            except DataflowError:
                if self.result_cache is not None:
                    self.result_cache.cache.close()
                self.backend.close()
                raise
        # The audit's digest key (security/audit.py); read-only: never writes the audit log.
        self.audit_key = self._create_audit_table() if security_enabled and not read_only else b""
        self.observers = run_observers(self)  # what follows its runs: cache, monitor, audit (once, not per run)
        register_database(self)
        # Close the connections when a re-run cell drops the last reference, as close() would.
        self._finalizer = weakref.finalize(self, _close_backends, self.backend, self.replicas)

    def model(self, cls: T) -> T:
        """Class decorator: create or migrate the model's table and generate its nodes.

        Re-running the decorated class unchanged is a no-op that keeps every row. A changed class
        is compared with the live table: safe changes (a new nullable column or one with a
        default, a new index) are applied and logged; changes that could lose data or fail on
        existing rows raise ``SchemaError`` with the plan, and wait for ``migrate()``.
        """
        # The caller's locals resolve string annotations of classes defined inside functions.
        spec = spec_from_class(cls, localns=dict(sys._getframe(1).f_locals), **self._spec_options())
        previous = self.models.get(spec.name)
        if previous is None or previous.signature() != spec.signature():
            self._ensure_table(spec)
        self._register(spec)
        cls.__dataflow_model__ = spec  # type: ignore[attr-defined]
        own = cls.__dict__.get("__dataflow_doc__", cls.__doc__)  # the class's own docstring, kept over re-runs
        cls.__dataflow_doc__ = own  # type: ignore[attr-defined]
        cls.__doc__ = model_doc(own, spec, [n for n, node in self.nodes.items() if node.model is spec])
        return cls

    def _spec_options(self) -> dict[str, Any]:
        return {
            "multi_tenant": self.multi_tenant,
            "max_identifier_length": self.backend.capabilities.max_identifier_length,
        }

    def _adopt(self, spec: ModelSpec) -> None:
        """Take another DataFlow's model as it is (``copy_to``): its table made or checked, its nodes."""
        if self.models.get(spec.name) is None or self.models[spec.name].signature() != spec.signature():
            self._ensure_table(spec)
        self._register(spec)

    def _register(self, spec: ModelSpec) -> None:
        self.models[spec.name] = spec
        self._pending.pop(spec.name, None)
        self.nodes.update(make_nodes(self, spec))
        if spec.soft_delete:
            self.nodes.update(make_restore_node(self, spec))
        else:
            self.nodes.pop(f"{spec.name}RestoreNode", None)

    def _ensure_table(self, spec: ModelSpec) -> None:
        """Apply the safe plan for ``spec`` in one transaction, or keep it pending and raise."""
        from dataflow_nb.model.history import apply_plan
        from dataflow_nb.model.migrate import plan_migration  # Alembic loads on the first model, not on import

        with self._migration_connection() as connection:
            plan = plan_migration(connection, self.backend, spec)
            if self.read_only and plan.changes:
                raise ReadOnlyError(
                    f"model {spec.name}: table {spec.table_name!r} is missing or differs from the class, and "
                    f"DataFlow {self.name!r} is read-only (read_only=True), so nothing was changed:\n"
                    f"{plan.describe()}\nDefine the model with a DataFlow that may write, then come back."
                )
            if plan.pending:
                self._pending[spec.name] = spec
                raise SchemaError(
                    f"model {spec.name}: changing table {spec.table_name!r} needs a decision, so nothing was "
                    f"applied and the nodes still use the previous {spec.name}:\n{plan.describe()}\n"
                    f"To apply it: db.migrate({spec.name!r}, allow_destructive=True). To keep a column's "
                    f"values under a new name: db.migrate({spec.name!r}, renames={{'old': 'new'}}). "
                    "Or change the class back. db.migration_plan() shows the plan as a frame."
                )
            if plan.changes:
                apply_plan(connection, self.backend.dialect, plan)
            self._isolate(connection, spec)
            self._commit(connection)
        if plan.changes:
            self._invalidate({spec.table_name})

    def _invalidate(self, tables: set[str]) -> None:
        """After a committed migration: cached reads of these tables are gone."""
        if self.result_cache is not None:
            self.result_cache.invalidate(tables)

    def _isolate(self, connection: Connection, spec: ModelSpec) -> None:
        """A multi-tenant table is scoped by the database itself where it can (PostgreSQL RLS)."""
        if spec.multi_tenant:
            self.backend.isolate_tenant_table(connection, spec.table_name)

    def _commit(self, connection: Connection) -> None:
        """Commit a change of tables: replicas serve this DataFlow again once they replayed it."""
        connection.commit()
        if self.replicas is not None:
            self.replicas.note_commit(connection, self.backend)

    def _migration_connection(self) -> closing[Connection]:
        return closing(self.backend.connect())  # closing rolls back anything not committed

    def migration_plan(self, model: str | type | None = None) -> Frame:
        """Pending changes as a frame: one row per change, with whether it is safe and its DDL.

        Covers models whose change was refused (see ``migrate``) and registered models whose
        table differs from them; ``model`` narrows it to one. Nothing is applied.
        """
        from dataflow_nb.model.migrate import plan_migration

        rows: list[dict[str, Any]] = []
        with self._migration_connection() as connection:
            for spec in self._specs_to_check(model):
                rows += plan_migration(connection, self.backend, spec).rows()
        return self._plan_frame(rows)

    def migrate(
        self,
        model: str | type | None = None,
        *,
        allow_destructive: bool = False,
        renames: dict[str, str] | None = None,
    ) -> Frame:
        """Apply pending model changes, each model's in one transaction; returns what was applied.

        Args:
            model: a model name or class (default: every model with a pending change). A class
                is read again, so ``db.migrate(Note, allow_destructive=True)`` works too.
            allow_destructive: apply changes that can lose data or fail on existing rows (drop,
                type change, NOT NULL on a column with NULLs). Without it they raise SchemaError.
            renames: ``{"old": "new"}`` columns to rename, keeping their values, instead of
                dropping ``old`` and adding ``new``.

        Returns:
            A frame of the applied changes (as in ``migration_plan``).
        """
        from dataflow_nb.model.history import apply_plan
        from dataflow_nb.model.migrate import plan_migration

        applied: list[dict[str, Any]] = []
        specs = self._specs_to_check(model)
        if renames and len(specs) != 1:
            raise SchemaError("renames= needs one model: db.migrate('Model', renames={'old': 'new'})")
        for spec in specs:
            with self._migration_connection() as connection:
                plan = plan_migration(connection, self.backend, spec, renames=renames)
                if plan.pending and not allow_destructive:
                    raise SchemaError(
                        f"model {spec.name}: these changes need allow_destructive=True:\n{plan.describe()}"
                    )
                if plan.changes:
                    apply_plan(connection, self.backend.dialect, plan)
                self._isolate(connection, spec)
                self._commit(connection)
            if plan.changes:
                self._invalidate({spec.table_name})
            applied += plan.rows()
            self._register(spec)
        return self._plan_frame(applied)

    def _plan_frame(self, rows: list[dict[str, Any]]) -> Frame:
        schema = pa.schema([(n, pa.bool_() if n == "safe" else pa.string()) for n in _PLAN_COLUMNS])
        return to_frame(pa.Table.from_pylist(rows, schema=schema), {}, self.frame)

    def migration_history(self) -> Frame:
        """Every applied change, oldest first, from the ``dataflow_nb_migrations`` table."""
        from dataflow_nb.model.history import read_history

        with self._migration_connection() as connection:
            table = read_history(connection, self.backend.dialect)
            connection.commit()
        return to_frame(table, {}, self.frame)

    def _specs_to_check(self, model: str | type | None) -> list[ModelSpec]:
        if isinstance(model, type):
            return [spec_from_class(model, **self._spec_options())]
        if model is None:
            return list({**self.models, **self._pending}.values())
        spec = self._pending.get(model) or self.models.get(model)
        if spec is None:
            raise SchemaError(f"no model named {model!r}; models are {sorted({*self.models, *self._pending})}")
        return [spec]

    def model_from(self, source: Any, *, name: str, sample: int | None = SAMPLE_ROWS, **options: Any) -> type:
        """Infer a model from a CSV/Parquet file (or glob) or a frame, create its table and nodes.

        Types are what polars would read from a file's first ``sample`` rows (100,000; ``None``
        reads them all; a frame is read whole), and the printed line says so: a later value that
        does not fit fails the load, naming its row and this fix. Columns holding nulls become
        ``Optional``. Column names that are not identifiers become snake_case (``rename=`` chooses
        others); the mapping is printed and kept, so the bulk nodes load the same file as is.
        Reader options (``null_values``, ``date_format``, ``delimiter``, ...) read the file; other
        ``options`` become ``__dataflow__``.

        Examples:
            >>> import polars as pl
            >>> db = DataFlow()
            >>> Flight = db.model_from(pl.DataFrame({"carrier": ["AA", None], "delay": [3, 5]}), name="Flight")
            >>> db.models["Flight"].fields["carrier"].label
            'Optional[str]'
            >>> db.close()
        """
        return self.model(self._inferred_class(source, name, sample, options))

    def _inferred_class(self, source: Any, name: str, sample: int | None, options: dict[str, Any]) -> type:
        """``model_from``'s class, not registered yet (the CLI widens a model inferred from a sample)."""
        from dataflow_nb.bulk.parse import ReadOptions
        from dataflow_nb.model.infer import infer_model

        reading = {k: options.pop(k) for k in list(options) if k in ReadOptions.names()}
        if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 1):
            raise ValidationError(f"model_from({name}): sample takes a positive number of rows or None, got {sample!r}")
        inferred = infer_model(source, ReadOptions.from_params(reading, f"model_from({name})"), sample)
        origin = source if isinstance(source, str) else type(source).__name__
        renamed = ", ".join(inferred.renames)
        if inferred.source_columns:
            options["source_columns"] = inferred.source_columns
        doc = f"Inferred from {origin}."
        if inferred.sampled is not None:
            options["sampled_rows"] = inferred.sampled
            first = f"the first {inferred.sampled:,} rows of {origin}"
            print(f"{name}: types inferred from {first}; pass sample=None to scan all")
            doc = f"Types inferred from {first}."
        if renamed:
            print(f"{name}: columns renamed {renamed}")
        namespace = {
            "__annotations__": inferred.annotations,
            "__dataflow__": options,
            "__module__": __name__,
            "__doc__": doc + (f" Columns renamed: {renamed}." if renamed else ""),
        }
        return type(name, (), namespace)

    def copy_to(
        self,
        target: DataFlow,
        *,
        models: list[str] | None = None,
        replace: bool = False,
        history: bool = True,
        progress: bool | None = None,
    ) -> CopyReport:
        """Copy every model's table, and the run history, into another database through Arrow.

        The source is read in one snapshot, batch by batch (bounded memory); the target is written
        in one transaction, with ids kept and each id sequence moved past them, so a failure or
        Ctrl-C leaves it as it was. Models registered here and those whose tables this database's
        migration history records are copied; the target's tables are created as needed, and a
        table there that differs raises ``SchemaError`` before any row moves.

        Args:
            target: the DataFlow to copy into (another backend or the same kind).
            models: only these model names (default: all).
            replace: replace rows the target's tables already hold (default: refuse with
                ``ConflictError``, nothing copied).
            history: also copy the run history (runs the target already has are skipped).
            progress: a progress bar (default: where a person watches).

        Returns:
            A ``CopyReport``: rows per table, runs copied, seconds.

        Examples:
            >>> from dataflow_nb import LocalRuntime, WorkflowBuilder
            >>> prototype, production = DataFlow(), DataFlow()
            >>> @prototype.model
            ... class Note:
            ...     text: str
            >>> workflow = WorkflowBuilder()
            >>> workflow.add_node(prototype.nodes["NoteCreateNode"], "add", {"text": "hi"})
            'add'
            >>> _ = LocalRuntime().execute(workflow.build())
            >>> prototype.copy_to(production, progress=False).tables
            [('Note', 'notes', 1)]
            >>> prototype.close(); production.close()
        """
        from dataflow_nb.transfer import copy_database

        return copy_database(self, target, models=models, replace=replace, history=history, progress=progress)

    def _create_audit_table(self) -> bytes:
        from dataflow_nb.security.audit import ensure_audit_table

        try:
            with self._migration_connection() as connection:
                key = ensure_audit_table(connection, self)
                connection.commit()
        except DataflowError:
            self.backend.close()
            raise
        return key

    def audit_log(self, last: int | None = None) -> Any:
        """The audit log as a frame, oldest first: every write of ``security_enabled`` runs.

        Columns: id, at, run_id, tenant_id, node_id, node_type, model, operation, rows, keys
        (a JSON list of ids), digest (HMAC-SHA-256, keyed per database, of a bulk input or of a
        SQL statement and its values) and db_user (the database role that wrote). ``last`` keeps
        the newest rows.
        """
        from dataflow_nb.security.audit import read_audit_log

        if not self.security_enabled:
            raise DataflowError("the audit log needs DataFlow(..., security_enabled=True)")
        with self._migration_connection() as connection:
            table = read_audit_log(connection, self, last)
        return to_frame(table, {}, self.frame)

    def runs(self, last: int = 50) -> Frame:
        """The newest ``last`` runs, newest first, from the run history kept in the database.

        Columns: run_id, database (password masked), tenant_id, started_at, finished_at, seconds,
        status (running, ok, failed, interrupted, retried), nodes (in the workflow), error_node,
        error, rows_read, rows_written and served_by ("primary", or the read replica that ran it).
        Runs of other kernels on the same database are there too.

        Examples:
            >>> from dataflow_nb import LocalRuntime, WorkflowBuilder
            >>> db = DataFlow()
            >>> @db.model
            ... class Note:
            ...     text: str
            >>> workflow = WorkflowBuilder()
            >>> workflow.add_node("NoteCreateNode", "add", {"text": "hi"})
            'add'
            >>> _, run_id = LocalRuntime().execute(workflow.build())
            >>> db.runs().select("run_id", "status", "nodes").row(0) == (run_id, "ok", 1)
            True
            >>> db.close()
        """
        if isinstance(last, bool) or not isinstance(last, int) or last < 1:
            raise DataflowError(f"runs(last={last!r}): give a whole number >= 1, e.g. 50")
        return to_frame(self.history.read_runs(last), {}, self.frame)

    def run(self, run_id: str) -> Frame:
        """The nodes of one run in the order they ran: node_id, node_type, status, started (seconds
        after the run started), seconds, rows_read, rows_written and error. Live while the run
        executes in this process.

        Raises:
            NotFoundError: when the history has no run ``run_id``.
        """
        from dataflow_nb.exceptions import NotFoundError

        table = self.history.read_nodes(run_id)
        if table.num_rows == 0 and not self.history.has_run(run_id):
            raise NotFoundError(
                f"no run {run_id!r} in the run history of {self.backend.safe_url}; db.runs() lists the "
                f"newest runs (the history keeps the last {self.history.keep:,})"
            )
        return to_frame(table, {}, self.frame)

    def get_monitor(self) -> Monitor:
        """The monitor: metrics, health, slow queries (``DataFlow(monitoring=True)``)."""
        if self.monitor is None:
            raise DataflowError("monitoring is off: create the DataFlow with monitoring=True")
        return self.monitor

    def get_health_status(self) -> dict[str, Any]:
        """Whether the database answers within ``health_timeout`` (2 s unless set); never raises.

        The monitor's report when ``monitoring=True`` (with the cache's health), otherwise the
        same check alone: ``{"status": "healthy" | "unhealthy", "database", "latency_ms",
        "error", "checked_at"}``, ``error`` reading ``"ConnectionError: ..."``. With read
        replicas, ``replicas`` lists each one: database, status (healthy, lagging, behind, not a
        standby, unhealthy), lag_seconds, replayed_last_commit and error.
        """
        if self.monitor is None and self._health_monitor is None:
            # Only for its health check: it records nothing, since no run reports to it.
            self._health_monitor = Monitor(
                database=self.backend.safe_url,
                ping=_weak_ping(self),
                health_timeout=self.health_timeout,
                replica_health=self._replica_health(),
            )
        monitor = self.monitor or self._health_monitor
        assert monitor is not None
        return monitor.get_health_status()

    def _replica_health(self) -> Callable[[], list[dict[str, Any]]] | None:
        """Each replica's health, for the monitor (no reference back to this DataFlow)."""
        if self.replicas is None:
            return None
        return functools.partial(self.replicas.health, self.health_timeout)

    def ping(self) -> None:
        """Run ``SELECT 1`` on a fresh connection; raises when the database does not answer."""
        connection = self.backend.connect()
        try:
            connection.execute_sql("SELECT 1")
        finally:
            connection.close()

    @property
    def cache(self) -> QueryCache | None:
        """The result cache (``cache_enabled=True``): ``stats()``, ``health()``; None when off."""
        return None if self.result_cache is None else self.result_cache.cache

    def close(self) -> None:
        """Close every connection; the DataFlow is unusable afterwards."""
        unregister_database(self)
        if self.result_cache is not None:
            self.result_cache.cache.close()
        self._finalizer()  # closes the backend once

    def __enter__(self) -> DataFlow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        replicas = "" if self.replicas is None else f", replicas={self.replicas.safe_urls!r}"
        return f"DataFlow({self.backend.safe_url!r}{replicas}, name={self.name!r}, models={list(self.models)})"

    def _row_counts(self) -> dict[str, str]:
        """Rows in each model's table, as shown (``?`` when the table cannot be counted now)."""
        import sqlalchemy as sa

        from dataflow_nb.backends.base import compile_statement

        counts: dict[str, str] = {}
        try:
            with self._migration_connection() as connection:
                for spec in self.models.values():
                    query = sa.select(sa.func.count()).select_from(sa.table(spec.table_name))
                    try:
                        counted = connection.execute(compile_statement(query, self.backend.dialect))
                        counts[spec.name] = f"{counted.column(0)[0].as_py():,}" if counted is not None else "?"
                    except DataflowError:
                        counts[spec.name] = "?"
                        connection.rollback()
        except DataflowError:
            pass
        return counts

    def _repr_html_(self) -> str:
        """The models, their tables, row counts and columns."""
        counts = self._row_counts()
        rows = "".join(
            f"<tr><td>{html.escape(m.name)}</td><td>{html.escape(m.table_name)}</td>"
            f"<td>{counts.get(m.name, '?')}</td>"
            f"<td>{html.escape(', '.join(f'{f.name}: {f.label}' for f in m.fields.values()))}</td></tr>"
            for m in self.models.values()
        )
        return (
            f"<b>DataFlow</b> {html.escape(self.name)} &middot; <code>{html.escape(self.backend.safe_url)}</code>"
            f"<table><tr><th>model</th><th>table</th><th>rows</th><th>columns</th></tr>{rows}</table>"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Plain text for a notebook without HTML: the same models, tables and row counts."""
        counts = self._row_counts()
        lines = [f"DataFlow {self.name} on {self.backend.safe_url}: {len(self.models)} model(s)"]
        for m in self.models.values():
            lines.append(f"  {m.name}: table {m.table_name}, {counts.get(m.name, '?')} rows")
            lines.append("    " + ", ".join(f"{f.name}: {f.label}" for f in m.fields.values()))
        printer.text("\n".join(lines))


def _close_backends(backend: Backend, replicas: Replicas | None) -> None:
    backend.close()
    if replicas is not None:
        replicas.close()


def _weak_ping(db: DataFlow) -> Callable[[], None]:
    """``db.ping`` without a reference from the monitor back to its DataFlow (no cycle)."""
    ref = weakref.ref(db)

    def ping() -> None:
        live = ref()
        if live is None:
            raise DataflowError("the DataFlow of this monitor no longer exists")
        live.ping()

    return ping
