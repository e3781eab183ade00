"""The staged strategies of a load job: upsert, and update or delete by the input's ids.

Each stages the input (``LoadJob.stage_rows``), keeps the last row per key, and finishes with
set-based statements whose counts fill the report: inserted, updated, unchanged and collapsed
rows, and ids that match nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow_nb.backends.load_keys import KeyHashes
from dataflow_nb.backends.sql import Insert, insert
from dataflow_nb.exceptions import ValidationError

if TYPE_CHECKING:
    from dataflow_nb.backends.load_job import LoadJob
    from dataflow_nb.core.load_plan import LoadSource


def upsert(job: LoadJob, source: LoadSource) -> None:
    """Insert rows, or update the changed columns where the key matches; count each kind."""
    plan, model, report = job.plan, job.model, job.report
    columns = job.stamped(source.columns)
    # A tenant's keys hold within it, ``id`` too: the primary key is (tenant_id, id).
    match = list(plan.keys) if plan.tenant is None else ["tenant_id", *plan.keys]
    hashes = KeyHashes(model, match)
    stage = job.stage_rows(source, columns, keys=hashes)
    # Keys written once each (checked on the client while streaming) need no DISTINCT ON sort.
    latest: sa.Table | sa.Subquery = stage if hashes.unique() else job.last_per_key(stage, match)
    changed = [c for c in (plan.update if plan.update is not None else source.input_columns) if c not in match]
    table = model.table
    statement = _upsert_statement(job, latest, columns, match, changed)
    flag = job.rules.inserted_flag(model)
    if flag is not None and not model.soft_delete:
        # The upsert itself says which rows it inserted: no pass over the input before it.
        # (A soft-deleted record brought back counts as inserted, which only a query before tells.)
        # Rows left unchanged are not returned: they are the distinct keys not written.
        staged = sum(rows for _, rows, _ in report.batch_log)
        distinct = staged if latest is stage else job.count_rows(sa.select(sa.func.count()).select_from(latest))
        inserted, written = job.write_counted(statement, flag)
        existing, unchanged = distinct - inserted, distinct - written
    else:
        scope = plan.rules.scope(table)
        found = sa.exists().where(*(table.c[k] == job.as_stored(latest, k) for k in match), *scope)
        same = _unchanged_rows(job, latest, match, changed, *scope)
        staged, distinct, existing, unchanged = job.read_counts(
            sa.select(
                sa.select(sa.func.count()).select_from(stage).scalar_subquery(),
                sa.func.count(),
                sa.func.count().filter(found),
                sa.func.count().filter(same),
            ).select_from(latest)
        )
        job.write_changed(statement)
    job.drop_stage(stage)
    if "id" in plan.keys:
        job.advance_id_sequence()
    report.inserted, report.updated = distinct - existing, existing - unchanged
    report.unchanged, report.collapsed = unchanged, staged - distinct


def by_ids(job: LoadJob, source: LoadSource) -> None:
    """Update each input row's columns, or delete its record, by its ``id`` (the last row per id
    wins); ids that match nothing are settled per ``on_error``."""
    plan, model, report = job.plan, job.model, job.report
    table = model.table
    columns = [c for c in source.columns if c != "id"]
    stage = job.stage_rows(source, job.stamped(source.columns))
    latest = job.last_per_key(stage, ["id"])
    staged, distinct = job.read_counts(
        sa.select(sa.select(sa.func.count()).select_from(stage).scalar_subquery(), sa.func.count()).select_from(latest)
    )
    report.collapsed = staged - distinct
    missing = job.find_missing(latest, "id")
    if missing:
        absent = ~sa.exists().where(table.c.id == latest.c.id, *plan.rules.scope(table))
        job.settle_missing(missing, job.count_rows(sa.select(sa.func.count()).select_from(latest).where(absent)))
    if plan.action == "update":
        if not columns:
            raise ValidationError(f"{plan.node}: the input has only 'id': add the columns to change")
        changes: dict[str, Any] = plan.rules.managed_values(table)
        changes.update({c: job.as_stored(latest, c) for c in columns})
        statement = sa.update(table).where(table.c.id == latest.c.id, *plan.rules.scope(table)).values(changes)
        report.updated = job.write_changed(statement)
    else:
        report.deleted = job.write_changed(plan.rules.delete(table.c.id == latest.c.id, hard=plan.hard))
    job.drop_stage(stage)


def _upsert_statement(
    job: LoadJob, latest: sa.Table | sa.Subquery, names: Sequence[str], keys: Sequence[str], update: Sequence[str]
) -> Insert:
    table, rules = job.model.table, job.plan.rules
    rows = insert(table).from_select(list(names), sa.select(*(job.as_stored(latest, n) for n in names)))
    changes = rules.assignments(table, rows.excluded, list(update))
    differs = rules.differs(table, rows.excluded, list(update))
    return rows.on_conflict_do_update(index_elements=list(keys), set_=changes, where=differs)


def _unchanged_rows(
    job: LoadJob, latest: sa.Table | sa.Subquery, keys: Sequence[str], update: Sequence[str], *scope: Any
) -> sa.ColumnElement[bool]:
    """Whether an input row matches a stored row the upsert would leave as it is."""
    table = job.model.table
    incoming = {c: job.as_stored(latest, c) for c in update}
    differs = job.plan.rules.differs(table, incoming, list(update))
    return sa.exists().where(*(table.c[k] == job.as_stored(latest, k) for k in keys), *scope, ~differs)
