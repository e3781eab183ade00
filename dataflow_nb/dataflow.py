"""DataFlow: a database, its models and their generated nodes."""

from __future__ import annotations

import functools
import itertools
import logging
import sys
import weakref
from collections.abc import Callable
from contextlib import ExitStack, closing
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from dataflow_nb.backends import open_backend, open_replicas
from dataflow_nb.backends.base import Backend
from dataflow_nb.backends.citus import DistributionPlan, plan_distribution
from dataflow_nb.bulk.infer import infer_class
from dataflow_nb.cache.results import ResultCache, open_result_cache
from dataflow_nb.core.spec import ModelSpec, spec_from_class
from dataflow_nb.display import dataflow_html, dataflow_text
from dataflow_nb.exceptions import DataflowError, NotFoundError
from dataflow_nb.frames import Frame, FrameKind, JsonMode, to_frame
from dataflow_nb.migrations import Migrations
from dataflow_nb.model import SAMPLE_ROWS
from dataflow_nb.monitor import Monitor
from dataflow_nb.monitor.runs import DEFAULT_KEEP, RunHistory
from dataflow_nb.nodes.describe import NodeTable, model_doc
from dataflow_nb.nodes.generate import make_nodes
from dataflow_nb.nodes.model_node import ModelNode
from dataflow_nb.nodes.write import make_restore_node
from dataflow_nb.options import Consistency, DataFlowOptions, resolve_url
from dataflow_nb.registry import register_database, unregister_database
from dataflow_nb.security.audit import ensure_audit_table, read_audit_log
from dataflow_nb.transfer import copy_database
from dataflow_nb.workflow.subscribers import run_observers

if TYPE_CHECKING:
    from dataflow_nb.backends.replicas import Replicas
    from dataflow_nb.cache import QueryCache
    from dataflow_nb.transfer import CopyReport

log = logging.getLogger("dataflow_nb")
T = TypeVar("T", bound=type)
_counter = itertools.count(1)


class DataFlow:
    """A database with models; each model gets a table and generated workflow nodes.

    Args:
        url: ``None`` (``DATABASE_URL`` or an in-memory DuckDB), ``duckdb:///path.duckdb`` or
            ``postgresql://user@host:5432/db``.
        database_url: the seed's spelling of ``url``.
        **options: ``frame``, ``json``, the pool and timeouts, ``name``, ``multi_tenant``,
            ``monitoring``, ``security_enabled``, ``read_only``, the cache, the run history and the
            replicas: each is described in ``DataFlowOptions`` (``help(DataFlowOptions)``), checked
            there, and kept frozen as ``db.options``.

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
        consistency: Consistency = "read_your_writes",
        max_replica_lag: float = 30.0,
        **planned: Any,
    ):
        self.options = DataFlowOptions.from_keywords(
            frame=frame,
            json=json,
            pool_size=pool_size,
            pool_max_overflow=pool_max_overflow,
            pool_timeout=pool_timeout,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
            health_timeout=health_timeout,
            name=name,
            multi_tenant=multi_tenant,
            monitoring=monitoring,
            metrics_export=metrics_export,
            slow_query_threshold=slow_query_threshold,
            security_enabled=security_enabled,
            read_only=read_only,
            allow_files=allow_files,
            cache_enabled=cache_enabled,
            cache_url=cache_url,
            cache_ttl=cache_ttl,
            run_history=run_history,
            keep_runs=keep_runs,
            replicas=replicas,
            consistency=consistency,
            max_replica_lag=max_replica_lag,
            **planned,
        )
        """Every keyword option, checked and frozen (``DataFlowOptions``)."""
        self._url = resolve_url(url, database_url)  # may hold a password
        self.name = name or f"db{next(_counter)}"
        self.models: dict[str, ModelSpec] = {}
        self.nodes: dict[str, type[ModelNode]] = NodeTable()  # a table of models x nodes in a notebook
        self.migrations = Migrations(self)
        """The model tables: plans, changes and the migration log (``Migrations``)."""
        self._open(self.options)
        register_database(self)
        # Close the connections when a re-run cell drops the last reference, as close() would.
        self._finalizer = weakref.finalize(self, _close_backends, self.history, self.backend, self.replicas)

    def _open(self, options: DataFlowOptions) -> None:
        """Connect, then the replicas, run history, cache, monitor and audit; a failure closes what opened."""
        connecting = {
            "pool_size": options.pool_size,
            "pool_max_overflow": options.pool_max_overflow,
            "pool_timeout": options.pool_timeout,
            "connect_timeout": options.connect_timeout,
            "statement_timeout": options.statement_timeout,
        }
        files = options.allow_files or not (options.multi_tenant or options.security_enabled or options.read_only)
        self.backend: Backend = open_backend(self._url, files=files, **connecting)
        self.url = None if self._url is None else self.backend.safe_url
        """The database URL with any password masked (``None`` for the default in-memory DuckDB)."""
        self.replicas: Replicas | None = None
        """Read replicas (``replicas=[...]``): where read-only runs go; None without them."""
        self.result_cache: ResultCache | None = None
        self.monitor: Monitor | None = None
        self._health_monitor: Monitor | None = None
        with ExitStack() as undo:
            undo.callback(self.backend.close)
            if options.replicas:
                self.replicas = open_replicas(
                    options.replicas,
                    self.backend,
                    consistency=options.consistency,
                    max_lag=options.max_replica_lag,
                    **connecting,
                )
                undo.callback(self.replicas.close)
            record = options.run_history and not options.read_only
            self.history = RunHistory(self.backend, keep=options.keep_runs, record=record)
            if options.cache_enabled:
                self.result_cache = open_result_cache(self, options.cache_url or "memory://", options.cache_ttl)
                undo.callback(self.result_cache.cache.close)
            if options.monitoring:
                self.monitor = Monitor(
                    database=self.backend.safe_url,
                    slow_query_threshold=options.slow_query_threshold,
                    metrics_export=options.metrics_export,
                    ping=_weak_ping(self),
                    cache=self.cache,
                    health_timeout=self.health_timeout,
                    replica_health=self._replica_health(),
                )
            # The audit's digest key (security/audit.py); read-only: never writes the audit log.
            self.audit_key = self._create_audit_table() if self.security_enabled and not self.read_only else b""
            self.observers = run_observers(self)  # what follows its runs: cache, monitor, audit (once, not per run)
            undo.pop_all()

    @property
    def frame(self) -> FrameKind:
        """What every node returns: ``"polars"`` or ``"pandas"`` frames."""
        return self.options.frame

    @property
    def json(self) -> JsonMode:
        """How polars frames give JSON fields: ``"text"`` or ``"decode"``."""
        return self.options.json

    @property
    def multi_tenant(self) -> bool:
        return self.options.multi_tenant

    @property
    def security_enabled(self) -> bool:
        return self.options.security_enabled

    @property
    def read_only(self) -> bool:
        return self.options.read_only

    @property
    def health_timeout(self) -> float:
        """Seconds ``get_health_status()`` waits for the database."""
        return float(self.options.health_timeout)

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
            self.migrations.ensure(spec)
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
            self.migrations.ensure(spec)
        self._register(spec)

    def _register(self, spec: ModelSpec) -> None:
        self.models[spec.name] = spec
        self.migrations.pending.pop(spec.name, None)
        self.nodes.update(make_nodes(self, spec))
        if spec.soft_delete:
            self.nodes.update(make_restore_node(self, spec))
        else:
            self.nodes.pop(f"{spec.name}RestoreNode", None)

    def _invalidate(self, tables: set[str]) -> None:
        """After a committed migration: cached reads of these tables are gone."""
        if self.result_cache is not None:
            self.result_cache.invalidate(tables)

    def migration_plan(self, model: str | type | None = None) -> Frame:
        """Pending changes as a frame: one row per change, with whether it is safe and its DDL.

        Covers models whose change was refused (see ``migrate``) and registered models whose
        table differs from them; ``model`` narrows it to one. Nothing is applied.
        """
        return self.migrations.plan(model)

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
        return self.migrations.apply(model, allow_destructive=allow_destructive, renames=renames)

    def migration_history(self) -> Frame:
        """Every applied change, oldest first, from the migration log (table ``dataflow_nb_migrations``)."""
        return self.migrations.log()

    def distribution_plan(self) -> DistributionPlan:
        """The SQL that distributes the models' tables on Citus, by tenant (docs/scale.md); nothing is run.

        ``str(plan)`` is the script: ``create_reference_table`` for models without tenants, then
        ``create_distributed_table(..., 'tenant_id')`` for multi-tenant ones, colocated; dataflow_nb's
        own tables stay local. ``CREATE EXTENSION citus`` and adding the workers are not in it.

        Raises:
            DataflowError: the database cannot be distributed (DuckDB).
            SchemaError: a model that cannot be distributed, naming it and the fix.
        """
        capabilities = self.backend.capabilities
        if not capabilities.supports_distribution:
            raise DataflowError(
                f"distribution_plan(): {capabilities.label} tables are never distributed; Citus is a PostgreSQL "
                "extension. Move the data with db.copy_to(DataFlow('postgresql://...')) and ask that DataFlow"
            )
        with self.migrations.connection() as connection:
            return plan_distribution(connection, list(self.models.values()), list(self.migrations.pending))

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
        return self.model(infer_class(source, name, sample, options))

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
        return copy_database(self, target, models=models, replace=replace, history=history, progress=progress)

    def _create_audit_table(self) -> bytes:
        with closing(self.backend.connect()) as connection:
            key = ensure_audit_table(connection, self)
            connection.commit()
        return key

    def audit_log(self, last: int | None = None) -> Any:
        """The audit log as a frame, oldest first: every write of ``security_enabled`` runs.

        Columns: id, at, run_id, tenant_id, node_id, node_type, model, operation, rows, keys
        (a JSON list of ids), digest (HMAC-SHA-256, keyed per database, of a bulk input or of a
        SQL statement and its values) and db_user (the database role that wrote). ``last`` keeps
        the newest rows.
        """
        if not self.security_enabled:
            raise DataflowError("the audit log needs DataFlow(..., security_enabled=True)")
        with closing(self.backend.connect()) as connection:
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
        """Write the run history still queued, then close every connection; the DataFlow is
        unusable afterwards."""
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

    def _repr_html_(self) -> str:
        """The models, their tables, row counts and columns."""
        return dataflow_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Plain text for a notebook without HTML: the same models, tables and row counts."""
        printer.text(dataflow_text(self))


def _close_backends(history: RunHistory, backend: Backend, replicas: Replicas | None) -> None:
    history.close()  # first: it writes the runs still queued
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
