"""What a bulk node hands a backend's load job: a plan (what to do) and a source (the rows).

The job (``backends/load_job.py``) owns how: streaming, staging, file scans, the statements and
their counts. What the model means for those statements (tenant scope, soft delete, managed
columns) and how input becomes conformed batches stay above ``backends/``: the node passes them in
as the plan's ``rules`` and as the source (``bulk/load.py``), so ``backends/`` imports no ``bulk/``
module. Plain types and protocols that ``backends/``, ``bulk/`` and ``nodes/`` all speak, so they
sit in the vocabulary layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import pyarrow as pa
import sqlalchemy as sa

from dataflow_nb.core.load_report import Rejection
from dataflow_nb.core.reading import ReadOptions
from dataflow_nb.core.spec import Field, ModelSpec

ROW = "__row"  # source row numbers travel with each staged batch

Action = Literal["create", "upsert", "update", "delete"]


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
    INSERT (``DuckDBLoadRules.scan_file``), CSV text on the client's side (``typed_read.typed_select``)."""

    kind: str  # "csv" or "parquet"
    path: str
    columns: tuple[ScanColumn, ...]
    defaults: tuple[tuple[str, Any], ...]  # fields the file lacks, with their default values
    csv_header: tuple[str, ...] = ()  # a CSV file's header row, as read
    csv_skip: int = 0  # lines DuckDB's reader skips before the header
    options: ReadOptions | None = None
    batch_size: int = 50_000  # rows a batch of typed CSV text streams in


class ModelRules(Protocol):
    """The model's rules every statement of the load follows (``query/scope.py``, bound to the run's scope)."""

    def scope(self, table: sa.Table, *, include_deleted: bool = False) -> list[sa.ColumnElement[Any]]:
        """Clauses limiting a statement to the rows the run may see."""

    def managed_values(self, table: sa.Table) -> dict[str, Any]:
        """What every UPDATE sets besides its changes (``updated_at``, ``version``)."""

    def assignments(self, table: sa.Table, incoming: Any, changed: list[str]) -> dict[str, Any]:
        """The SET of an upsert that updates."""

    def differs(self, table: sa.Table, incoming: Any, changed: list[str]) -> sa.ColumnElement[bool]:
        """Whether an upsert would change a stored row."""

    def delete(self, condition: sa.ColumnElement[bool], *, hard: bool) -> sa.Update | sa.Delete:
        """Delete (or soft-delete) the rows matching ``condition``."""


@dataclass(frozen=True)
class LoadPlan:
    """What a bulk node asks for: the action and its parameters, nothing about how."""

    action: Action
    model: ModelSpec
    node: str  # the node's type, named in errors and bars
    rules: ModelRules
    on_error: str = "rollback"  # bad rows: "rollback", "skip" or "quarantine"
    tenant: str | None = None  # stamped on every row of a multi-tenant model
    replace: bool = False  # create: the table's rows (the tenant's) deleted first, in the same transaction
    keys: tuple[str, ...] = ()  # upsert: the conflict key
    update: tuple[str, ...] | None = None  # upsert: the columns a match changes (None: every input column)
    condition: sa.ColumnElement[bool] | None = None  # update/delete by filter instead of by input ids
    values: Mapping[str, Any] = field(default_factory=dict)  # update by filter: the values set
    hard: bool = False  # delete: for good, even on a soft-delete model
    audited: bool = False  # the audit digests the input on its way: no file scan


class Bar(Protocol):
    """A progress bar of one stream (``bulk/progress.py``)."""

    def update(self, rows: int, bytes_read: int | None = None) -> None: ...

    def fill(self) -> None: ...

    def close(self, *, ok: bool = True) -> None: ...


Batches = Iterator[tuple[int, pa.RecordBatch, list[Rejection]]]  # (input rows read, batch, bad rows)


class LoadSource(Protocol):
    """The node's input conformed to the model: the batches the job streams, and what it reports."""

    @property
    def columns(self) -> list[str]:
        """The model's columns the batches carry (without a stamped ``tenant_id``)."""

    @property
    def input_columns(self) -> list[str]:
        """Those of ``columns`` the input has (the others are its fields' defaults)."""

    @property
    def total_bytes(self) -> int | None: ...

    def bar(self) -> Bar:
        """A new progress bar for a stream (or a scan) of this input."""

    def bytes_read(self) -> int | None:
        """How far into the input the read is, for its bar."""

    def batches(self, schema: pa.Schema, to_wire: Callable[[pa.Array, pa.DataType], pa.Array]) -> Batches:
        """The conformed batches in ``schema`` (its first column the row number when it is ``ROW``)."""

    def written(self, batch: pa.RecordBatch) -> None:
        """A batch handed to the database (the audit keeps a digest of what a bulk node writes)."""

    def file_scan(self) -> FileScan | None:
        """The input file as the database could read it; None when the rows must stream."""

    def check_rows(self) -> None:
        """Conform the input again, writing nothing: raise the streamed path's error for bad rows."""

    def rejection_error(self, rejected: Sequence[Rejection]) -> Exception:
        """The error that ends a load with ``on_error="rollback"``."""
