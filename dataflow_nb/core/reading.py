"""Reader options: how a file is read and how its text becomes typed values (the same on every node).

The bulk nodes, ``model_from`` and the backends' file scans all take one ``ReadOptions``; the
parsing that uses them lives in ``bulk/parse.py``, the scans in ``backends/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from dataflow_nb.exceptions import ValidationError

NULL_VALUES = ("NA", "N/A", "NULL")  # and an empty unquoted field
TRUE_VALUES = ("true", "t", "yes", "y", "1")
FALSE_VALUES = ("false", "f", "no", "n", "0")
ENCODINGS = ("utf-8", "utf8", "utf-8-sig", "latin-1", "latin1", "iso-8859-1")


@dataclass(frozen=True)
class ReadOptions:
    """How a file is read and how its text becomes typed values (the same on every node).

    Attributes:
        null_values: texts read as null (an empty unquoted field always is; ``""`` is an empty string).
        true_values, false_values: texts read as booleans, compared without case.
        date_format, datetime_format, time_format: strptime formats (polars/chrono); None finds one.
        delimiter, quote_char, encoding, skip_rows, comment_prefix: how the CSV text is split.
        columns: read only these columns; rename: source name -> field name.
        extra: "error" (default) or "ignore" for columns the model (or the first file) does not have.
    """

    null_values: tuple[str, ...] = NULL_VALUES
    true_values: tuple[str, ...] = TRUE_VALUES
    false_values: tuple[str, ...] = FALSE_VALUES
    date_format: str | None = None
    datetime_format: str | None = None
    time_format: str | None = None
    delimiter: str = ","
    quote_char: str | None = '"'
    encoding: str = "utf-8"
    skip_rows: int = 0
    comment_prefix: str | None = None
    columns: tuple[str, ...] | None = None
    rename: Mapping[str, str] = field(default_factory=dict)
    extra: str = "error"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_params(cls, params: Mapping[str, Any], what: str, *, base: ReadOptions | None = None) -> ReadOptions:
        """Options from node parameters or keyword arguments, checked, on top of ``base``."""
        values: dict[str, Any] = {}
        for name in cls.names():
            if params.get(name) is None:
                continue
            value = params[name]
            if name in ("null_values", "true_values", "false_values", "columns"):
                value = (value,) if isinstance(value, str) else value
                if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
                    raise ValidationError(f"{what}: {name} takes a list of strings, got {value!r}")
                value = tuple(value)
            elif name == "rename":
                if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in [*value, *value.values()]):
                    raise ValidationError(f"{what}: rename takes a dict of source column -> field name, got {value!r}")
                value = dict(value)
            elif name == "skip_rows":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValidationError(f"{what}: skip_rows takes an int >= 0, got {value!r}")
            elif name == "extra":
                if value not in ("error", "ignore"):
                    raise ValidationError(f"{what}: extra takes 'error' or 'ignore', got {value!r}")
            elif name == "encoding":
                if str(value).lower() not in ENCODINGS:
                    raise ValidationError(f"{what}: encoding={value!r}; choose one of {list(ENCODINGS)}")
            elif name in ("delimiter", "quote_char", "comment_prefix"):
                if not isinstance(value, str) or not value or (name != "comment_prefix" and len(value) != 1):
                    raise ValidationError(f"{what}: {name} takes a single character, got {value!r}")
            elif not isinstance(value, str):
                raise ValidationError(f"{what}: {name} takes a strptime format such as '%Y-%m-%d', got {value!r}")
            values[name] = value
        start = base or cls()
        return cls(**{name: values.get(name, getattr(start, name)) for name in cls.names()})

    def for_path(self, path: str | os.PathLike[str]) -> ReadOptions:
        """A ``.tsv`` file is tab-separated unless a delimiter was given."""
        if os.fspath(path).lower().endswith((".tsv", ".tsv.gz", ".tsv.zst")) and self.delimiter == ",":
            return replace(self, delimiter="\t")
        return self
