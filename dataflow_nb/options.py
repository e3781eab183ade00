"""DataFlow's options: every keyword of ``DataFlow(...)`` checked once, then kept frozen.

One object rather than 22 attributes set along ``DataFlow.__init__``: each option is checked
here, where its message names the option and the fix, and nothing can change it afterwards
(``db.options``). The database URL is not in it: it may hold a password (``db.url`` is masked).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

from dataflow_nb.cache.redis import mask_url
from dataflow_nb.exceptions import DataflowError
from dataflow_nb.frames import FrameKind, JsonMode, check_json_mode
from dataflow_nb.monitor.runs import DEFAULT_KEEP

Consistency = Literal["read_your_writes", "eventual"]
PLANNED: tuple[str, ...] = ()  # options refused until built: an ignored option misleads


@dataclasses.dataclass(frozen=True, repr=False)
class DataFlowOptions:
    """How a DataFlow connects, what it returns and what it keeps (``db.options``).

    Attributes:
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
        name: how workflows qualify this database's nodes when two DataFlows share a model name
            (None: ``db.name`` is ``db1``, ``db2``...).
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
        >>> DataFlowOptions(monitoring=True, metrics_export="prometheus")
        DataFlowOptions(monitoring=True, metrics_export='prometheus')
        >>> DataFlowOptions(metrics_export="prometheus")
        Traceback (most recent call last):
        ...
        dataflow_nb.exceptions.DataflowError: metrics_export='prometheus' needs monitoring=True
    """

    frame: FrameKind = "polars"
    json: JsonMode = "text"
    pool_size: int = 5
    pool_max_overflow: int = 10
    pool_timeout: float = 30.0
    connect_timeout: float | None = 10.0
    statement_timeout: float | None = None
    health_timeout: float = 2.0
    name: str | None = None
    multi_tenant: bool = False
    monitoring: bool = False
    metrics_export: str | None = None
    slow_query_threshold: float = 1.0
    security_enabled: bool = False
    read_only: bool = False
    allow_files: bool = False
    cache_enabled: bool = False
    cache_url: str | None = None
    cache_ttl: float = 300
    run_history: bool = True
    keep_runs: int = DEFAULT_KEEP
    replicas: tuple[str, ...] | None = None
    consistency: Consistency = "read_your_writes"
    max_replica_lag: float = 30.0

    def __post_init__(self) -> None:
        if self.frame not in ("polars", "pandas"):
            raise DataflowError(f"frame={self.frame!r}: choose 'polars' or 'pandas'")
        check_json_mode("DataFlow", self.json)
        if self.metrics_export and not self.monitoring:
            raise DataflowError(f"metrics_export={self.metrics_export!r} needs monitoring=True")
        if self.allow_files and self.multi_tenant:
            raise DataflowError(
                "allow_files=True lets SQL read the files of this machine, and a multi-tenant DataFlow runs "
                "its tenants' SQL: open a separate DataFlow without multi_tenant to read files"
            )
        if self.cache_url is not None and not self.cache_enabled:
            raise DataflowError(f"cache_url={mask_url(str(self.cache_url))!r} needs cache_enabled=True")
        for option in ("connect_timeout", "statement_timeout", "health_timeout"):
            value = getattr(self, option)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise DataflowError(f"{option}={value!r}: give a number of seconds > 0, e.g. 5 (or None for no limit)")
        if isinstance(self.keep_runs, bool) or not isinstance(self.keep_runs, int) or self.keep_runs < 1:
            raise DataflowError(f"keep_runs={self.keep_runs!r}: give a whole number >= 1, e.g. 10_000.")
        if isinstance(self.replicas, list):  # a list is what people write; frozen means a tuple
            object.__setattr__(self, "replicas", tuple(self.replicas))

    @classmethod
    def from_keywords(cls, **keywords: Any) -> DataFlowOptions:
        """``DataFlow``'s keywords: an unknown one is a TypeError, a planned one is refused when set."""
        known = {f.name for f in dataclasses.fields(cls)}
        planned = {k: keywords.pop(k) for k in list(keywords) if k not in known}
        unknown = set(planned) - set(PLANNED)
        if unknown:
            raise TypeError(f"DataFlow() got unknown option(s) {sorted(unknown)}")
        enabled = sorted(k for k, v in planned.items() if v)
        if enabled:
            raise DataflowError(
                f"DataFlow option(s) {enabled} are not available in this version of dataflow_nb; "
                "remove them (they are planned, and an option that silently does nothing would mislead)"
            )
        return cls(**keywords)

    def __repr__(self) -> str:
        """The options that differ from their defaults; URLs with their passwords masked."""
        shown = []
        for option in dataclasses.fields(self):
            value = getattr(self, option.name)
            if value == option.default:
                continue
            if option.name == "cache_url":
                value = mask_url(value)
            elif option.name == "replicas":
                value = [mask_url(str(url)) for url in value]
            shown.append(f"{option.name}={value!r}")
        return f"DataFlowOptions({', '.join(shown)})"


def resolve_url(url: str | None, database_url: str | None) -> str | None:
    """The URL a DataFlow opens: ``url`` or its seed spelling, else ``DATABASE_URL``, else None
    (an in-memory DuckDB)."""
    if url and database_url and url != database_url:
        raise DataflowError("give the database URL once: url or database_url, not both")
    return url or database_url or os.environ.get("DATABASE_URL") or None
