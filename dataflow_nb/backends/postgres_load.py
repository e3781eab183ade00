"""PostgreSQL's load rules: ADBC's binary COPY, which converts nothing on the way in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import sqlalchemy as sa

from dataflow_nb.backends.load_job import LoadRules

if TYPE_CHECKING:
    from dataflow_nb.core.spec import Field, ModelSpec


class PostgresLoadRules(LoadRules):
    """JSON as Arrow's ``arrow.json`` extension (COPY writes jsonb only from it); UUID text and
    tables under row-level security through a staging table (COPY refuses an RLS table:
    https://www.postgresql.org/docs/current/sql-copy.html, "COPY FROM is not supported for tables
    with row-level security")."""

    def wire_type(self, field: Field) -> pa.DataType:
        if field.type.label in ("dict", "list"):
            return pa.json_()
        return field.type.arrow

    def needs_staging(self, model: ModelSpec, names: Sequence[str]) -> bool:
        uuids = any(model.fields[n].type.label == "UUID" for n in names)
        return uuids or model.multi_tenant

    def inserted_flag(self, model: ModelSpec) -> sa.ColumnElement[bool] | None:
        if model.partitioning is not None:
            return None  # "cannot retrieve a system column" from a partitioned table's RETURNING
        # A row version written by the INSERT has no deleting or locking transaction (xmax 0); the
        # ON CONFLICT update path locks the old version, so the new one carries that xid.
        # https://www.postgresql.org/docs/current/ddl-system-columns.html
        return sa.literal_column("(xmax = 0)", sa.Boolean())
