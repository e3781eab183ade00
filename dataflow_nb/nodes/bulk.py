"""The generated bulk nodes: BulkCreate, BulkUpdate, BulkDelete and BulkUpsert.

Each streams its input in bounded memory inside the run's transaction and returns a
``BulkReport``. A failure anywhere (a bad row with ``on_error="rollback"``, a later node, a
killed process) leaves the table as it was: nothing is committed batch by batch.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa

from dataflow_nb.backends.load_job import LoadJob
from dataflow_nb.bulk.conform import Conformer
from dataflow_nb.bulk.load import ConformedSource, RunStatements, ScopedRules, input_digest, read_head
from dataflow_nb.bulk.parse import FORMAT_SAMPLE
from dataflow_nb.bulk.reload import MODES, loaded_note, warn_if_loaded
from dataflow_nb.bulk.report import BulkReport
from dataflow_nb.bulk.sources import DEFAULT_BATCH_SIZE, BatchSource, open_input
from dataflow_nb.core.load_plan import Action, LoadPlan
from dataflow_nb.core.reading import ReadOptions
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.notebook_values import to_python
from dataflow_nb.model.validate import record_values
from dataflow_nb.nodes.base import check_parameter_names
from dataflow_nb.nodes.model_node import ModelNode, conflict_keys
from dataflow_nb.observers.history import note_loaded
from dataflow_nb.protocols import Written
from dataflow_nb.query.filters import compile_filter
from dataflow_nb.query.scope import tenant_of

if TYPE_CHECKING:
    from dataflow_nb.protocols import Run

COMMON: tuple[str, ...] = ("data", "source", "batch_size", "on_error", "progress", *ReadOptions.names())
ON_ERROR = ("rollback", "skip", "quarantine")


def _peek(source: BatchSource) -> tuple[list[str] | None, Iterator[pa.RecordBatch]]:
    """The input's column names and all its batches (the first one read ahead)."""
    batches = iter(source)
    first = next(batches, None)
    if first is None:
        return None, iter(())
    return first.schema.names, itertools.chain([first], batches)


class BulkNode(ModelNode):
    """Shared parameters and checks of the four bulk nodes."""

    parameters = COMMON
    data_optional = False
    writes = True

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        check_parameter_names(cls.node_type, params, cls.parameters)
        on_error = params.get("on_error", "rollback")
        if on_error not in ON_ERROR:
            raise ValidationError(f"{cls.node_type}: on_error={on_error!r}; choose one of {list(ON_ERROR)}")
        size = to_python(params.get("batch_size", DEFAULT_BATCH_SIZE))  # np.int64 from a notebook cell too
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValidationError(f"{cls.node_type}: batch_size must be a positive int, got {size!r}")
        ReadOptions.from_params(params, cls.node_type)
        given = [k for k in ("data", "source") if params.get(k) is not None]
        if len(given) > 1:
            raise ValidationError(f"{cls.node_type}: give data= or source=, not both")
        if complete and not given and not cls.data_optional:
            raise ValidationError(
                f"{cls.node_type}: no input: give data= (a frame, Arrow table or list of dicts), source= (a CSV or "
                "Parquet path or glob), or connect a reader node's output to 'data'"
            )

    action: Action  # what the node's load job does

    def written(self, params: Mapping[str, Any], output: Any) -> Written:
        """Its rows, and a digest of its input rows (streamed) or of its filter."""
        by_filter = {k: params.get(k) for k in ("filter", "fields", "hard") if k in params}
        return Written(self.operation, output.rows_written, self.model.name, digest_of=by_filter)

    def run(self, ctx: Run, params: dict[str, Any]) -> BulkReport:
        """The node's load job, handed a plan and its input; then its bars: full, or red when
        anything up to the node's end failed."""
        started = time.perf_counter()
        self.check_params(params, complete=True)
        plan = LoadPlan(
            self.action,
            self.model,
            self.node_type,
            ScopedRules(self.model, ctx.scope),
            on_error=params.get("on_error", "rollback"),
            tenant=tenant_of(self.model, ctx.scope),
            audited=self.db.security_enabled,
            **self.plan_options(params),
        )
        job = self.db.backend.create_load_job(plan, RunStatements(ctx, self.db))
        try:
            report = self.write(ctx, params, job)
        except BaseException:
            job.end_bars(ok=False)
            raise
        job.end_bars(ok=True)
        report.seconds = time.perf_counter() - started
        return report

    def plan_options(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """What the node's parameters add to its plan (``LoadPlan``'s fields)."""
        return {}

    def write(self, ctx: Run, params: dict[str, Any], job: LoadJob) -> BulkReport:
        """Hand ``job`` the input: its report is the node's."""
        raise NotImplementedError

    def conformed(
        self,
        ctx: Run,
        params: Mapping[str, Any],
        job: LoadJob,
        source: BatchSource,
        batches: Iterator[pa.RecordBatch],
        conformer: Conformer,
        first: pa.RecordBatch | None = None,
    ) -> ConformedSource:
        """The input in the model's types, for ``job`` (``first``: the file's first rows, read ahead)."""
        return ConformedSource(
            source,
            batches,
            conformer,
            tenant=job.plan.tenant,
            progress=params.get("progress"),
            digest=input_digest(ctx, self.db),
            first=first,
            batch_size=self.batch_size(params),
        )

    def input(self, params: Mapping[str, Any]) -> tuple[BatchSource, list[str] | None, Iterator[pa.RecordBatch]]:
        source = self.open_source(params)
        names, batches = _peek(source)
        return source, names, batches

    @staticmethod
    def batch_size(params: Mapping[str, Any]) -> int:
        return int(to_python(params.get("batch_size", DEFAULT_BATCH_SIZE)))

    def open_source(self, params: Mapping[str, Any]) -> BatchSource:
        batch_size = self.batch_size(params)
        options = ReadOptions.from_params(params, self.node_type, base=self.model_options())
        return open_input(
            params.get("data"), params.get("source"), batch_size=batch_size, fields=self.model.fields, options=options
        )

    def model_options(self) -> ReadOptions:
        """A model inferred from a file reads it as it was inferred (its column renames)."""
        return ReadOptions(rename=dict(self.model.options.get("source_columns") or {}))

    def conformer(
        self, params: Mapping[str, Any], source: BatchSource, names: list[str], allowed: list[str], **kwargs: Any
    ) -> Conformer:
        """The conformer of this input: a reader node's options, with this node's own on top."""
        options = ReadOptions.from_params(params, self.node_type, base=source.options)
        return Conformer(self.model, names, allowed, node=self.node_type, options=options, **kwargs)


class BulkCreateNode(BulkNode):
    """Insert every input row: COPY through ADBC on PostgreSQL, an Arrow scan on DuckDB.

    ``mode="append"`` (default) adds the rows, and warns when a committed run already loaded the
    same source into the table; ``mode="replace"`` first deletes the table's rows (the run's
    tenant's, on a multi-tenant model) in the same transaction, so a failed load keeps the old ones.
    """

    parameters = (*COMMON, "mode")
    action = "create"

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        super().check_params(params, complete=complete)
        if params.get("mode", "append") not in MODES:
            raise ValidationError(
                f"{cls.node_type}: mode={params['mode']!r}; choose 'append' (add the rows) or 'replace' "
                "(the table's rows replaced by these, in the same transaction)"
            )

    def plan_options(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"replace": params.get("mode", "append") == "replace"}

    def write(self, ctx: Run, params: dict[str, Any], job: LoadJob) -> BulkReport:
        source = self.open_source(params)
        mode = params.get("mode", "append")
        fingerprint = source.fingerprint() if self.db.history.record else None  # kept in the run history
        if mode != "replace" and fingerprint is not None:
            warn_if_loaded(self.db, self.node_type, self.model.table_name, job.plan.tenant, fingerprint, source.label)
        # A file (source=, not a reader node's batches) the database may read itself: its first
        # rows only, without reading ahead; as many as a date/time column's format is chosen on.
        first, size = None, self.batch_size(params)
        sample = min(size, FORMAT_SAMPLE)
        if params.get("source") is not None and source.head is not None and source.file is not None and job.may_scan():
            first = read_head(job, source, sample)
        if first is not None:
            names: list[str] | None = first.schema.names
            batches: Iterator[pa.RecordBatch] = iter(source)
        else:
            names, batches = _peek(source)
        conformed = None
        if names is not None:
            # An input with ids keeps them (a model inferred from a file whose id column is its key).
            allowed = ["id", *self.model.writable] if "id" in names else list(self.model.writable)
            keys = ["id"] if "id" in names else []
            conformer = self.conformer(params, source, names, allowed, fill_defaults=True, keys=keys)
            if first is not None and first.num_rows == sample < size and not conformer.formats_known(first):
                first = read_head(job, source, size)  # too many nulls: the whole first batch chooses, as streamed
            conformed = self.conformed(ctx, params, job, source, batches, conformer, first)
        report = job.run(conformed)
        if fingerprint is not None:
            note_loaded(ctx, loaded_note(self.model.table_name, mode, fingerprint))
        return report


class BulkUpsertNode(BulkNode):
    """Insert rows, or update the named columns where ``conflict_on`` (a unique key) matches.

    Rows repeating a key within the input collapse to the last one; their count is reported
    (``collapsed``). A stored row the input would not change is left as it is (``unchanged``).
    """

    parameters = (*COMMON, "conflict_on", "update")
    action = "upsert"

    @classmethod
    def keys(cls, params: Mapping[str, Any]) -> tuple[list[str], list[str] | None]:
        return conflict_keys(cls.model, cls.node_type, params, allow_id=True)

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        super().check_params(params, complete=complete)
        cls.keys(params)

    def plan_options(self, params: Mapping[str, Any]) -> dict[str, Any]:
        keys, update = self.keys(params)
        return {"keys": tuple(keys), "update": None if update is None else tuple(update)}

    def write(self, ctx: Run, params: dict[str, Any], job: LoadJob) -> BulkReport:
        keys = list(job.plan.keys)
        source, names, batches = self.input(params)
        if names is None:
            return job.run(None)
        allowed = ["id", *self.model.writable] if "id" in keys else list(self.model.writable)
        conformer = self.conformer(params, source, names, allowed, fill_defaults=True, keys=keys)
        return job.run(self.conformed(ctx, params, job, source, batches, conformer))


class _ByFilterOrIds(BulkNode):
    """Update and delete act on ``filter`` (``{"all": True}`` for every row) or on input rows' ``id``."""

    data_optional = True

    @classmethod
    def condition(cls, params: Mapping[str, Any]) -> sa.ColumnElement[bool] | None:
        spec = params.get("filter")
        if spec is None:
            return None
        if spec == {"all": True}:
            return sa.true()
        if not spec:
            raise ValidationError(
                f"{cls.node_type}: an empty filter would touch every row; "
                "pass filter={'all': True} if that is what you mean"
            )
        return compile_filter(cls.filter_target, spec)

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        super().check_params(params, complete=complete)
        has_input = any(params.get(k) is not None for k in ("data", "source"))
        if has_input and params.get("filter") is not None:
            raise ValidationError(f"{cls.node_type}: give filter= or input rows keyed on id, not both")
        if complete and not has_input and params.get("filter") is None:
            raise ValidationError(
                f"{cls.node_type}: give filter= (or {{'all': True}}) or input rows with an 'id' column"
            )
        cls.condition(params)

    def plan_options(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"condition": self.condition(params)}

    def write(self, ctx: Run, params: dict[str, Any], job: LoadJob) -> BulkReport:
        """Rows matching the filter, or the input rows by ``id`` (the last row per id wins)."""
        if job.plan.condition is not None:
            return job.run(None)
        source, names, batches = self.input(params)
        if names is None:
            return job.run(None)
        allowed = ["id", *self.model.writable] if self.action == "update" else ["id"]  # delete: ids only
        conformer = self.conformer(params, source, names, allowed, fill_defaults=False, keys=["id"])
        return job.run(self.conformed(ctx, params, job, source, batches, conformer))


class BulkUpdateNode(_ByFilterOrIds):
    """Set ``fields`` on rows matching ``filter``, or update each input row's columns by its ``id``."""

    parameters = (*COMMON, "filter", "fields")
    action = "update"

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        super().check_params(params, complete=complete)
        if params.get("filter") is not None:
            fields = params.get("fields")
            if not isinstance(fields, dict) or not fields:
                raise ValidationError(f"{cls.node_type}: with filter=, give fields={{...}}: the values to set")
            record_values(cls.model, fields, partial=True)
        elif params.get("fields") is not None:
            raise ValidationError(f"{cls.node_type}: fields= goes with filter=; input rows carry their own values")

    def plan_options(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = {} if params.get("filter") is None else record_values(self.model, params["fields"], partial=True)
        return {**super().plan_options(params), "values": values}


class BulkDeleteNode(_ByFilterOrIds):
    """Delete rows matching ``filter`` (``{"all": True}`` for every row), or the input rows' ``id``s.

    On a soft-delete model rows get ``deleted_at`` instead; ``hard=True`` removes them for good.
    """

    parameters = (*COMMON, "filter", "hard")
    action = "delete"

    def plan_options(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {**super().plan_options(params), "hard": bool(params.get("hard", False))}


BULK_OPERATIONS: dict[str, type[ModelNode]] = {
    "BulkCreate": BulkCreateNode,
    "BulkUpdate": BulkUpdateNode,
    "BulkDelete": BulkDeleteNode,
    "BulkUpsert": BulkUpsertNode,
}
