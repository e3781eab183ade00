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

from dataflow_nb.bulk.conform import Conformer
from dataflow_nb.bulk.load import BulkLoad, KeyHashes, unchanged_rows, upsert_statement
from dataflow_nb.bulk.parse import FORMAT_SAMPLE
from dataflow_nb.bulk.reload import MODES, loaded_note, warn_if_loaded
from dataflow_nb.bulk.report import BulkReport
from dataflow_nb.bulk.sources import DEFAULT_BATCH_SIZE, BatchSource, open_input
from dataflow_nb.core.reading import ReadOptions
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.notebook_values import to_python
from dataflow_nb.model.validate import record_values
from dataflow_nb.nodes.base import check_parameter_names
from dataflow_nb.nodes.model_node import ModelNode, conflict_keys
from dataflow_nb.observers.history import note_loaded
from dataflow_nb.protocols import Written
from dataflow_nb.query.filters import compile_filter, model_target
from dataflow_nb.query.scope import delete_statement, managed_update_values

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

    def written(self, params: Mapping[str, Any], output: Any) -> Written:
        """Its rows, and a digest of its input rows (streamed) or of its filter."""
        by_filter = {k: params.get(k) for k in ("filter", "fields", "hard") if k in params}
        return Written(self.operation, output.rows_written, self.model.name, digest_of=by_filter)

    def run(self, ctx: Run, params: dict[str, Any]) -> BulkReport:
        """The node's writes, then its bars: full, or red when anything up to the node's end failed."""
        started = time.perf_counter()
        self.check_params(params, complete=True)
        report = BulkReport(self.node_type, self.model.name)
        load = BulkLoad(
            ctx,
            self.db,
            self.model,
            self.node_type,
            on_error=params.get("on_error", "rollback"),
            progress=params.get("progress"),
            report=report,
        )
        try:
            self.write(ctx, params, load, report)
        except BaseException:
            load.end_bars(ok=False)
            raise
        load.end_bars(ok=True)
        report.seconds = time.perf_counter() - started
        return report

    def write(self, ctx: Run, params: dict[str, Any], load: BulkLoad, report: BulkReport) -> None:
        """Stream the input and write it, filling ``report``."""
        raise NotImplementedError

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

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        super().check_params(params, complete=complete)
        if params.get("mode", "append") not in MODES:
            raise ValidationError(
                f"{cls.node_type}: mode={params['mode']!r}; choose 'append' (add the rows) or 'replace' "
                "(the table's rows replaced by these, in the same transaction)"
            )

    def write(self, ctx: Run, params: dict[str, Any], load: BulkLoad, report: BulkReport) -> None:
        source = self.open_source(params)
        mode = params.get("mode", "append")
        fingerprint = source.fingerprint() if self.db.history.record else None  # kept in the run history
        if mode == "replace":
            everything = delete_statement(self.model, self.model.table, ctx.scope, sa.true(), hard=True)
            report.deleted = load.changed(everything)
        elif fingerprint is not None:
            warn_if_loaded(self.db, self.node_type, self.model.table_name, load.tenant, fingerprint, source.label)
        # A file (source=, not a reader node's batches) the database may read itself: its first
        # rows only, without reading ahead; as many as a date/time column's format is chosen on.
        first, size = None, self.batch_size(params)
        sample = min(size, FORMAT_SAMPLE)
        if (
            params.get("source") is not None
            and source.head is not None
            and load.job.reads_files
            and load.may_scan(source)
        ):
            first = load.head(source, sample)
        if first is not None:
            names: list[str] | None = first.schema.names
            batches: Iterator[pa.RecordBatch] = iter(source)
        else:
            names, batches = _peek(source)
        if names is not None:
            # An input with ids keeps them (a model inferred from a file whose id column is its key).
            allowed = ["id", *self.model.writable] if "id" in names else self.model.writable
            keys = ["id"] if "id" in names else []
            conformer = self.conformer(params, source, names, allowed, fill_defaults=True, keys=keys)
            if first is not None and first.num_rows == sample < size and not conformer.formats_known(first):
                first = load.head(source, size)  # too many nulls: the whole first batch chooses, as streamed
            columns = load.stamped(conformer.output)
            if load.needs_staging(columns):
                stage = load.staging(columns)
                load.ingest(stage.name, load.stream(source, batches, conformer, with_row=True), temporary=True)
                table = self.model.table
                moved = sa.insert(table).from_select(columns, sa.select(*(load.casted(stage, c) for c in columns)))
                report.inserted = load.changed(moved)
                load.drop(stage)
            else:
                if first is None or not load.scan(source, conformer, first, size):  # the database reads the file, or
                    load.ingest(self.model.table_name, load.stream(source, batches, conformer))
                    report.inserted = sum(rows for _, rows, _ in report.batch_log)
            if keys:
                load.advance_id_sequence()
        if fingerprint is not None:
            note_loaded(ctx, loaded_note(self.model.table_name, mode, fingerprint))


class BulkUpsertNode(BulkNode):
    """Insert rows, or update the named columns where ``conflict_on`` (a unique key) matches.

    Rows repeating a key within the input collapse to the last one; their count is reported
    (``collapsed``). A stored row the input would not change is left as it is (``unchanged``).
    """

    parameters = (*COMMON, "conflict_on", "update")

    @classmethod
    def keys(cls, params: Mapping[str, Any]) -> tuple[list[str], list[str] | None]:
        return conflict_keys(cls.model, cls.node_type, params, allow_id=True)

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        super().check_params(params, complete=complete)
        cls.keys(params)

    def write(self, ctx: Run, params: dict[str, Any], load: BulkLoad, report: BulkReport) -> None:
        keys, update = self.keys(params)
        source, names, batches = self.input(params)
        if names is not None:
            allowed = ["id", *self.model.writable] if "id" in keys else self.model.writable
            conformer = self.conformer(params, source, names, allowed, fill_defaults=True, keys=keys)
            columns = load.stamped(conformer.output)
            # A tenant's keys hold within it, ``id`` too: the primary key is (tenant_id, id).
            match = keys if load.tenant is None else ["tenant_id", *keys]
            stage = load.staging(columns)
            hashes = KeyHashes(self.model, match)
            reader = load.stream(source, batches, conformer, with_row=True, keys=hashes)
            load.ingest(stage.name, reader, temporary=True)
            # Keys written once each (checked on the client while streaming) need no DISTINCT ON sort.
            latest: sa.Table | sa.Subquery = stage if hashes.unique() else load.latest(stage, match)
            changed = [c for c in (update if update is not None else conformer.columns) if c not in match]
            table = self.model.table
            statement = upsert_statement(load, latest, columns, match, changed)
            flag = load.job.inserted_flag(self.model)
            if flag is not None and not self.model.soft_delete:
                # The upsert itself says which rows it inserted: no pass over the input before it.
                # (A soft-deleted record brought back counts as inserted, which only a query before tells.)
                # Rows left unchanged are not returned: they are the distinct keys not written.
                staged = sum(rows for _, rows, _ in report.batch_log)
                distinct = staged if latest is stage else load.count(sa.select(sa.func.count()).select_from(latest))
                inserted, written = load.upsert_counts(statement, flag)
                existing, unchanged = distinct - inserted, distinct - written
            else:
                scope = load.scope(table)
                found = sa.exists().where(*(table.c[k] == load.casted(latest, k) for k in match), *scope)
                same = unchanged_rows(load, latest, match, changed, *scope)
                staged, distinct, existing, unchanged = load.counts(
                    sa.select(
                        sa.select(sa.func.count()).select_from(stage).scalar_subquery(),
                        sa.func.count(),
                        sa.func.count().filter(found),
                        sa.func.count().filter(same),
                    ).select_from(latest)
                )
                load.changed(statement)
            load.drop(stage)
            if "id" in keys:
                load.advance_id_sequence()
            report.inserted, report.updated = distinct - existing, existing - unchanged
            report.unchanged, report.collapsed = unchanged, staged - distinct


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
        return compile_filter(model_target(cls.model, cls.model.table), spec)

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

    def by_ids(
        self, ctx: Run, params: Mapping[str, Any], load: BulkLoad, report: BulkReport, allowed: list[str]
    ) -> tuple[sa.Subquery, Any] | None:
        """Stage the input rows (last row per id wins) and settle ids that match nothing."""
        source, names, batches = self.input(params)
        if names is None:
            return None
        conformer = self.conformer(params, source, names, allowed, fill_defaults=False, keys=["id"])
        stage = load.staging(load.stamped(conformer.output))
        load.ingest(stage.name, load.stream(source, batches, conformer, with_row=True), temporary=True)
        latest = load.latest(stage, ["id"])
        staged, distinct = load.counts(
            sa.select(sa.select(sa.func.count()).select_from(stage).scalar_subquery(), sa.func.count()).select_from(
                latest
            )
        )
        report.collapsed = staged - distinct
        missing = load.missing(latest, "id")
        if missing:
            table = self.model.table
            absent = ~sa.exists().where(table.c.id == latest.c.id, *load.scope(table))
            load.handle_missing(missing, load.count(sa.select(sa.func.count()).select_from(latest).where(absent)))
        return latest, (stage, conformer)


class BulkUpdateNode(_ByFilterOrIds):
    """Set ``fields`` on rows matching ``filter``, or update each input row's columns by its ``id``."""

    parameters = (*COMMON, "filter", "fields")

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

    def write(self, ctx: Run, params: dict[str, Any], load: BulkLoad, report: BulkReport) -> None:
        table = self.model.table
        condition = self.condition(params)
        if condition is not None:
            values: dict[str, Any] = managed_update_values(self.model, table)
            values.update(record_values(self.model, params["fields"], partial=True))
            report.updated = load.changed(sa.update(table).where(condition, *load.scope(table)).values(values))
        else:
            staged = self.by_ids(ctx, params, load, report, ["id", *self.model.writable])
            if staged is not None:
                latest, (stage, conformer) = staged
                columns = [c for c in conformer.output if c != "id"]
                if not columns:
                    raise ValidationError(f"{self.node_type}: the input has only 'id': add the columns to change")
                changes: dict[str, Any] = managed_update_values(self.model, table)
                changes.update({c: load.casted(latest, c) for c in columns})
                statement = sa.update(table).where(table.c.id == latest.c.id, *load.scope(table)).values(changes)
                report.updated = load.changed(statement)
                load.drop(stage)


class BulkDeleteNode(_ByFilterOrIds):
    """Delete rows matching ``filter`` (``{"all": True}`` for every row), or the input rows' ``id``s.

    On a soft-delete model rows get ``deleted_at`` instead; ``hard=True`` removes them for good.
    """

    parameters = (*COMMON, "filter", "hard")

    def write(self, ctx: Run, params: dict[str, Any], load: BulkLoad, report: BulkReport) -> None:
        table = self.model.table
        condition = self.condition(params)
        hard = bool(params.get("hard", False))
        if condition is not None:
            report.deleted = load.changed(delete_statement(self.model, table, ctx.scope, condition, hard=hard))
        else:
            staged = self.by_ids(ctx, params, load, report, ["id"])
            if staged is not None:
                latest, (stage, _) = staged
                by_id = table.c.id == latest.c.id
                report.deleted = load.changed(delete_statement(self.model, table, ctx.scope, by_id, hard=hard))
                load.drop(stage)


BULK_OPERATIONS: dict[str, type[ModelNode]] = {
    "BulkCreate": BulkCreateNode,
    "BulkUpdate": BulkUpdateNode,
    "BulkDelete": BulkDeleteNode,
    "BulkUpsert": BulkUpsertNode,
}
