"""A DataFlow's model tables: created, compared with their classes, changed and logged (``db.migrations``).

The DataFlow registers models and their nodes; this object owns what happens to their tables:
the safe plan applied when a model cell runs, the changes that wait for ``migrate()``, and the
migration log (``model/migration_log.py``). It holds its DataFlow weakly, as the generated nodes
do, so dropping the last reference to a DataFlow still closes it at once.
"""

from __future__ import annotations

import weakref
from contextlib import closing
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from dataflow_nb.backends.base import Connection, Database
from dataflow_nb.core.spec import ModelSpec, spec_from_class
from dataflow_nb.exceptions import DataflowError, ReadOnlyError, SchemaError
from dataflow_nb.frames import Frame, to_frame

if TYPE_CHECKING:
    from dataflow_nb.backends.replicas import Replicas
    from dataflow_nb.model.migrate import MigrationPlan

PLAN_COLUMNS = ("model", "table", "operation", "target", "safe", "reason", "ddl")


class MigratingDatabase(Database, Protocol):
    """What the migrations need of their DataFlow (``dataflow.py`` sits above this module): its
    replicas, and its hooks that register a model's nodes and drop a changed table's cached results."""

    replicas: Replicas | None

    def _spec_options(self) -> dict[str, Any]: ...
    def _register(self, spec: ModelSpec) -> None: ...
    def _invalidate(self, tables: set[str]) -> None: ...


class Migrations:
    """The model tables of one DataFlow (``db.migrations``); ``db.migrate()`` and its kin call it."""

    def __init__(self, db: MigratingDatabase) -> None:
        self._ref = weakref.ref(db)
        self.pending: dict[str, ModelSpec] = {}
        """Models whose change was refused, waiting for ``migrate()``; their nodes use the previous class."""

    @property
    def _db(self) -> MigratingDatabase:
        db = self._ref()
        if db is None:
            raise DataflowError("the DataFlow of these migrations no longer exists")
        return db

    def connection(self) -> closing[Connection]:
        """A connection of its own for reading or changing tables; closing it rolls back what was not committed."""
        return closing(self._db.backend.connect())

    def ensure(self, spec: ModelSpec) -> None:
        """Apply the safe plan for ``spec`` in one transaction, or keep it pending and raise."""
        from dataflow_nb.model.migrate import plan_migration  # Alembic loads on the first model, not on import

        db = self._db
        with self.connection() as connection:
            plan = plan_migration(connection, db.backend, spec)
            if db.read_only and plan.changes:
                raise ReadOnlyError(
                    f"model {spec.name}: table {spec.table_name!r} is missing or differs from the class, and "
                    f"DataFlow {db.name!r} is read-only (read_only=True), so nothing was changed:\n"
                    f"{plan.describe()}\nDefine the model with a DataFlow that may write, then come back."
                )
            if plan.pending:
                self.pending[spec.name] = spec
                raise SchemaError(
                    f"model {spec.name}: changing table {spec.table_name!r} needs a decision, so nothing was "
                    f"applied and the nodes still use the previous {spec.name}:\n{plan.describe()}\n"
                    f"To apply it: db.migrate({spec.name!r}, allow_destructive=True). To keep a column's "
                    f"values under a new name: db.migrate({spec.name!r}, renames={{'old': 'new'}}). "
                    "Or change the class back. db.migration_plan() shows the plan as a frame."
                )
            self._apply(connection, spec, plan)
        if plan.changes:
            db._invalidate({spec.table_name})

    def plan(self, model: str | type | None = None) -> Frame:
        """Pending changes as a frame (``db.migration_plan``); nothing is applied."""
        from dataflow_nb.model.migrate import plan_migration

        rows: list[dict[str, Any]] = []
        with self.connection() as connection:
            for spec in self._specs(model):
                rows += plan_migration(connection, self._db.backend, spec).rows()
        return self._plan_frame(rows)

    def apply(
        self, model: str | type | None = None, *, allow_destructive: bool = False, renames: dict[str, str] | None = None
    ) -> Frame:
        """Apply pending changes, each model's in one transaction (``db.migrate``); what was applied."""
        from dataflow_nb.model.migrate import plan_migration

        db = self._db
        applied: list[dict[str, Any]] = []
        specs = self._specs(model)
        if renames and len(specs) != 1:
            raise SchemaError("renames= needs one model: db.migrate('Model', renames={'old': 'new'})")
        for spec in specs:
            with self.connection() as connection:
                plan = plan_migration(connection, db.backend, spec, renames=renames)
                if plan.pending and not allow_destructive:
                    raise SchemaError(
                        f"model {spec.name}: these changes need allow_destructive=True:\n{plan.describe()}"
                    )
                self._apply(connection, spec, plan)
            if plan.changes:
                db._invalidate({spec.table_name})
            applied += plan.rows()
            db._register(spec)
        return self._plan_frame(applied)

    def log(self) -> Frame:
        """Every applied change, oldest first, from the migration log (``db.migration_history``)."""
        from dataflow_nb.model.migration_log import read_migration_log

        with self.connection() as connection:
            table = read_migration_log(connection, self._db.backend.dialect)
            connection.commit()
        return to_frame(table, {}, self._db.frame)

    def _apply(self, connection: Connection, spec: ModelSpec, plan: MigrationPlan) -> None:
        """Run and log the plan, scope a multi-tenant table, and commit."""
        from dataflow_nb.model.migration_log import apply_plan

        db = self._db
        if plan.changes:
            apply_plan(connection, db.backend.dialect, plan)
        if spec.multi_tenant:  # scoped by the database itself where it can (PostgreSQL RLS)
            db.backend.isolate_tenant_table(connection, spec.table_name)
        connection.commit()
        if db.replicas is not None:  # replicas serve this DataFlow again once they replayed it
            db.replicas.note_commit(connection, db.backend)

    def _specs(self, model: str | type | None) -> list[ModelSpec]:
        db = self._db
        if isinstance(model, type):
            return [spec_from_class(model, **db._spec_options())]
        if model is None:
            return list({**db.models, **self.pending}.values())
        spec = self.pending.get(model) or db.models.get(model)
        if spec is None:
            raise SchemaError(f"no model named {model!r}; models are {sorted({*db.models, *self.pending})}")
        return [spec]

    def _plan_frame(self, rows: list[dict[str, Any]]) -> Frame:
        schema = pa.schema([(n, pa.bool_() if n == "safe" else pa.string()) for n in PLAN_COLUMNS])
        return to_frame(pa.Table.from_pylist(rows, schema=schema), {}, self._db.frame)
