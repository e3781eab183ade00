"""Each backend's load job: the Arrow types its ingest accepts, and when a create must stage rows.

A bulk node streams conformed batches into the database through ``Connection.ingest``. What that
ingest takes differs (PostgreSQL's binary COPY converts nothing; DuckDB's Arrow scan casts text to
UUID and JSON), so each backend has a ``LoadJob`` saying so; ``bulk/load.py`` only asks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

if TYPE_CHECKING:
    from dataflow_nb.backends.base import CompiledSQL
    from dataflow_nb.core.reading import ReadOptions
    from dataflow_nb.core.spec import Field, ModelSpec

# What a database's own read of a file says when a value does not fit (then the rows are checked
# the streamed way, which finds and reports them).
BAD_VALUE = "dataflow_nb: a value does not fit its column"


@dataclass(frozen=True)
class ScanColumn:
    """One column of a file the database reads itself: where it comes from and how it is typed."""

    field: Field
    source: str  # the column's name in the file
    source_type: pa.DataType | None  # a Parquet column's type; None: CSV text
    format: str | None = None  # the strptime format a CSV date/time column is read with


@dataclass(frozen=True)
class FileScan:
    """A file a bulk create may have DuckDB read and type whole: a Parquet file inside the database's
    INSERT (``LoadJob.scan_file``), CSV text on the client's side (``typed_read.typed_select``)."""

    kind: str  # "csv" or "parquet"
    path: str
    columns: tuple[ScanColumn, ...]
    defaults: tuple[tuple[str, Any], ...]  # fields the file lacks, with their default values
    csv_header: tuple[str, ...] = ()  # a CSV file's header row, as read
    csv_skip: int = 0  # lines DuckDB's reader skips before the header
    options: ReadOptions | None = None


class LoadJob:
    """The shared rules: every field travels as its own Arrow type, and nothing needs staging."""

    def wire_type(self, field: Field) -> pa.DataType:
        """The Arrow type the ingest is sent for this field."""
        return field.type.arrow

    def to_wire(self, column: pa.Array, target: pa.DataType) -> pa.Array:
        """A conformed column as ``target`` (its ``wire_type``): storage wrapped as the extension type."""
        if isinstance(target, pa.ExtensionType) and column.type != target:
            return pa.ExtensionArray.from_storage(target, pc.cast(column, target.storage_type))
        return column

    def needs_staging(self, model: ModelSpec, names: Sequence[str]) -> bool:
        """Whether a create must ingest into a staging table and move the rows with INSERT ... SELECT."""
        return False

    def staged_type(self, field: Field, column: sa.Column[Any]) -> sa.types.TypeEngine[Any]:
        """A staging table's column type: text for UUID and JSON the ingest cannot write natively
        (cast to ``column``'s type when moved to the model's table)."""
        native = self.wire_type(field) != field.type.arrow
        return sa.Text() if field.type.as_object and not native else column.type

    def inserted_flag(self, model: ModelSpec) -> sa.ColumnElement[bool] | None:
        """In the RETURNING of ``INSERT ... ON CONFLICT DO UPDATE``: true for a row inserted, false
        for one updated; None when the database cannot tell (the counts are then queried first)."""
        return None

    # Whether a bulk create of one file skips the client's parser (``BulkLoad.scan``): Parquet read by
    # the database in ``scan_file``, CSV typed by DuckDB on the client. PostgreSQL's COPY is its
    # bottleneck, so there the file streams through the client's parser, which is no slower.
    reads_files = False

    def head_file(
        self, path: str, header: Sequence[str], selected: Sequence[str], skip: int, options: ReadOptions, rows: int
    ) -> CompiledSQL | None:
        """A query of a CSV file's first ``rows`` rows as text (as its first batch holds them), run by
        the database itself; None: the file's source reads them."""
        return None

    def scan_file(self, table: str, scan: FileScan) -> CompiledSQL | None:
        """An INSERT in which the database reads the file itself; None: the rows are streamed."""
        return None
