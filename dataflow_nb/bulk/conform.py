"""Make each Arrow batch fit the model's columns, with Arrow compute, and find the rows that cannot.

A value that does not fit (text that is not a number, a null in a required column, a decimal
with too many digits, a value outside a Literal) is reported with its row number in the source,
the column, the value and the expected type. Casting is vectorised; only a failing cast is split
in halves to find its bad rows, so clean data never pays for the search.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataflow_nb.backends.arrow_text import uuid_text
from dataflow_nb.bulk.parse import (
    FORMAT_SAMPLE,
    choose_format,
    given_format,
    is_text,
    iso_format,
    parse_text,
    parses_text,
    pl_text,
    temporal_kind,
)
from dataflow_nb.core.load_plan import ROW
from dataflow_nb.core.load_report import Rejection
from dataflow_nb.core.masking import MASK
from dataflow_nb.core.reading import ReadOptions
from dataflow_nb.core.spec import MISSING, Field, ModelSpec
from dataflow_nb.core.types import NUL_REFUSED, canonical_json, has_nul
from dataflow_nb.exceptions import ValidationError

_UUID = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"


def _mask(size: int, indexes: Sequence[int] | set[int]) -> pa.Array:
    """A boolean array, True at ``indexes``."""
    flags = np.zeros(size, dtype=bool)
    flags[list(indexes)] = True
    return pa.array(flags.tolist(), pa.bool_())


def _cast_or_raise(array: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast one array; text without a zone offset is read as UTC, like single records."""
    if pa.types.is_timestamp(target) and (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        try:
            return pc.cast(array, target)
        except pa.ArrowInvalid:
            return pc.cast(pc.cast(array, pa.timestamp(target.unit)), target)
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(array.type) and array.type.tz is None:
        return pc.cast(array, pa.timestamp(target.unit)).cast(target)  # naive values are UTC
    return pc.cast(array, target)


def _failing_rows(array: pa.Array, cast: Callable[[pa.Array], pa.Array], offset: int = 0) -> list[int]:
    """Indexes whose cast fails, by splitting a failing array in halves (log n casts per bad row)."""
    try:
        cast(array)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
        if len(array) == 1:
            return [offset]
        middle = len(array) // 2
        return _failing_rows(array.slice(0, middle), cast, offset) + _failing_rows(
            array.slice(middle), cast, offset + middle
        )
    return []


def _uuid_str(value: Any) -> str:
    """A UUID given as ``uuid.UUID``, 16 bytes or anything whose str() is its text."""
    if isinstance(value, bytes) and len(value) == 16:
        return str(uuid.UUID(bytes=value))
    return str(value)


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


class Conformer:
    """Casts batches to a model's Arrow types and reports what does not fit.

    Args:
        model: the model written to.
        names: the input's column names (checked once, against ``allowed``).
        allowed: fields the input may carry (``id`` too for update and delete).
        fill_defaults: add missing columns with defaults and check required ones (create, upsert).
        keys: columns that must hold a value in every row (a conflict key, an id).
        node: the node's name, for messages.
        options: how text becomes typed values; ``extra="ignore"`` drops columns the model lacks.
    """

    def __init__(
        self,
        model: ModelSpec,
        names: Sequence[str],
        allowed: Sequence[str],
        *,
        fill_defaults: bool,
        node: str,
        keys: Sequence[str] = (),
        options: ReadOptions | None = None,
    ):
        self.model = model
        self.node = node
        self.keys = set(keys)
        self.options = options or ReadOptions()
        self.formats: dict[str, str] = {}  # the one format each text date/time column is read with
        if self.options.extra == "ignore":
            names = [n for n in names if n in allowed]
        absent = [k for k in keys if k not in names]
        if absent:
            raise ValidationError(f"{node}: the input needs column(s) {absent} to match records of {model.name}")
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise ValidationError(
                f"{node}: the input has column(s) {unknown} that {model.name} does not have; "
                f"valid columns are {list(allowed)} (pass columns=, rename=, or extra='ignore' to leave them out)"
            )
        self.columns = list(names)
        self.defaults: dict[str, Any] = {}
        if fill_defaults:
            missing = [f for n, f in model.fields.items() if n in allowed and n not in names and not f.managed]
            required = [f.name for f in missing if f.required]
            if required:
                raise ValidationError(
                    f"{node}: the input has no column for required field(s) {required} of {model.name}"
                )
            for f in missing:
                if f.default is not MISSING and f.default is not None:
                    self.defaults[f.name] = f.type.to_wire(f.default)
        self.output = self.columns + list(self.defaults)

    def conform(self, batch: pa.RecordBatch, first_row: int) -> tuple[pa.RecordBatch, list[Rejection]]:
        """The batch in the model's types with bad rows removed, and the rejections (rows from ``first_row``).

        The first column, ``__row``, numbers the rows in the source (from 1), for reports and "last wins".
        """
        rejected: dict[int, Rejection] = {}
        arrays: list[pa.Array] = []
        for name in self.columns:
            array = batch.column(name)
            if isinstance(array, pa.ChunkedArray):
                array = array.combine_chunks()
            arrays.append(self._column(self.model.fields[name], array, first_row, rejected))
        size = batch.num_rows
        for name, value in self.defaults.items():
            arrays.append(pa.repeat(pa.scalar(value, self.model.fields[name].type.arrow), size))
        numbers = np.arange(first_row, first_row + size, dtype=np.int64)
        # from_buffers, not pa.array: the latter imports pandas (0.2 s) the first time it meets numpy.
        rows = pa.Array.from_buffers(pa.int64(), size, [None, pa.py_buffer(numbers)])
        table = pa.RecordBatch.from_arrays([rows, *arrays], names=[ROW, *self.output])
        if rejected:
            table = table.filter(pc.invert(_mask(size, set(rejected))))
        return table, [rejected[i] for i in sorted(rejected)]

    def _column(self, field: Field, array: pa.Array, first_row: int, rejected: dict[int, Rejection]) -> pa.Array:
        target = field.type.arrow
        if field.type.label == "UUID" or field.type.label in ("dict", "list"):
            array = self._json_or_uuid(field, array, first_row, rejected)
        elif is_text(array.type) and parses_text(target):
            array = self._parsed(field, array, first_row, rejected)
        elif array.type != target:
            if is_text(array.type):
                array = pc.utf8_trim_whitespace(array)
            try:
                array = _cast_or_raise(array, target)  # clean data: one cast, no search
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
                bad = _failing_rows(array, lambda a: _cast_or_raise(a, target))
                for i in bad:
                    self._reject(rejected, first_row, i, field, array[i].as_py(), f"does not fit {field.label}")
                array = _cast_or_raise(pc.if_else(_mask(len(array), bad), pa.scalar(None, array.type), array), target)
        if pa.types.is_string(target) and field.type.label not in ("UUID", "dict", "list"):
            self._reject_nul(field, array, first_row, rejected)
        if field.type.choices is not None:
            allowed = pa.array([getattr(c, "value", c) for c in field.type.choices])
            outside = pc.and_(pc.invert(pc.is_in(array, value_set=allowed)), pc.is_valid(array))
            for i in pc.indices_nonzero(outside).to_pylist():
                self._reject(rejected, first_row, i, field, array[i].as_py(), f"is not one of {allowed.to_pylist()}")
        if (field.name in self.keys or not field.nullable) and array.null_count:
            why = (
                "is a key and needs a value"
                if field.name in self.keys
                else f"is null, but {field.name} is not nullable"
            )
            for i in pc.indices_nonzero(pc.is_null(array)).to_pylist():
                self._reject(rejected, first_row, i, field, None, why)
        return array

    def _parsed(self, field: Field, array: pa.Array, first_row: int, rejected: dict[int, Rejection]) -> pa.Array:
        """Text parsed by polars (one format per date/time column); text that does not parse is a bad row."""
        target = field.type.arrow
        kind = temporal_kind(target)
        fmt = self.format_of(field, array)
        parsed = parse_text(array, target, fmt, self.options)
        bad = pc.and_(pc.is_valid(array), pc.is_null(parsed))
        if parsed.null_count and pc.any(bad).as_py():
            why = f"does not fit {field.label}" + (
                f" (read with format {fmt!r}; pass {kind}_format= for another)" if kind else ""
            )
            for i in pc.indices_nonzero(bad).to_pylist():
                self._reject(rejected, first_row, i, field, array[i].as_py(), why)
        return parsed

    def format_of(self, field: Field, array: pa.Array) -> str | None:
        """The one format a text date/time column is read with: given, or chosen on its first batch."""
        kind = temporal_kind(field.type.arrow)
        if kind is not None and field.name not in self.formats:
            given = given_format(field.type.arrow, self.options) or iso_format(array, field.type.arrow)
            self.formats[field.name] = given or choose_format(pl_text(array), kind, f"{self.node}: {field.name}")
        return self.formats.get(field.name)

    def formats_known(self, head: pa.RecordBatch) -> bool:
        """Whether the first rows ``head`` hold every value a text date/time column's format is chosen
        on (its first ``FORMAT_SAMPLE`` non-null values), so the format is the one its first batch gives."""
        for name in self.columns:
            field = self.model.fields[name]
            if name in self.formats or temporal_kind(field.type.arrow) is None:
                continue
            if given_format(field.type.arrow, self.options) is not None:
                continue
            column = head.column(name)
            if is_text(column.type) and len(column) - column.null_count < FORMAT_SAMPLE:
                return False
        return True

    def _json_or_uuid(self, field: Field, array: pa.Array, first_row: int, rejected: dict[int, Rejection]) -> pa.Array:
        """UUID text is checked by pattern; JSON is parsed once per value (the one Python loop here)."""
        if field.type.label == "UUID":
            if pa.types.is_fixed_size_binary(array.type) and array.type.byte_width == 16:
                array = uuid_text(pa.chunked_array([array])).combine_chunks()  # 16 bytes, as PostgreSQL sends them
            elif not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
                array = pa.array([None if v is None else _uuid_str(v) for v in array.to_pylist()], pa.string())
            array = pc.cast(array, pa.string())
            bad = pc.and_(pc.is_valid(array), pc.invert(pc.match_substring_regex(array, _UUID)))
            for i in pc.indices_nonzero(bad).to_pylist():
                self._reject(rejected, first_row, i, field, array[i].as_py(), "is not a valid UUID")
            return array
        kind = dict if field.type.label == "dict" else list
        texts: list[str | None] = []
        for i, value in enumerate(array.to_pylist()):
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    self._reject(rejected, first_row, i, field, value, "is not valid JSON")
                    texts.append(None)
                    continue
            if value is not None and not isinstance(value, kind):
                self._reject(rejected, first_row, i, field, value, f"is JSON but not a {kind.__name__}")
                texts.append(None)
                continue
            if value is not None and has_nul(value):
                self._reject(rejected, first_row, i, field, value, NUL_REFUSED.replace("in text", "in JSON"))
                texts.append(None)
                continue
            try:
                texts.append(None if value is None else canonical_json(value))
            except ValueError as exc:  # NaN or Infinity inside: JSON (and PostgreSQL) has no such numbers
                self._reject(rejected, first_row, i, field, value, f"is not valid JSON ({exc})")
                texts.append(None)
        return pa.array(texts, pa.string())

    def _reject_nul(self, field: Field, array: pa.Array, first_row: int, rejected: dict[int, Rejection]) -> None:
        """Text with a NUL character: PostgreSQL cannot store it, so both backends refuse the row."""
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            return
        # One pass over the characters first (a tenth of searching each value): a zero byte
        # anywhere in the buffer, even outside this slice, only sends the values to the search.
        characters = array.buffers()[2]
        if characters is None or np.frombuffer(characters, np.uint8).all():
            return
        found = pc.match_substring(array, "\x00")
        if pc.any(found).as_py():
            for i in pc.indices_nonzero(pc.fill_null(found, False)).to_pylist():
                self._reject(rejected, first_row, i, field, array[i].as_py(), NUL_REFUSED)

    def _reject(
        self, rejected: dict[int, Rejection], first_row: int, index: int, field: Field, value: Any, reason: str
    ) -> None:
        shown = MASK if field.sensitive else _shown(value)
        rejected.setdefault(index, Rejection(first_row + index, field.name, shown, f"{field.name}: {shown!r} {reason}"))


def rejection_error(node: str, model: ModelSpec, rejections: Sequence[Rejection]) -> ValidationError:
    """The error of ``on_error="rollback"``: the first bad rows, each with row, column, value and type."""
    shown = "; ".join(
        f"row {r.row}, column {r.column!r}: value {r.value!r} {r.reason.removeprefix(f'{r.column}: {r.value!r} ')}"
        for r in rejections[:5]
    )
    more = f" (and {len(rejections) - 5} more in this batch)" if len(rejections) > 5 else ""
    sampled = model.options.get("sampled_rows")
    inferred = (
        f"; {model.name}'s types were inferred from the first {sampled:,} rows of its file: define it with "
        f"model_from(..., sample=None) to read every row, or give the column's type by hand"
        if sampled
        else ""
    )
    return ValidationError(
        f"{node}: {len(rejections)} row(s) do not fit {model.name}: {shown}{more}. Nothing was written; "
        f"fix the data, or pass on_error='skip' to drop bad rows or 'quarantine' to get them back as a frame"
        f"{inferred}"
    )
