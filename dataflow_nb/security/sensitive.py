"""Sensitive fields: stored and returned as they are, masked wherever dataflow_nb shows them.
This module finds a run's sensitive values (in what it was given and what it read); the masking
itself is ``core/masking.py``'s."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def values_read(text: str, frames: Iterable[tuple[Any, set[str]]]) -> set[str]:
    """The values of sensitive columns in ``frames`` (polars or pandas, with those columns) that
    appear in ``text``: what a run read and an error message repeats, e.g. a row in a user
    function's exception. Searched by polars in one pass per column, not value by value."""
    import polars as pl

    found: set[str] = set()
    for frame, columns in frames:
        present = [c for c in getattr(frame, "columns", []) if c in columns]
        if not present:
            continue
        table = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame[present])
        for column in present:
            values = table.select(pl.col(column).cast(pl.String).alias("v")).drop_nulls().unique()
            hits = values.filter(pl.col("v").str.len_chars() > 0, pl.lit(text).str.contains(pl.col("v"), literal=True))
            found.update(hits.get_column("v").to_list())
    return found


def chain_text(exc: BaseException) -> str:
    """Every message of ``exc`` and the exceptions chained to it (what a traceback shows)."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), *(str(a) for a in current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


def sensitive_values(model: Any, params: Mapping[str, Any]) -> list[Any]:
    """The values of a node's parameters that belong to sensitive fields, filters included."""
    return values_named({n for n, f in model.fields.items() if f.sensitive}, params)


def values_named(names: set[str] | frozenset[str], params: Mapping[str, Any]) -> list[Any]:
    """The text values in ``params`` (nested: filters, lists of records) under a key in ``names``."""
    if not names:
        return []
    found: list[Any] = []

    def walk(node: Any, field: str | None) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, key if key in names else field)
        elif isinstance(node, list | tuple | set):
            for value in node:
                walk(value, field)
        elif field is not None and isinstance(node, str) and node:
            found.append(node)

    walk(params, None)
    return found
