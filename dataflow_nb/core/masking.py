"""The masking marker and mask: sensitive values are stored as they are and shown as ``***``.

Models mark fields here (``Annotated[str, Sensitive]``); every layer that shows values (error
messages, previews, filters, audit lines, a run's result frames) masks them with these
functions. Which values and columns are sensitive a node says for itself (``sensitive_fields``,
``sensitive_columns``); finding them in a run is ``security/``'s business.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final


class Sensitive:
    """Marks a field as sensitive: ``email: Annotated[str, Sensitive]``.

    Or list the fields in the model: ``__dataflow__ = {"sensitive": ["email"]}``.
    """


MASK: Final = "***"


def mask_values(text: str, values: Iterable[Any]) -> str:
    """``text`` with every sensitive value in it replaced by ``***`` (longest first)."""
    shown = sorted({str(v) for v in values if v is not None and str(v)}, key=len, reverse=True)
    for value in shown:
        text = text.replace(value, MASK)
    return text


def mask_exception(exc: BaseException, values: Iterable[Any]) -> None:
    """Mask ``values`` in the messages of ``exc`` and of every exception chained to it.

    A traceback prints the whole chain, so the database's own message (a unique key's value, a
    failing row) must be masked as well as dataflow_nb's.
    """
    values = list(values)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(mask_values(a, values) if isinstance(a, str) else a for a in current.args)
        current = current.__cause__ or current.__context__


def mask_columns(frame: Any, columns: set[str]) -> Any:
    """A copy of a polars or pandas frame with ``columns`` shown as ``***`` (others: unchanged)."""
    present = [c for c in getattr(frame, "columns", []) if c in columns]
    if not present:
        return frame
    if hasattr(frame, "with_columns"):  # polars
        import polars as pl

        return frame.with_columns(*(pl.lit(MASK).alias(c) for c in present))
    return frame.assign(**dict.fromkeys(present, MASK))
