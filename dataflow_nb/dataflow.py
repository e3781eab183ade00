"""DataFlow: a database, its models and their generated nodes."""

from __future__ import annotations

import html
import itertools
import logging
import os
import sys
from typing import Any, Literal, TypeVar

from sqlalchemy.schema import CreateIndex, CreateSequence, CreateTable, ExecutableDDLElement, Sequence

from dataflow_nb.backends import open_backend
from dataflow_nb.backends.base import Backend
from dataflow_nb.exceptions import DataflowError, SchemaError
from dataflow_nb.model.spec import ModelSpec, spec_from_class
from dataflow_nb.monitor import Monitor
from dataflow_nb.nodes.generate import make_nodes
from dataflow_nb.nodes.model_node import ModelNode
from dataflow_nb.registry import register_database, unregister_database

log = logging.getLogger("dataflow_nb")
T = TypeVar("T", bound=type)
_counter = itertools.count(1)
_PLANNED = ("cache_enabled", "security_enabled")  # refused until built: an ignored option misleads
_COLUMNS_SQL = (
    "SELECT column_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
)


class DataFlow:
    """A database with models; each model gets a table and generated workflow nodes.

    Args:
        url: ``None`` (``DATABASE_URL`` or an in-memory DuckDB), ``duckdb:///path.duckdb`` or
            ``postgresql://user@host:5432/db``.
        database_url: the seed's spelling of ``url``.
        frame: ``"polars"`` (default) or ``"pandas"``: what every node returns.
        pool_size: PostgreSQL connections kept open.
        pool_max_overflow: extra PostgreSQL connections allowed under load.
        pool_timeout: seconds to wait for a free connection before failing.
        name: how workflows qualify this database's nodes when two DataFlows share a model name.
        multi_tenant: give every model a ``tenant_id``; runs must then name their tenant.
        monitoring: record every statement and run; see ``get_monitor()``.
        metrics_export: ``"prometheus"`` to keep Prometheus metrics (needs ``monitoring=True``).
        slow_query_threshold: seconds above which a statement goes into the slow-query log.

    Examples:
        >>> db = DataFlow()
        >>> @db.model
        ... class Note:
        ...     text: str
        >>> sorted(db.nodes)[:3]
        ['NoteCountNode', 'NoteCreateNode', 'NoteDeleteNode']
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        database_url: str | None = None,
        frame: Literal["polars", "pandas"] = "polars",
        pool_size: int = 5,
        pool_max_overflow: int = 10,
        pool_timeout: float = 30.0,
        name: str | None = None,
        multi_tenant: bool = False,
        monitoring: bool = False,
        metrics_export: str | None = None,
        slow_query_threshold: float = 1.0,
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
        self.url = url or database_url or os.environ.get("DATABASE_URL") or None
        if metrics_export and not monitoring:
            raise DataflowError(f"metrics_export={metrics_export!r} needs monitoring=True")
        self.frame = frame
        self.multi_tenant = multi_tenant
        self.name = name or f"db{next(_counter)}"
        self.backend: Backend = open_backend(
            self.url, pool_size=pool_size, pool_max_overflow=pool_max_overflow, pool_timeout=pool_timeout
        )
        self.monitor: Monitor | None = None
        if monitoring:
            try:
                self.monitor = Monitor(
                    database=self.backend.safe_url,
                    slow_query_threshold=slow_query_threshold,
                    metrics_export=metrics_export,
                    ping=self.ping,
                )
            except DataflowError:
                self.backend.close()
                raise
        self.models: dict[str, ModelSpec] = {}
        self.nodes: dict[str, type[ModelNode]] = {}
        register_database(self)

    def model(self, cls: T) -> T:
        """Class decorator: create (or reuse) the model's table and generate its nodes.

        Re-running the decorated class unchanged is a no-op that keeps every row.
        """
        # The caller's locals resolve string annotations of classes defined inside functions.
        spec = spec_from_class(cls, localns=dict(sys._getframe(1).f_locals), multi_tenant=self.multi_tenant)
        previous = self.models.get(spec.name)
        if previous is None or previous.signature() != spec.signature():
            self._ensure_table(spec)
        self.models[spec.name] = spec
        self.nodes.update(make_nodes(self, spec))
        cls.__dataflow_model__ = spec  # type: ignore[attr-defined]
        return cls

    def _ensure_table(self, spec: ModelSpec) -> None:
        connection = self.backend.connect()
        try:
            existing = connection.execute_sql(_COLUMNS_SQL, [spec.table_name])
            columns = existing.column(0).to_pylist() if existing is not None else []
            if not columns:
                dialect = self.backend.dialect
                sequence = spec.table.c.id.default
                assert isinstance(sequence, Sequence)
                statements: list[ExecutableDDLElement] = [
                    CreateSequence(sequence, if_not_exists=True),
                    CreateTable(spec.table, if_not_exists=True),
                ]
                statements += [CreateIndex(index, if_not_exists=True) for index in spec.table.indexes]
                for statement in statements:
                    connection.execute_sql(str(statement.compile(dialect=dialect)))
                log.info("created table %s for model %s", spec.table_name, spec.name)
            elif columns != list(spec.fields):
                added = [c for c in spec.fields if c not in columns]
                removed = [c for c in columns if c not in spec.fields]
                raise SchemaError(
                    f"model {spec.name}: table {spec.table_name!r} exists with different columns "
                    f"(in the model only: {added}; in the table only: {removed}). This version of "
                    "dataflow_nb does not migrate tables yet: rename the model, set "
                    f"__dataflow__['table'], or drop table {spec.table_name!r} if its rows can go."
                )
            connection.commit()
        finally:
            connection.close()

    def get_monitor(self) -> Monitor:
        """The monitor: metrics, health, slow queries (``DataFlow(monitoring=True)``)."""
        if self.monitor is None:
            raise DataflowError("monitoring is off: create the DataFlow with monitoring=True")
        return self.monitor

    def ping(self) -> None:
        """Run ``SELECT 1`` on a fresh connection; raises when the database does not answer."""
        connection = self.backend.connect()
        try:
            connection.execute_sql("SELECT 1")
        finally:
            connection.close()

    def close(self) -> None:
        """Close every connection; the DataFlow is unusable afterwards."""
        unregister_database(self)
        self.backend.close()

    def __enter__(self) -> DataFlow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DataFlow({self.backend.safe_url!r}, name={self.name!r}, models={list(self.models)})"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(m.name)}</td><td>{html.escape(m.table_name)}</td>"
            f"<td>{html.escape(', '.join(f'{f.name}: {f.label}' for f in m.fields.values()))}</td></tr>"
            for m in self.models.values()
        )
        return (
            f"<b>DataFlow</b> {html.escape(self.name)} &middot; <code>{html.escape(self.backend.safe_url)}</code>"
            f"<table><tr><th>model</th><th>table</th><th>columns</th></tr>{rows}</table>"
        )
