"""CSVReaderNode and ParquetReaderNode: lazy record-batch sources for bulk nodes and transforms.

A reader node reads nothing when it runs: its output is a ``BatchSource`` that the next node
pulls batch by batch, so a file is never held whole in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dataflow_nb.bulk.sources import DEFAULT_BATCH_SIZE, BatchSource, csv_source, parquet_source
from dataflow_nb.core.reading import ReadOptions
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.nodes.base import Node, check_parameter_names

if TYPE_CHECKING:
    from dataflow_nb.protocols import Run


class _ReaderNode(Node):
    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, complete: bool) -> None:
        check_parameter_names(cls.node_type, params, cls.parameters)
        if complete and not params.get("path"):
            raise ValidationError(f"{cls.node_type}: give path= (a file, or a glob such as 'data/*.csv')")
        size = params.get("batch_size", DEFAULT_BATCH_SIZE)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValidationError(f"{cls.node_type}: batch_size must be a positive int, got {size!r}")
        cls.options(params)

    @classmethod
    def options(cls, params: Mapping[str, Any]) -> ReadOptions:
        return ReadOptions.from_params(params, cls.node_type)


class CSVReaderNode(_ReaderNode):
    """CSV files (plain, gzip or zstd, a path or a glob) as batches; values stay text unless ``infer_types``.

    The reader options (null_values, date_format, ...) travel with the batches: the bulk node
    that loads them parses the text with them.
    """

    node_type = "CSVReaderNode"
    parameters = ("path", "batch_size", "infer_types", *ReadOptions.names())

    def run(self, ctx: Run, params: dict[str, Any]) -> BatchSource:
        self.check_params(params, complete=True)
        return csv_source(
            params["path"],
            batch_size=params.get("batch_size", DEFAULT_BATCH_SIZE),
            options=self.options(params),
            infer_types=bool(params.get("infer_types", False)),
        )


class ParquetReaderNode(_ReaderNode):
    """Parquet files (a path or a glob) as batches, row group by row group."""

    node_type = "ParquetReaderNode"
    parameters = ("path", "batch_size", "columns", "rename", "extra")

    def run(self, ctx: Run, params: dict[str, Any]) -> BatchSource:
        self.check_params(params, complete=True)
        return parquet_source(
            params["path"], batch_size=params.get("batch_size", DEFAULT_BATCH_SIZE), options=self.options(params)
        )
